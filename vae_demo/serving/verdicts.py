"""What a model's bundled reader sees in an image and in its reconstruction: the digit or clothes classifier's class,
or on faces the face reader's four factors; the Reconstruct tab's verdict sentence is made from these."""

import torch

from vae_demo.models.classifier import classifier_for
from vae_demo.models.face_reader import describe, read, reader_for


def verdict(vae, x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """What the dataset's bundled classifier reads in the input and in its reconstruction (empty if it has none):
    input_class / reconstruction_class (class names) and their confidences (softmax probabilities)."""
    try:
        if vae.config.dataset == "faces":
            return face_verdict(vae, x, x_hat)
        clf = classifier_for(vae.config.dataset, vae.device)
    except Exception:  # a damaged optional file must not stop the model from serving (as in analysis/evaluation_files.py)
        clf = None
    if clf is None or x.shape[-1] != clf.config.image_size or x.shape[1] != clf.config.channels:
        return {}
    p = clf.predict(torch.cat([x, x_hat]).to(vae.device))
    conf, idx = p.max(dim=1)
    names = clf.config.class_names or [str(i) for i in range(p.shape[1])]
    return {"input_class": names[int(idx[0])], "input_confidence": float(conf[0]),
            "reconstruction_class": names[int(idx[1])], "reconstruction_confidence": float(conf[1])}


def face_verdict(vae, x: torch.Tensor, x_hat: torch.Tensor) -> dict:
    """What the face reader reads in a face and in its reconstruction: input_reading / reconstruction_reading (P %
    of smile, glasses, beard; the expected skin tone 1..7) and each in words ("smiling · glasses · no beard · skin 3
    of 7"); empty without the reader or for another image size"""
    reader = reader_for("faces", vae.device, serving=True)
    if reader is None or x.shape[-1] != reader.config.image_size or x.shape[1] != reader.config.channels:
        return {}
    (before, before_words), (after, after_words) = describe(read(reader, torch.cat([x, x_hat])))
    return {"input_reading": before, "reconstruction_reading": after,
            "input_reads_as": before_words, "reconstruction_reads_as": after_words}


def reads(vae, x: torch.Tensor) -> list:
    """(B, C, H, W) in [0, 1] -> what the bundled reader reads in each image: [{"reads_as": class name, "confidence":
    softmax probability}] for digits and clothes, [{"reads_as": "smiling · glasses · no beard · skin 3 of 7"}] for
    faces; [] without a reader for these images."""
    try:
        if vae.config.dataset == "faces":
            reader = reader_for("faces", vae.device, serving=True)
            if reader is None or x.shape[-1] != reader.config.image_size or x.shape[1] != reader.config.channels:
                return []
            probs = read(reader, x)
            return [{"reads_as": text} for _, text in describe(probs)]
        clf = classifier_for(vae.config.dataset, vae.device)
    except Exception:  # a damaged optional file must not stop the model from serving
        return []
    if clf is None or x.shape[-1] != clf.config.image_size or x.shape[1] != clf.config.channels:
        return []
    conf, idx = clf.predict(x.to(vae.device)).max(dim=1)
    names = clf.config.class_names or [str(i) for i in range(clf.config.n_classes)]
    return [{"reads_as": names[int(i)], "confidence": round(float(c), 4)} for c, i in zip(conf, idx)]
