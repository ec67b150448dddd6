"""The face reader: one small CNN (models/classifier.py's, with several heads) that reads a 64x64 cartoon face's skin
tone (7, light to dark), glasses, smile and beard, as the faces data labels them (vae_demo/datasets/faces.py).

Trained by `python -m vae_demo.training.face_reader` on the generated training faces; its card gives the held-out
accuracy per head. It judges what the faces VAE reconstructs, samples and edits.
"""

import torch

from vae_demo.models.classifier import Classifier

HEADS = (("skin_tone", 7), ("glasses", 2), ("smile", 2), ("beard", 2))


@torch.inference_mode()
def read(reader: Classifier, x: torch.Tensor) -> dict:
    """(B, 3, 64, 64) in [0, 1] -> {head: (B, classes) probabilities}"""
    logits = reader(x.to(next(reader.parameters()).device, torch.float32))
    out, start = {}, 0
    for name, n in reader.config.heads:
        out[name] = logits[:, start : start + n].softmax(-1)
        start += n
    return out


def verdict(probs: dict, i: int = 0) -> str:
    """One face's readings -> "reads as: smiling · glasses · no beard · skin 3 of 7" """
    smile = "smiling" if probs["smile"][i, 1] > 0.5 else "not smiling"
    glasses = "glasses" if probs["glasses"][i, 1] > 0.5 else "no glasses"
    beard = "beard" if probs["beard"][i, 1] > 0.5 else "no beard"
    skin = int(probs["skin_tone"][i].argmax()) + 1
    return f"reads as: {smile} · {glasses} · {beard} · skin {skin} of {probs['skin_tone'].shape[1]}"
