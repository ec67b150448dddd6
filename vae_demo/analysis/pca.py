"""PCA, the linear cousin of an autoencoder: the baseline a VAE is compared with, and the latent map's projection."""

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from safetensors.torch import load_file


@dataclass
class PCA:
    mean: torch.Tensor  # (F,)
    components: torch.Tensor  # (k, F) orthonormal rows, largest variance first
    # the data's variance along each axis (k,) and the mean variance of the axes left out: probabilistic PCA's
    # sigma^2 (Tipping & Bishop 1999), which conditioning on seen pixels needs (analysis/imputation.py)
    variances: Optional[torch.Tensor] = None
    noise: Optional[float] = None

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
    order = torch.argsort(evals, descending=True)
    comps = evecs[:, order[:k]].T
    # Fix each axis's sign (largest entry positive) so refits give the same picture.
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    rest = evals[order[k:]].clamp_min(0)
    return PCA(mean=mean.float().contiguous(), components=(comps * signs).float().contiguous(),
               variances=evals[order[:k]].clamp_min(0).float(), noise=float(rest.mean()) if len(rest) else 0.0)


def fit_pca_lowrank(x: torch.Tensor, k: int, seed: int = 0) -> PCA:
    """(N, F) data -> the top-k axes by a randomized SVD (Halko et al. 2011): for many features (a colour image's
    thousands of pixels), where fit_pca's F x F covariance would be slow; the same PCA up to the SVD's precision."""
    x = x.double()
    mean = x.mean(0)
    k = min(k, min(x.shape) - 1)
    torch.manual_seed(seed)
    _, s, v = torch.pca_lowrank(x, q=min(k + 10, min(x.shape)), center=True, niter=4)
    comps = v[:, :k].T
    signs = torch.sign(comps.gather(1, comps.abs().argmax(1, keepdim=True)))
    signs[signs == 0] = 1
    variances = s[:k] ** 2 / max(1, len(x) - 1)
    total = (x - mean).pow(2).sum(0).div(max(1, len(x) - 1)).sum()
    rest = x.shape[1] - k
    noise = float((total - variances.sum()).clamp_min(0) / rest) if rest > 0 else 0.0
    return PCA(mean=mean.float().contiguous(), components=(comps * signs).float().contiguous(),
               variances=variances.float(), noise=noise)


def pca_tensors(pca: PCA) -> dict:
    """-> what pca.safetensors holds"""
    t = {"mean": pca.mean.float(), "components": pca.components.float()}
    if pca.variances is not None:
        t.update(variances=pca.variances.float(), noise=torch.tensor([float(pca.noise)]))
    return t


def load_pca(path: Path) -> PCA:
    t = load_file(str(path))
    noise = t.get("noise")
    return PCA(mean=t["mean"], components=t["components"], variances=t.get("variances"),
               noise=float(noise[0]) if noise is not None else None)
