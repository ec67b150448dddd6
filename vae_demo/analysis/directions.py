"""Named directions in an unsupervised VAE's latent space: knobs that change one thing ("stroke thickness",
"slant", "towards sneaker"), stored beside a model in directions.safetensors and applied by `edit_latent`.

Each is a unit vector u with `step`, the standard deviation of the training codes along u; an edit is
z = mu + amount * step * u, so amount 2 is two standard deviations along the knob, inside the prior's bulk.
How they are fitted: vae_demo/training/directions.py (`python -m vae_demo.training.directions mnist`).
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

DIRECTIONS_FILE = "directions.safetensors"
MAX_AMOUNT = 6.0  # standard deviations; beyond this the decoder leaves the data it knows


@dataclass
class Direction:
    name: str  # what /edit's `attribute` takes: "thickness", "slant", "sneaker"
    label: str  # what the UI shows: "stroke thickness", "towards Sneaker"
    vector: torch.Tensor  # (D,) unit vector in latent space
    step: float  # standard deviation of the training codes along `vector`: the size of amount 1
    kind: str = "attribute"  # "attribute" (measured, morphometry.py) or "class" (towards a class's codes)
    unit: str = ""  # of the measured attribute
    method: str = ""  # how it was fitted (METHODS, or "class-mean")
    r2: Optional[float] = None  # held-out R^2 of the linear fit of the attribute on mu
    per_amount: Optional[float] = None  # measured change of the attribute per unit of amount (test images)
    target: Optional[int] = None  # a class direction's class index

    def meta(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "vector"}


def save_directions(directions: list, path: Path) -> None:
    tensors = {d.name: d.vector.float().contiguous() for d in directions}
    save_file(tensors, str(path), metadata={"directions": json.dumps([d.meta() for d in directions])})


def load_directions(path: Path, latent_dim: int) -> list:
    """directions.safetensors -> [Direction]; [] when the file does not match this model (never raises for content)"""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("directions", "[]"))
    tensors = load_file(str(path))
    out = []
    for m in meta if isinstance(meta, list) else []:
        v = tensors.get(m.get("name")) if isinstance(m, dict) else None
        if v is None or v.shape != (latent_dim,) or not torch.isfinite(v).all() or not m.get("step", 0) > 0:
            continue
        known = {k: m[k] for k in ("kind", "unit", "method", "r2", "per_amount", "target") if k in m}
        out.append(Direction(name=str(m["name"]), label=str(m.get("label", m["name"])), vector=v.float(),
                             step=float(m["step"]), **known))
    return out


def edit_latent(mu: torch.Tensor, d: Direction, amount) -> torch.Tensor:
    """(B, D) codes -> (B, D) codes moved `amount` standard deviations along d"""
    return mu + torch.as_tensor(amount, dtype=mu.dtype, device=mu.device).reshape(-1, 1) * d.step * d.vector.to(mu.device)
