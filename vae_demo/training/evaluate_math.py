"""Evaluation maths for a trained VAE: likelihood bounds, active units and disentanglement scores.

Pure functions of a model and tensors; loading data and looping over a test set happen elsewhere.
"""

import math
from typing import Optional, Union

import numpy as np
import torch

from vae_demo.models.vae import VAE

ArrayLike = Union[torch.Tensor, np.ndarray]
_LOG_2PI = math.log(2 * math.pi)


@torch.no_grad()
def iwae_bound(model: VAE, x: torch.Tensor, k: int, batch_size: int = 512,
               generator: Optional[torch.Generator] = None, y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(B, C, H, W) images, k samples -> (B,) log (1/k) sum_i p(x, z_i) / q(z_i|x) in nats (Burda et al. 2016)

    A lower bound on log p(x) that rises with k; k = 1 is a one-sample ELBO with a sampled KL.
    x is both the encoder's input and the target. `batch_size` caps the (image, sample) pairs decoded
    at once (never fewer than B), so memory does not grow with k. A conditional model's bound is on log p(x | y).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}.")
    mu, logvar = model.encode(x, y)
    n, d = mu.shape
    per_chunk = max(1, batch_size // n)
    std = torch.exp(0.5 * logvar)
    log_w = []
    for start in range(0, k, per_chunk):
        m = min(per_chunk, k - start)
        # eps is drawn here rather than recovered from model.reparameterize's z: (z - mu) / std loses
        # all precision when a posterior is very narrow.
        eps = torch.randn((m, n, d), generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + std * eps  # (m, B, D)
        logits = model.decode_logits(z.reshape(m * n, d), None if y is None else y.repeat(m))
        nll = model.reconstruction_nll(x.repeat(m, *([1] * (x.dim() - 1))), logits).view(m, n)
        log_prior = -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)
        log_q = -0.5 * (eps.pow(2) + logvar + _LOG_2PI).sum(-1)
        log_w.append(-nll + log_prior - log_q)  # (m, B)
    return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)


@torch.no_grad()
def elbo(model: VAE, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> dict:
    """(B, C, H, W) images -> {"rec": -log p(x|z), "kl": KL(q || N(0, I)), "elbo": -(rec + kl)}, each (B,) nats

    One posterior sample for the reconstruction term, the KL in closed form, and beta = 1 whatever
    the model was trained with: this is the bound on log p(x), not the training loss.
    """
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar, generator)
    rec = model.reconstruction_nll(x, model.decode_logits(z))
    kl = model.kl_per_dim(mu, logvar).sum(1)
    return {"rec": rec, "kl": kl, "elbo": -(rec + kl)}


def active_units(mu_all: ArrayLike, threshold: float = 0.01) -> int:
    """(N, D) posterior means over a data set -> number of dims with Cov_x(E_q[z_d]) > threshold (Burda et al. 2016)"""
    mu = torch.as_tensor(mu_all, dtype=torch.float64)
    return int((mu.var(0) > threshold).sum())


def _ranks(x: np.ndarray) -> np.ndarray:
    """(N, K) -> (N, K) float ranks per column, ties sharing the average of their ranks"""
    out = np.empty(x.shape, np.float64)
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j], kind="stable")
        sorted_col = x[order, j]
        starts = np.flatnonzero(np.r_[True, sorted_col[1:] != sorted_col[:-1]])
        counts = np.diff(np.r_[starts, len(sorted_col)])
        mean_rank = starts + (counts - 1) / 2.0
        out[order, j] = np.repeat(mean_rank, counts)
    return out


def _as_columns(a: ArrayLike) -> np.ndarray:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    a = a.astype(np.float64)
    return a.reshape(len(a), -1)


