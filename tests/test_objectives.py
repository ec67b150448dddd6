import math

import torch

from vae_demo.model import VAE
from vae_demo.objectives import beta_tcvae_loss, kl_decomposition


def test_terms_add_up_to_the_sampled_kl():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(256, 3, generator=g), torch.randn(256, 3, generator=g) * 0.3 - 1
    z = VAE.reparameterize(mu, logvar, g)
    mi, tc, dim_kl = kl_decomposition(z, mu, logvar, dataset_size=256)
    log_q = (-0.5 * (math.log(2 * math.pi) + logvar + (z - mu) ** 2 / logvar.exp())).sum(1)
    log_p = (-0.5 * (math.log(2 * math.pi) + z**2)).sum(1)
    assert torch.allclose(mi + tc + dim_kl, log_q - log_p, atol=1e-4)
    # Averaged over samples, log q - log p estimates the closed-form KL.
    assert abs((log_q - log_p).mean() - VAE.kl_per_dim(mu, logvar).sum(1).mean()) < 0.5


def test_total_correlation_detects_dependent_latents():
    g = torch.Generator().manual_seed(1)
    n = 512
    logvar = torch.full((n, 2), -4.0)
    independent = torch.randn(n, 2, generator=g)
    a = torch.randn(n, 1, generator=g)
    dependent = torch.cat([a, a + 0.05 * torch.randn(n, 1, generator=g)], dim=1)  # z2 copies z1
    tc_ind = kl_decomposition(independent, independent, logvar, n)[1].mean()
    tc_dep = kl_decomposition(dependent, dependent, logvar, n)[1].mean()
    assert tc_dep > tc_ind + 0.5


def test_beta_tcvae_loss_trains(tiny_vae):
    x = torch.rand(16, 1, 8, 8).round()
    loss, out = beta_tcvae_loss(tiny_vae, x, beta=6.0, dataset_size=1000)
    loss.backward()
    assert torch.isfinite(loss) and out.reconstruction.shape == x.shape
    assert all(p.grad is not None for p in tiny_vae.parameters())
