"""Filling in missing pixels (data imputation) with a VAE, and the baselines it is measured against.

A VAE defines p(x) = ∫ p(x|z) p(z) dz, so the missing pixels x_m of an image have a distribution given the seen ones
x_o: p(x_m | x_o). Two ways to draw from it:

- ``metropolis``: Metropolis-within-Gibbs (Mattei & Frellsen 2018, *Leveraging the exact likelihood of deep latent
  variable models*). The encoder, run on the current completion, proposes z'; the move is accepted with probability
  min(1, ρ), ρ = p(x_o|z') p(z') q(z|·) / (p(x_o|z) p(z) q(z'|·)); then x_m ~ p(x_m|z). Its stationary distribution is
  exactly p(z, x_m | x_o) under the model.
- ``pseudo-gibbs``: Rezende et al. 2014's scheme: z ~ q(z | x_o, x_m), x_m ~ p(x_m | z), always accepted. It trusts
  the encoder, which never saw a half image, and so can drift.

Baselines: ``pca`` (probabilistic PCA with the model's k, Tipping & Bishop 1999, conditioned on the seen pixels:
a Gaussian, so the completions are its posterior draws) and ``mean`` (the training mean in every missing pixel).

Every function keeps the seen pixels exactly as given.
"""

import math
from dataclasses import dataclass
from typing import Optional

import torch

from vae_demo.analysis.pca import PCA

PRESETS = ("bottom half", "top half", "left half", "right half", "centre square", "random 50%")
METHODS = ("metropolis", "pseudo-gibbs", "pca", "mean")
# Markov chain steps for metropolis and pseudo-gibbs: few enough for /impute to answer within 5x Gradio's floor on
# two CPU cores (docs/APPLICATIONS.md: what more steps buy)
DEFAULT_STEPS = 8


