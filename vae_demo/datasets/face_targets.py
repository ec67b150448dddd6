"""What a model learns from the cartoon faces' labels (the sets python -m vae_demo.datasets.faces makes): the latent
axes a supervised faces model holds and each face's place on them, the trainer's split labelled by skin tone, and the
latent map's colourings by factor."""

from pathlib import Path

import numpy as np
import python_avatars as pa
import torch

from vae_demo.datasets.faces import FACTORS, GLASSES, NOT_SMILING, SKIN_TONES, SMILING, label_array, load_faces, to_tensor

_MEMBERS = dict(FACTORS)  # each factor's enum members, in order

# The latent axes a supervised faces model holds, in order (python -m vae_demo.training.train --supervised-factors;
# training/objectives.py supervised_loss): the four knobs' factors, then which member of its group each one drew.
# Skin tone runs from -1.5 (lightest) to +1.5 in half steps; glasses, beard and smile are -1 (without) or +1 (with),
# with the mouths in neither smile group and the eyepatch at 0. A "kind" axis spreads the members of the group the
# face's part is in over -1 .. +1 in enum order (a concerned mouth is the first of the not-smiling five, a smile of the
# smiling three), so the decoder is told which mouth, glasses or facial hair to draw and the free latents need not
# hold it: moving the smile axis from -1 to +1 then turns this serious mouth into that smile, instead of fighting a
# mouth the other latents still describe.
FACTOR_AXES = ("skin_tone", "glasses", "beard", "smile", "mouth_kind", "glasses_kind", "facial_hair_kind")
FACTOR_RANGE = ((-1.5, 1.5),) + ((-1.0, 1.0),) * 6  # what the decoder was taught on each axis (it saturates beyond)
FACTOR_STD = 0.1
_MOUTH_GROUPS = [[i for i, m in enumerate(_MEMBERS["mouth"]) if (m in SMILING, m in NOT_SMILING) == key]
                 for key in ((True, False), (False, True), (False, False))]
_GLASSES_ORDER = [i for i, m in enumerate(_MEMBERS["accessory"]) if m in GLASSES]
_FACIAL_HAIR_ORDER = [i for i, m in enumerate(_MEMBERS["facial_hair"]) if m != pa.FacialHairType.NONE]


def _spread(position: int, size: int) -> float:
    return 0.0 if size < 2 else position / (size - 1) * 2 - 1


def _kind(index: int, groups: list) -> float:
    """a member's place in the group it belongs to, -1 .. +1 (0 for a member of no group)"""
    for group in groups:
        if index in group:
            return _spread(group.index(index), len(group))
    return 0.0


def factor_axis_values(labels: list) -> np.ndarray:
    """labels.csv rows -> (N, 7) float32: each face's place on FACTOR_AXES"""
    skin = (label_array(labels, "skin_tone") - 3) * 0.5
    glasses = np.select([label_array(labels, "glasses") == 1, label_array(labels, "glasses") == 0], [1.0, -1.0], 0.0)
    beard = label_array(labels, "beard") * 2.0 - 1.0
    smile = np.select([label_array(labels, "smile") == 1, label_array(labels, "smile") == 0], [1.0, -1.0], 0.0)
    mouth = [_kind(i, _MOUTH_GROUPS) for i in label_array(labels, "mouth_idx")]
    specs = [_kind(i, [_GLASSES_ORDER]) for i in label_array(labels, "accessory_idx")]
    hair = [_kind(i, [_FACIAL_HAIR_ORDER]) for i in label_array(labels, "facial_hair_idx")]
    return np.stack([skin, glasses, beard, smile, mouth, specs, hair], 1).astype(np.float32)


def face_colourings(labels: list) -> dict:
    """labels.csv rows -> {factor: ((N,) uint8 group per face, group names)}: the latent map's other colourings"""
    smile = label_array(labels, "smile") + 1  # -1 neither group, 0 not smiling, 1 smiling
    glasses = np.clip(label_array(labels, "glasses"), 0, 1)
    out = {"smile": (smile, ["other mouths", "not smiling", "smiling"]), "glasses": (glasses, ["no glasses", "glasses"]),
           "beard": (label_array(labels, "beard"), ["no beard", "beard"]), "hat": (label_array(labels, "hat"), ["no hat", "hat"])}
    return {name: (torch.from_numpy(v.astype(np.uint8)), names) for name, (v, names) in out.items()}


SKIN_NAMES = [m.name.replace("_", " ").lower() for m in SKIN_TONES]  # class names of the skin-tone label, light to dark


def load_split(root, train: bool, n_eval: int | None = None):
    """`root`/faces-train or `root`/faces-test (made by python -m vae_demo.datasets.faces) -> ImageData for the trainer, labelled by
    skin tone (0 lightest .. 6 darkest). Training images stay uint8 (N, 3, 64, 64), 0..255, converted per batch (60,000
    faces are 737 MB so, 2.9 GB as floats); test images are float in [0, 1], the first `n_eval` of them if given."""
    from vae_demo.datasets.mnist import ImageData

    folder = Path(root) / ("faces-train" if train else "faces-test")
    images, labels = load_faces(folder, mmap=False)
    if not train and n_eval:
        images, labels = images[:n_eval], labels[:n_eval]
    x = to_tensor(images, torch.uint8 if train else torch.float32)
    return ImageData(images=x, labels=torch.from_numpy(label_array(labels, "skin_tone")), class_names=SKIN_NAMES)
