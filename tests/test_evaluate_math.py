import math

import numpy as np
import pytest
import torch

from vae_demo.training.evaluate_math import (
    active_units, assign_factors, elbo, factor_correlations, iwae_bound, mutual_info_gap, spearman,
)
from vae_demo.models.vae import VAE, VAEConfig

torch.set_num_threads(1)


def _model(likelihood: str = "bernoulli", latent_dim: int = 3, mu_shift: float = 1.0, logvar: float = -1.5) -> VAE:
    """a tiny random VAE with q(z|x) moved off the prior (by default narrow and shifted, a few nats of
    KL), so that the prior and posterior terms of the bounds matter"""
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_size=8, hidden_channels=(4,), hidden_dim=16, latent_dim=latent_dim,
                          likelihood=likelihood, gaussian_std=0.5))
    with torch.no_grad():
        model.to_moments.bias[:latent_dim] += mu_shift
        model.to_moments.bias[latent_dim:] = logvar
    return model.eval()


def _images(likelihood: str, n: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    x = torch.rand((n, 1, 8, 8), generator=g)
    return torch.bernoulli(x, generator=g) if likelihood == "bernoulli" else x


@torch.no_grad()
def _log_px_by_quadrature(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """(B, 1, 8, 8) -> (B,) log p(x) = log of the integral of p(x|z) N(z; 0, 1) dz, for a 1-D latent"""
    z = torch.linspace(-10, 10, 8001).unsqueeze(1)
    logits = model.decode_logits(z)  # (Z, C, H, W)
    out = []
    for xi in x:
        log_joint = -model.reconstruction_nll(xi.expand_as(logits), logits) - 0.5 * (z[:, 0] ** 2 + math.log(2 * math.pi))
        out.append(torch.logsumexp(log_joint, 0) + math.log(z[1, 0] - z[0, 0]))
    return torch.stack(out)


def _mean_and_se(samples: torch.Tensor) -> tuple:
    """(R, B) repeated estimates -> (B,) mean and (B,) standard error of the mean"""
    return samples.mean(0), samples.std(0) / math.sqrt(len(samples))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_with_one_sample_is_the_elbo_on_average(likelihood):
    model, x = _model(likelihood), _images(likelihood)
    reps = 3000
    g = torch.Generator().manual_seed(2)
    x_rep = x.repeat(reps, 1, 1, 1)
    iwae = iwae_bound(model, x_rep, k=1, generator=g).view(reps, -1)
    terms = elbo(model, x_rep, generator=g)
    assert terms["kl"].min() > 2.0  # the posterior is far enough from the prior for the test to bite
    assert torch.allclose(terms["elbo"], -(terms["rec"] + terms["kl"]))
    m_iwae, se_iwae = _mean_and_se(iwae)
    m_elbo, se_elbo = _mean_and_se(terms["elbo"].view(reps, -1))
    assert ((m_iwae - m_elbo).abs() < 4 * torch.sqrt(se_iwae**2 + se_elbo**2)).all()


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_rises_with_k_but_stays_below_log_px(likelihood):
    model, x = _model(likelihood, latent_dim=1), _images(likelihood)
    log_px = _log_px_by_quadrature(model, x)
    g = torch.Generator().manual_seed(3)
    stats = []
    for k, reps in [(1, 400), (10, 200), (100, 50)]:
        mean, se = _mean_and_se(iwae_bound(model, x.repeat(reps, 1, 1, 1), k=k, generator=g).view(reps, -1))
        assert (mean < log_px + 3 * se).all()  # a lower bound, up to sampling noise
        stats.append((mean, se))
    for (m_lo, se_lo), (m_hi, se_hi) in zip(stats, stats[1:]):
        assert (m_hi - m_lo > 2 * torch.sqrt(se_lo**2 + se_hi**2)).all()


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_iwae_converges_to_log_px(likelihood):
    # A q(z|x) wider than the true posterior keeps the importance weights bounded, so a large k
    # gets close to log p(x) while k = 1 is visibly loose.
    model, x = _model(likelihood, latent_dim=1, mu_shift=0.5, logvar=0.8), _images(likelihood)
    log_px = _log_px_by_quadrature(model, x)
    g = torch.Generator().manual_seed(4)
    loose = iwae_bound(model, x.repeat(100, 1, 1, 1), k=1, generator=g).view(100, -1).mean(0)
    assert (log_px - loose > 0.05).all()
    tight = iwae_bound(model, x, k=20000, batch_size=3000, generator=g)
    assert torch.allclose(tight, log_px, atol=0.03)


def test_iwae_is_exact_when_posterior_is_prior_and_decoder_ignores_z():
    # Then every importance weight equals p(x): the bound is log p(x) for any k and any chunking.
    model, x = _model(), _images("bernoulli")
    with torch.no_grad():
        model.to_moments.weight.zero_()
        model.to_moments.bias.zero_()
        model.from_latent[0].weight.zero_()
        log_px = -model.reconstruction_nll(x, model.decode_logits(torch.zeros(len(x), 3)))
    for k, batch_size in [(1, 4096), (7, 3 * len(x)), (50, 1)]:
        assert torch.allclose(iwae_bound(model, x, k=k, batch_size=batch_size), log_px, atol=1e-4)
    terms = elbo(model, x)
    assert torch.allclose(terms["elbo"], log_px, atol=1e-4) and torch.allclose(terms["kl"], torch.zeros(len(x)))


def test_iwae_is_seeded_and_shaped():
    model, x = _model(), _images("bernoulli", n=5)
    a = iwae_bound(model, x, k=9, batch_size=10, generator=torch.Generator().manual_seed(4))
    b = iwae_bound(model, x, k=9, batch_size=10, generator=torch.Generator().manual_seed(4))
    assert a.shape == (5,) and torch.equal(a, b) and torch.isfinite(a).all()
    with pytest.raises(ValueError):
        iwae_bound(model, x, k=0)


def test_active_units_counts_dims_whose_mean_moves():
    g = torch.Generator().manual_seed(5)
    noise = torch.randn((2000, 4), generator=g, dtype=torch.float64)
    noise = (noise - noise.mean(0)) / noise.std(0)  # unit variance exactly
    mu = noise * torch.tensor([1.0, 0.02, 0.005, 0.0]).sqrt() + 3.0
    assert active_units(mu) == 2
    assert active_units(mu, threshold=0.001) == 3
    assert active_units(mu.numpy(), threshold=2.0) == 0


def test_spearman_matches_hand_computed_ranks():
    # b's ranks with the tie averaged: [1, 2, 3.5, 5, 3.5]; rho = 8 / sqrt(10 * 9.5).
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95), abs=1e-12)
    x = np.random.default_rng(0).normal(size=200)
    assert spearman(x, np.exp(3 * x)) == pytest.approx(1.0)  # any increasing map
    assert spearman(torch.tensor(x), -x**3) == pytest.approx(-1.0)
    assert spearman(x, np.ones_like(x)) == 0.0
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])


