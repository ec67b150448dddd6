"""Knobs with names and your handwriting as every digit: what /edit and /analogy do, as plain functions.

- edit: an image's posterior mean moved `amount` standard deviations along a named direction (vae_demo/analysis/directions.py), decoded,
  with Morpho-MNIST's measurements of the image before and after, so a knob shows that it changed one thing.
- analogy: a conditional VAE (mnist-cvae) encodes the image with its label (given, or read by the classifier) and
  decodes the same z with every label: the style stays, the digit changes (Kingma et al. 2014's analogies).
"""

import math

import torch

from vae_demo.models.classifier import classifier_for
from vae_demo.models.face_reader import UNITS, describe, read, reader_for
from vae_demo.analysis.directions import MAX_AMOUNT, Direction, edit_latent
from vae_demo.imaging.uploads import ImageInput
from vae_demo.serving.inference import InputError, condition, image_tensor, is_spatial, require
from vae_demo.analysis.evaluation_files import evaluation_of
from vae_demo.analysis.morphometry import ATTRIBUTES, measure


def directions_of(vae) -> tuple:
    return () if is_spatial(vae) else evaluation_of(vae).directions


def find_direction(vae, attribute) -> Direction:
    """A name /models lists under `attributes` (or its label, any case) -> that Direction, else a sentence naming them"""
    ds = directions_of(vae)
    if not ds:
        raise InputError(f"{vae.info.name} has no named attributes (only models with directions.safetensors have; "
                         "try mnist, fashion-mnist or faces).")
    key = str(attribute).strip().lower().replace("_", " ") if attribute is not None else ""
    for d in ds:
        if key in (d.name.lower().replace("_", " "), d.label.lower()):
            return d
    raise InputError(f"attribute must be one of {', '.join(repr(d.name) for d in ds)} for {vae.info.name}; got {attribute!r}.")


def check_amount(amount) -> float:
    try:
        a = float(amount)
    except (TypeError, ValueError):
        raise InputError(f"amount must be a number from -{MAX_AMOUNT:g} to {MAX_AMOUNT:g} (standard deviations); "
                         f"got {amount!r}.") from None
    if not math.isfinite(a) or abs(a) > MAX_AMOUNT:
        raise InputError(f"amount must be a number from -{MAX_AMOUNT:g} to {MAX_AMOUNT:g} (standard deviations); got {amount!r}.")
    return a


def _readings(vae, ds, images: torch.Tensor) -> list:
    """(B, C, H, W) -> one dict per image: every attribute the model has knobs for, measured, and the class read
    (faces: the face reader's reading of each factor, and the whole reading in words)"""
    if any(d.kind == "factor" for d in ds):
        reader = reader_for(vae.config.dataset, vae.device, serving=True)
        if reader is None:
            return [{} for _ in images]
        return [{**reading, "reads_as": text} for reading, text in describe(read(reader, images))]
    measured = measure(images.cpu()) if any(d.kind == "attribute" for d in ds) else {}
    clf = classifier_for(vae.config.dataset, vae.device)
    probs = clf.predict(images) if clf is not None else None
    names = vae.config.class_names or []
    rows = []
    for i in range(len(images)):
        row = {}
        for d in ds:
            if d.kind == "attribute":
                v = float(measured[d.name][i])
                row[d.name] = round(v, 3) if math.isfinite(v) else None
            elif probs is not None:
                row[d.name] = round(100 * float(probs[i, d.target]), 2)  # % the classifier gives the target class
        if probs is not None:
            c = int(probs[i].argmax())
            row["class"] = names[c] if c < len(names) else str(c)
        rows.append(row)
    return rows


@torch.inference_mode()
def edit(vae, image: ImageInput, attribute, amount, frame: bool = True) -> tuple:
    """-> ((1, C, H, W) the edited decode, (1, C, H, W) the unedited decode, a JSON-ready dict of what changed)"""
    d, a = find_direction(vae, attribute), check_amount(amount)
    x = image_tensor(vae, image, frame=frame)
    mu = vae.encode(x)[0]
    both = vae.decode(torch.cat([mu, edit_latent(mu, d, a)]))
    before, after = _readings(vae, directions_of(vae), both)
    unit = {"class": "% (classifier)", "factor": UNITS.get(d.name, "")}.get(d.kind) or ATTRIBUTES.get(d.name, ("", ""))[1]
    info = {"attribute": d.name, "label": d.label, "amount": a, "unit": unit, "before": before, "after": after,
            "change": None if before.get(d.name) is None or after.get(d.name) is None else round(after[d.name] - before[d.name], 3),
            "step": d.step, "method": d.method}
    return both[1:], both[:1], info


GRID_AMOUNTS = (-2.0, -1.0, 0.0, 1.0, 2.0)
MAX_GRID_FACES = 8


@torch.inference_mode()
def knob_grid(vae, d: Direction, images: list, frame: bool = True, amounts=GRID_AMOUNTS, centre: bool = True) -> tuple:
    """Vector arithmetic: the prior's centre z = 0 (with centre) and each image's μ, moved along the knob d
    (find_direction) by each amount -> ((R * A, C, H, W) row by row, one dict per tile of what the reader or the
    measurements read)"""
    mus = [torch.zeros(1, vae.config.latent_dim, device=vae.device)] if centre else []
    mus += [vae.encode(image_tensor(vae, im, frame=frame))[0] for im in images]
    mu = torch.cat(mus)
    a = torch.tensor(amounts, dtype=mu.dtype, device=mu.device)
    z = edit_latent(mu.repeat_interleave(len(amounts), 0), d, a.repeat(len(mu)))
    tiles = vae.decode(z)
    return tiles, _readings(vae, directions_of(vae), tiles)


@torch.inference_mode()
def analogy(vae, image: ImageInput, label=None, frame: bool = True) -> tuple:
    """-> ((L, C, H, W): the image's z decoded with every label 0 .. L-1, the label it was encoded with, and how it
    was found: "given" or "classifier")"""
    require(vae, "analogy")
    x = image_tensor(vae, image, frame=frame)
    y = condition(vae, x, label)
    mu = vae.encode(x, y)[0]
    n = vae.config.num_labels
    tiles = vae.decode(mu.expand(n, -1), torch.arange(n))
    return tiles, int(y), "given" if label not in (None, "") else "classifier"

