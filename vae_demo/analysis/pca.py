"""PCA, the linear cousin of an autoencoder: the baseline a VAE is compared with, and the latent map's projection."""

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file


@dataclass
class PCA:
    mean: torch.Tensor  # (F,)
    components: torch.Tensor  # (k, F) orthonormal rows, largest variance first

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F) -> (N, k) coordinates along the principal axes"""
        return (x.to(self.mean) - self.mean) @ self.components.T

    def unproject(self, coords: torch.Tensor) -> torch.Tensor:
        """(N, k) -> (N, F) points in the original space"""
        return coords.to(self.mean) @ self.components + self.mean

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """(N, F) -> (N, F) best rank-k linear reconstruction (the optimum a linear autoencoder reaches)"""
        return self.unproject(self.project(x))


def fit_pca(x: torch.Tensor, k: int) -> PCA:
    """(N, F) data -> the top-k principal axes, computed in float64 from the covariance (F is small here)."""
    x = x.double()
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / max(1, len(x) - 1)
    evals, evecs = torch.linalg.eigh(cov)  # ascending
    comps = evecs[:, torch.argsort(evals, descending=True)[:k]].T
    # Fix each axis's sign (largest entry positive) so refits give the same picture.
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    return PCA(mean=mean.float().contiguous(), components=(comps * signs).float().contiguous())


def load_pca(path: Path) -> PCA:
    t = load_file(str(path))
    return PCA(mean=t["mean"], components=t["components"])
