"""What the evaluator stored beside a model, read from the files `python -m vae_demo.training.evaluate` stores beside it.

All of it is optional: a model without these files still reconstructs, samples and interpolates;
the app then just leaves out the anomaly percentile, the PCA baseline, the latent map or factor names.
"""

import bisect
import json
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file

from vae_demo.analysis.directions import DIRECTIONS_FILE, load_directions
from vae_demo.analysis.pca import PCA, load_pca
from vae_demo.models.protocol import LoadedModel

_LOCK = threading.Lock()
_READ: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its EvaluationFiles, read once


@dataclass
class EvaluationFiles:
    stats: Optional[dict] = None  # latent_stats.json: KL per dim, slider order, anomaly quantiles
    metrics: Optional[dict] = None  # metrics.json: test-set ELBO, IWAE NLL, disentanglement
    pca: Optional[PCA] = None  # pca.safetensors: the linear baseline with k = latent_dim
    latent_map: Optional[dict] = None  # latent_map.safetensors: 2-D PCA of test-set means, labels
    map_colourings: Optional[dict] = None  # {name: (labels, group names)}: what the latent map can be coloured by
    directions: tuple = ()  # directions.safetensors: named knobs (vae_demo/analysis/directions.py), fitted by python -m vae_demo.training.directions

    def factor_names(self) -> dict:
        """{latent dim: "x position (|ρ| 0.93)"} for models whose evaluation matched dims to known factors (dSprites):
        the factor a dimension tracks best and how closely (rank correlation on fresh generated sprites)."""
        m = self.metrics or {}
        rho = m.get("factor_best_rho") or {}
        return {int(d): name + (f" (|ρ| {rho[name]:.2f})" if name in rho else "") for d, name in (m.get("factor_dims") or {}).items()}

    def anomaly_percentile(self, mse: float) -> Optional[float]:
        """Share of test images (in %) that the model reconstructs better than this one; None if unknown."""
        q = (self.stats or {}).get("recon_mse_quantiles")
        if not q:
            return None
        # q[i] is the (i / (len(q) - 1)) * 100 th percentile: interpolate where mse falls.
        i = bisect.bisect_left(q, mse)
        if i == 0:
            return 0.0
        if i >= len(q):
            return 100.0
        lo, hi = q[i - 1], q[i]
        frac = 0.0 if hi <= lo else (mse - lo) / (hi - lo)
        return 100.0 * (i - 1 + frac) / (len(q) - 1)


def map_colourings(path: Path, lm: dict) -> dict:
    """The latent map file's colourings besides its classes ("by:<name>" tensors, their group names in the
    metadata); {} for a map that has only its classes"""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        names = json.loads((f.metadata() or {}).get("colourings", "{}"))
    out = {}
    for name, groups in names.items() if isinstance(names, dict) else []:
        labels = lm["labels"] if f"by:{name}" not in lm else lm[f"by:{name}"]
        if len(labels) == len(lm["points"]) and isinstance(groups, list) and int(labels.max()) < len(groups):
            out[str(name)] = (labels, [str(g) for g in groups])
    return out


def _json(path: Path):
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        return None


def evaluation_of(vae: LoadedModel) -> EvaluationFiles:
    """The evaluation files of a loaded model, read from its folder on first use (none for a model built in memory)."""
    k = _READ.get(vae)
    if k is not None:
        return k
    with _LOCK:
        folder = vae.info.folder if vae.info else None
        k = EvaluationFiles()
        if folder is not None:
            folder = Path(folder)
            k.stats = _json(folder / "latent_stats.json")
            k.metrics = _json(folder / "metrics.json")
            try:
                if (folder / "pca.safetensors").is_file():
                    pca = load_pca(folder / "pca.safetensors")
                    c = vae.config
                    if pca.mean.numel() == c.channels * c.image_size**2:
                        k.pca = pca
                if (folder / "latent_map.safetensors").is_file():
                    m = load_file(str(folder / "latent_map.safetensors"))
                    if m["components"].shape[1] == vae.config.latent_dim:
                        k.latent_map = {key: v.float() if v.is_floating_point() else v.long() for key, v in m.items()}
                        k.map_colourings = map_colourings(folder / "latent_map.safetensors", k.latent_map)
            except Exception:  # a damaged optional file must not stop the model from serving
                k.latent_map = None
            try:
                if (folder / DIRECTIONS_FILE).is_file() and vae.config.latent_dim:
                    k.directions = tuple(load_directions(folder / DIRECTIONS_FILE, vae.config.latent_dim))
            except Exception:
                k.directions = ()
        _READ[vae] = k
        return k


def map_to_latent(lm: dict, u: float, v: float) -> torch.Tensor:
    """A point (u, v) on the 2-D latent map -> the (D,) latent vector it stands for (other PCA axes at the mean)."""
    return lm["mean"] + torch.tensor([u, v], dtype=torch.float32) @ lm["components"]


def latent_to_map(lm: dict, z: torch.Tensor) -> tuple:
    """(D,) latent vector -> its (u, v) on the map."""
    uv = (z.float().cpu() - lm["mean"]) @ lm["components"].T
    return float(uv[0]), float(uv[1])