def test_factor_correlations_find_monotone_relations():
    rng = np.random.default_rng(1)
    factors = rng.integers(0, 10, size=(3000, 2))
    mu = np.stack([np.exp(factors[:, 1] / 3.0), -factors[:, 0] + 0.01 * rng.normal(size=3000), rng.normal(size=3000)], 1)
    corr = factor_correlations(torch.tensor(mu), factors)
    assert corr.shape == (3, 2) and (corr >= 0).all()
    assert corr[0, 1] == pytest.approx(1.0) and corr[1, 0] > 0.99
    assert corr[2].max() < 0.1 and corr[0, 0] < 0.1


def _factors_and_noise(n: int = 20000, seed: int = 2) -> tuple:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 8, size=(n, 2)), rng.normal(size=(n, 4))


def test_mig_is_one_for_copied_factors_and_zero_for_noise():
    factors, noise = _factors_and_noise()
    copies = noise.copy()
    copies[:, 0] = factors[:, 0]
    copies[:, 2] = 3.0 * factors[:, 1] - 2.0
    mig, per_factor = mutual_info_gap(copies, factors)
    assert len(per_factor) == 2 and mig > 0.95
    mig_noise, _ = mutual_info_gap(noise, factors)
    assert 0 <= mig_noise < 0.05


def test_mig_gap_vanishes_when_two_latents_share_a_factor():
    factors, noise = _factors_and_noise()
    latents = noise.copy()
    latents[:, 0] = factors[:, 0]
    latents[:, 1] = -factors[:, 0]  # just as informative: no single latent owns factor 0
    latents[:, 2] = factors[:, 1]
    _, per_factor = mutual_info_gap(latents, factors)
    assert per_factor[0] < 0.05 and per_factor[1] > 0.95


def test_mig_leaves_out_constant_factors():
    factors, noise = _factors_and_noise()
    noise[:, 0] = factors[:, 0]
    factors[:, 1] = 4
    mig, per_factor = mutual_info_gap(noise, factors)
    assert math.isnan(per_factor[1]) and mig == pytest.approx(per_factor[0]) and mig > 0.95


def test_assign_factors_takes_strongest_pairs_first():
    corr = np.array([[0.6, 0.9], [0.5, 0.1], [0.2, 0.3]])
    # Going factor by factor would give "a" dim 0 and leave "b" with dim 2; strongest-first does not.
    assert assign_factors(corr, ["a", "b"]) == {0: ("b", 0.9), 1: ("a", 0.5)}
    assert assign_factors(corr, ["a", "b"], min_corr=0.7) == {0: ("b", 0.9)}
    with pytest.raises(ValueError):
        assign_factors(corr, ["a"])


def test_assign_factors_recovers_a_permutation_of_factors():
    rng = np.random.default_rng(3)
    factors = rng.integers(0, 32, size=(4000, 3))
    mu = np.stack([rng.normal(size=4000), factors[:, 2] ** 2, rng.normal(size=4000), -np.log1p(factors[:, 0]), factors[:, 1]], 1)
    assigned = assign_factors(factor_correlations(mu, factors), ["shape", "scale", "pos"])
    assert {d: name for d, (name, _) in assigned.items()} == {1: "pos", 3: "shape", 4: "scale"}