def warmup_steps(steps: int) -> int:
    """How many of a metropolis chain's first steps are pseudo-Gibbs burn-in: moves that accept every proposal bring
    a chain started from the PCA completion to the digit quickly; the Metropolis steps after them keep p(x_m | x_o)."""
    return min(5, steps // 2)


@dataclass
class Imputation:
    completions: torch.Tensor  # (B, C, H, W) in [0, 1]; the seen pixels are the input's
    acceptance: Optional[torch.Tensor] = None  # (B,) share of accepted moves, metropolis only
    steps: int = 0


def preset_mask(name: str, size: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """a preset's name, the image side -> (size, size) bool, True where a pixel is missing. `random 50%` draws each
    pixel with probability 1/2 from `generator`; `centre square` is the middle half of the side (a quarter of the pixels)."""
    m = torch.zeros(size, size, dtype=torch.bool)
    half, q = size // 2, size // 4
    if name == "bottom half":
        m[half:] = True
    elif name == "top half":
        m[:half] = True
    elif name == "left half":
        m[:, :half] = True
    elif name == "right half":
        m[:, half:] = True
    elif name == "centre square":
        m[q:size - q, q:size - q] = True
    elif name == "random 50%":
        m = torch.rand(size, size, generator=generator) < 0.5
    else:
        raise ValueError(f"unknown mask preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return m


def masked(x: torch.Tensor, missing: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """(B, C, H, W), (B or 1, 1, H, W) bool -> the image with every missing pixel set to `fill` (the masked input)"""
    return torch.where(missing, torch.full_like(x, fill), x)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B,) log N(z; mu, exp(logvar))"""
    return -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(1)


def _draw(vae, logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """decoder output -> x ~ p(x|z): Bernoulli pixels, or the Gaussian mean plus its noise (clipped to [0, 1])"""
    mean = torch.sigmoid(logits)
    if vae.config.likelihood == "bernoulli":
        return torch.bernoulli(mean, generator=generator)
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return (mean + vae.config.gaussian_std * noise).clamp(0, 1)


@torch.inference_mode()
def markov_chain(vae, x: torch.Tensor, missing: torch.Tensor, steps: int = DEFAULT_STEPS, metropolis: bool = True,
                 generator: Optional[torch.Generator] = None, start: Optional[torch.Tensor] = None,
                 warmup: int = 0) -> Imputation:
    """(B, C, H, W) images in [0, 1], (B or 1, 1, H, W) bool missing -> B completions, one chain each.
    The chains start from the masked input (missing pixels 0). Each step costs one encoder and one decoder pass over
    the batch. The completion shows the decoder's mean for the missing pixels at the chain's last z."""
    g = generator or torch.Generator(device=x.device).manual_seed(0)
    seen = (~missing).to(x.dtype).expand_as(x)
    x_full = masked(x, missing) if start is None else torch.where(missing, start, x)
    z = logits = joint = None  # the chain's state: z, its decoder output, log p(x_o|z) + log p(z)
    accepted = torch.zeros(len(x), device=x.device)
    for t in range(steps):
        mu, logvar = vae.encode(x_full)
        eps = torch.randn(mu.shape, generator=g, device=mu.device, dtype=mu.dtype)
        z_new = mu + (0.5 * logvar).exp() * eps
        logits_new = vae.decode_logits(z_new)
        # log p(x_o|z') + log p(z'): needed from the last burn-in step on (the chain's state), not before it
        joint_new = (-(vae.pixel_nll(x, logits_new) * seen).flatten(1).sum(1) - 0.5 * (z_new**2).sum(1)
                     if metropolis and t >= warmup - 1 else None)
        if not metropolis or z is None or t < warmup:
            z, logits, joint, move = z_new, logits_new, joint_new, torch.ones(len(x), dtype=torch.bool, device=x.device)
        else:  # q is the encoder's on the current completion, for both the proposal and the chain's z
            log_rho = (joint_new - _log_normal(z_new, mu, logvar)) - (joint - _log_normal(z, mu, logvar))
            u = torch.rand(len(x), generator=g, device=x.device)
            move = torch.log(u.clamp_min(1e-12)) < log_rho
            z = torch.where(move[:, None], z_new, z)
            logits = torch.where(move[:, None, None, None], logits_new, logits)
            joint = torch.where(move, joint_new, joint)
        if t > warmup:
            accepted += move.float()
        x_full = torch.where(missing, _draw(vae, logits, g), x)
    completion = torch.where(missing, torch.sigmoid(logits), x)
    rate = accepted / max(1, steps - 1 - warmup) if metropolis else None
    return Imputation(completions=completion, acceptance=rate, steps=steps)


def pca_completions(pca: PCA, x: torch.Tensor, missing: torch.Tensor, n: int = 1,
                    generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Probabilistic PCA conditioned on the seen pixels: (1, C, H, W), (1, 1, H, W) bool -> (n, C, H, W) draws of
    x_m ~ p(x_m | x_o) without the isotropic pixel noise (the posterior of the k coefficients, mapped to the missing
    pixels); n = 1 gives the conditional mean. x = μ + W c + noise with W = U (Λ − σ² I)^½ (Tipping & Bishop 1999)."""
    if pca.variances is None:
        raise ValueError("this PCA baseline has no variances (refit it with python -m vae_demo.training.evaluate).")
    shape = x.shape[1:]
    flat, miss = x.reshape(1, -1).cpu().double(), missing.expand(1, *shape).reshape(-1).cpu()
    noise = max(float(pca.noise), 1e-6)
    w = pca.components.double().T * (pca.variances.double() - noise).clamp_min(0).sqrt()  # (F, k)
    mean = pca.mean.double()
    w_o, d_o = w[~miss], (flat[0, ~miss] - mean[~miss])
    m = w_o.T @ w_o + noise * torch.eye(w.shape[1], dtype=torch.float64)
    c_mean = torch.linalg.solve(m, w_o.T @ d_o)  # (k,)
    coefs = c_mean.expand(n, -1).clone()
    if n > 1:
        chol = torch.linalg.cholesky(noise * torch.linalg.inv(m))
        eps = torch.randn(n - 1, w.shape[1], generator=generator, dtype=torch.float64)
        coefs[1:] += eps @ chol.T
    full = (mean + coefs @ w.T).clamp(0, 1)  # (n, F)
    out = flat.expand(n, -1).clone()
    out[:, miss] = full[:, miss]
    return out.float().view(n, *shape).to(x.device)


def mean_completion(pca: PCA, x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W), (B or 1, 1, H, W) bool -> the training mean in every missing pixel"""
    return torch.where(missing, pca.mean.view(1, *x.shape[1:]).to(x), x)
