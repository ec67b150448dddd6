import math

import torch

from vae_demo.models.vae import VAE
from vae_demo.training.objectives import TCDiscriminator, beta_tcvae_loss, critic_loss, factor_vae_loss, kl_decomposition, permute_dims


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


def test_permute_dims_keeps_each_dimension_and_breaks_their_pairing():
    g = torch.Generator().manual_seed(2)
    z = torch.arange(200, dtype=torch.float32).view(100, 2)  # column 1 = column 0 + 1 on every row
    p = permute_dims(z, g)
    assert all(torch.equal(p[:, d].sort().values, z[:, d].sort().values) for d in range(2))
    assert (p[:, 1] == p[:, 0] + 1).float().mean() < 0.1


def test_the_critic_learns_to_see_a_dependence_the_batch_estimate_misses():
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    n = 512

    def batch(dependent: bool) -> torch.Tensor:
        a = torch.randn(n, 1, generator=g)
        b = a.abs() + 0.1 * torch.randn(n, 1, generator=g) if dependent else torch.randn(n, 1, generator=g)
        return torch.cat([a, b], 1)  # dependent: b = |a| + noise, uncorrelated with a yet not independent of it

    def trained_estimate(dependent: bool) -> float:
        critic = TCDiscriminator(2, width=64, depth=2)
        opt = torch.optim.Adam(critic.parameters(), lr=3e-3)
        for _ in range(300):
            opt.zero_grad()
            critic_loss(critic, batch(dependent), g).backward()
            opt.step()
        with torch.no_grad():
            return critic(batch(dependent)).mean().item()

    assert abs(torch.corrcoef(batch(True).T)[0, 1]) < 0.15  # a correlation would not show it
    assert trained_estimate(True) > trained_estimate(False) + 0.3


def test_factor_vae_loss_trains_the_vae_and_leaves_the_critic_to_its_own_step(tiny_vae):
    x = torch.rand(16, 1, 8, 8).round()
    critic = TCDiscriminator(tiny_vae.config.latent_dim, width=16, depth=1)
    loss, out, tc = factor_vae_loss(tiny_vae, critic, x, gamma=35.0)
    loss.backward()
    assert torch.isfinite(loss) and tc.ndim == 0 and not tc.requires_grad
    assert all(p.grad is not None for p in tiny_vae.parameters())
    # with gamma = 0 it is the plain ELBO
    plain, out0, _ = factor_vae_loss(tiny_vae, critic, x, gamma=0.0)
    assert torch.allclose(plain, (out0.rec_loss + out0.kl).mean())


def test_the_supervised_prior_pulls_the_first_dims_to_the_factor_and_leaves_the_rest_standard():
    from vae_demo.training.objectives import supervised_kl

    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(64, 6, generator=g), torch.randn(64, 6, generator=g) * 0.3 - 1
    axes = torch.randn(64, 2, generator=g)
    # with targets 0 and a standard deviation of 1 it is the plain KL to N(0, I)
    assert torch.allclose(supervised_kl(mu, logvar, torch.zeros(64, 2), 1.0), VAE.kl_per_dim(mu, logvar).sum(1), atol=1e-5)
    # it is 0 on the axes exactly when q(z_k|x) is the factor's prior, and grows as μ_k leaves the factor's value
    on = torch.cat([axes, torch.zeros(64, 4)], 1)
    logvar_on = torch.cat([torch.full((64, 2), 2 * math.log(0.1)), torch.zeros(64, 4)], 1)
    assert supervised_kl(on, logvar_on, axes, 0.1).abs().max() < 1e-4
    off = on.clone()
    off[:, 0] += 0.2
    assert torch.allclose(supervised_kl(off, logvar_on, axes, 0.1), torch.full((64,), 0.5 * 0.2**2 / 0.1**2), atol=1e-3)
