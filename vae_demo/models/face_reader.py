"""The face reader: one small CNN (models/classifier.py's, with several heads) that reads a 64x64 cartoon face's skin
tone (7, light to dark), glasses, smile and beard, as the faces data labels them (vae_demo/datasets/faces.py).

Trained by `python -m vae_demo.training.face_reader` on the generated training faces; its card gives the held-out
accuracy per head. It judges what the faces VAE reconstructs, samples and edits.
"""

import threading
from typing import Optional, Union

import torch

from vae_demo.device import serve_in_bf16
from vae_demo.models.classifier import CLASSIFIERS_DIR, Classifier, for_inference, load_classifier
from vae_demo.models.precision import reader_in_bf16

HEADS = (("skin_tone", 7), ("glasses", 2), ("smile", 2), ("beard", 2))
FACTORS = tuple(name for name, _ in HEADS)
UNITS = {"smile": "% P(smiling)", "glasses": "% P(glasses)", "beard": "% P(beard)", "skin_tone": "tone (1 light .. 7 dark, expected)"}


def factor_value(probs: dict, name: str) -> torch.Tensor:
    """The reader's reading of one factor as a number per face: P(factor) for glasses, smile and beard; the expected
    skin tone 1 (lightest) .. 7 (darkest) for skin_tone"""
    p = probs[name]
    if name == "skin_tone":
        return p @ torch.arange(1, p.shape[1] + 1, dtype=p.dtype, device=p.device)
    return p[:, 1]


def readings(probs: dict, i: int = 0) -> dict:
    """One face's readings, JSON-ready: {"smile": P %, "glasses": P %, "beard": P %, "skin_tone": expected 1..7}"""
    return describe(_one(probs, i))[0][0]


def describe(probs: dict) -> list:
    """Every face's readings and words at once: [(readings as `readings` gives them, words as `words` gives them)].
    The probabilities become Python numbers in one conversion per factor, not one per factor and face, since the
    app describes the input and its reconstruction on every call."""
    values = {name: factor_value(probs, name).tolist() for name in FACTORS}
    yes = {name: probs[name][:, 1].tolist() for name in ("smile", "glasses", "beard")}
    skin, tones = probs["skin_tone"].argmax(1).tolist(), probs["skin_tone"].shape[1]
    out = []
    for i in range(len(skin)):
        reading = {name: round(values[name][i] * (1 if name == "skin_tone" else 100), 2) for name in FACTORS}
        text = (f"{'smiling' if yes['smile'][i] > 0.5 else 'not smiling'} · {'glasses' if yes['glasses'][i] > 0.5 else 'no glasses'}"
                f" · {'beard' if yes['beard'][i] > 0.5 else 'no beard'} · skin {skin[i] + 1} of {tones}")
        out.append((reading, text))
    return out


@torch.inference_mode()
def read_logits(reader: Classifier, x: torch.Tensor) -> dict:
    """(B, 3, 64, 64) in [0, 1] -> {head: (B, classes) logits}"""
    logits = reader(x.to(next(reader.parameters()).device, torch.float32))
    out, start = {}, 0
    for name, n in reader.config.heads:
        out[name] = logits[:, start : start + n]
        start += n
    return out


def read(reader: Classifier, x: torch.Tensor) -> dict:
    """(B, 3, 64, 64) in [0, 1] -> {head: (B, classes) probabilities}"""
    return {name: v.softmax(-1) for name, v in read_logits(reader, x).items()}


def evidence(logits: dict, name: str) -> torch.Tensor:
    """How strongly the reader sees a factor, without saturating where a probability reaches 1: the log-odds of
    glasses, smile or beard; the expected skin tone 1..7 (in float64)"""
    v = logits[name].double()
    if name == "skin_tone":
        return v.softmax(-1) @ torch.arange(1, v.shape[1] + 1, dtype=v.dtype, device=v.device)
    return v[:, 1] - v[:, 0]


def words(probs: dict, i: int = 0) -> str:
    """One face's readings in words: "smiling · glasses · no beard · skin 3 of 7" """
    return describe(_one(probs, i))[0][1]


def _one(probs: dict, i: int) -> dict:
    """the probabilities of face i alone, as a batch of one"""
    return {name: p[i][None] for name, p in probs.items()}


def verdict(probs: dict, i: int = 0) -> str:
    """One face's readings -> "reads as: smiling · glasses · no beard · skin 3 of 7" """
    return "reads as: " + words(probs, i)


_cache: dict = {}
_cache_lock = threading.Lock()


def reader_for(dataset: str, device: Union[str, torch.device] = "cpu", serving: bool = False) -> Optional[Classifier]:
    """"faces" -> the bundled face reader on `device`, loaded once and shared; None for other datasets. With
    `serving` (the app's verdicts and readings), its bfloat16 copy where the CPU multiplies bf16 natively
    (vae_demo/device.py serve_in_bf16); otherwise, and for every measurement, the float32 reader."""
    if dataset != "faces":
        return None
    key = (str(torch.device(device)), serving and serve_in_bf16(device))
    if key in _cache:  # the common case, on every verdict: no look at the disk
        return _cache[key]
    if not (CLASSIFIERS_DIR / "faces").is_dir():
        return None
    with _cache_lock:
        if key not in _cache:
            reader = for_inference(load_classifier(CLASSIFIERS_DIR / "faces")).to(device)
            _cache[key] = reader_in_bf16(reader) if key[1] else reader
        return _cache[key]