def _rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, D), (N, K) -> (D, K) Spearman rho; 0 where a column is constant"""
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean(0)
    rb -= rb.mean(0)
    norm = np.sqrt((ra**2).sum(0))[:, None] * np.sqrt((rb**2).sum(0))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (ra.T @ rb) / norm
    return np.nan_to_num(rho, nan=0.0)


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """(N,), (N,) -> Spearman rank correlation in [-1, 1] (ties get average ranks; 0 if either is constant)"""
    a, b = _as_columns(a), _as_columns(b)
    if a.shape != b.shape or a.shape[1] != 1:
        raise ValueError(f"spearman takes two 1-D sequences of equal length, got {a.shape} and {b.shape}.")
    return float(_rank_correlation(a, b)[0, 0])


def factor_correlations(mu: ArrayLike, factors: ArrayLike) -> np.ndarray:
    """(N, D) latent means, (N, K) factor values -> (D, K) |Spearman rho| of each latent with each factor"""
    mu, factors = _as_columns(mu), _as_columns(factors)
    if len(mu) != len(factors):
        raise ValueError(f"mu has {len(mu)} rows but factors has {len(factors)}; they must describe the same images.")
    return np.abs(_rank_correlation(mu, factors))


def _discretise(column: np.ndarray, n_bins: int) -> np.ndarray:
    """(N,) -> (N,) bin index in [0, n_bins) over equal-width bins spanning the column's range"""
    lo, hi = column.min(), column.max()
    if hi == lo:
        return np.zeros(len(column), np.int64)
    return np.clip(((column - lo) / (hi - lo) * n_bins).astype(np.int64), 0, n_bins - 1)


def _entropy(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """(N,), (N,) non-negative integer labels -> I(a; b) in nats from their joint histogram"""
    nb = b.max() + 1
    joint = np.bincount(a * nb + b, minlength=(a.max() + 1) * nb).reshape(-1, nb) / len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mutual_info_gap(mu: ArrayLike, factors: ArrayLike, n_bins: int = 20) -> tuple:
    """(N, D) latent means, (N, K) discrete factors -> (MIG, per-factor gaps) (Chen et al. 2018)

    For each factor: (I(z_top; v) - I(z_second; v)) / H(v), with each latent's mean cut into n_bins
    equal-width bins; MIG averages that over factors. A constant factor (H = 0) gets a gap of nan and
    is left out of the average. Needs D >= 2.
    """
    mu, factors = _as_columns(mu), _as_columns(factors)
    if mu.shape[1] < 2:
        raise ValueError("mutual_info_gap needs at least two latent dimensions to take a gap.")
    codes = [_discretise(mu[:, d], n_bins) for d in range(mu.shape[1])]
    gaps = []
    for j in range(factors.shape[1]):
        labels = np.unique(factors[:, j], return_inverse=True)[1].reshape(-1)
        h = _entropy(labels)
        if h == 0:
            gaps.append(float("nan"))
            continue
        mi = np.sort([_mutual_info(c, labels) for c in codes])[::-1]
        gaps.append(float((mi[0] - mi[1]) / h))
    valid = [g for g in gaps if not math.isnan(g)]
    return (float(np.mean(valid)) if valid else float("nan")), gaps


def assign_factors(corr: ArrayLike, names: list, min_corr: float = 0.0) -> dict:
    """(D, K) |correlation| matrix, K factor names -> {latent dim: (factor name, |rho|)}

    Greedy: repeatedly takes the strongest remaining (dim, factor) pair, so each factor gets its own
    dim and each dim at most one factor. Pairs weaker than min_corr are left unassigned.
    """
    corr = np.nan_to_num(np.abs(_as_columns(corr)), nan=0.0)
    if corr.shape[1] != len(names):
        raise ValueError(f"corr has {corr.shape[1]} factor columns but {len(names)} names were given.")
    out, used_factors = {}, set()
    for flat in np.argsort(-corr, axis=None, kind="stable"):
        d, k = np.unravel_index(flat, corr.shape)
        if corr[d, k] < min_corr or len(used_factors) == len(names):
            break
        if int(d) not in out and int(k) not in used_factors:
            out[int(d)] = (names[k], float(corr[d, k]))
            used_factors.add(int(k))
    return out
