"""Training objectives beyond the plain ELBO: the β-TCVAE decomposition of the KL term (Chen et al. 2018)
and FactorVAE's discriminator estimate of the total correlation (Kim & Mnih 2018).

KL(q(z|x) || p(z)) averaged over the data splits into
  index-code mutual information  I(x; z)
+ total correlation              KL(q(z) || prod_d q(z_d))     <- penalised by beta: dependent latents
+ dimension-wise KL              sum_d KL(q(z_d) || p(z_d))
Penalising only the total correlation pushes the latent dimensions to be statistically independent,
which is what lines them up with independent generative factors (x position, y position, scale, ...).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from vae_demo.models.vae import VAE, VAEOutput

_LOG_2PI = math.log(2 * math.pi)


def _log_normal(x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_LOG_2PI + logvar + (x - mu).pow(2) * torch.exp(-logvar))


def kl_decomposition(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int) -> tuple:
    """(B, D) samples and posterior parameters, N -> (mi, tc, dim_kl), each (B,), estimated on the
    minibatch with minibatch-weighted sampling: log q(z) ~ logsumexp_j log q(z | x_j) - log(B N)."""
    b = z.shape[0]
    mat = _log_normal(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # (B, B, D): log q(z_i,d | x_j)
    norm = math.log(b * dataset_size)
    log_qz = torch.logsumexp(mat.sum(2), dim=1) - norm  # (B,)
    log_prod_qzd = (torch.logsumexp(mat, dim=1) - norm).sum(1)  # (B,)
    log_qz_x = _log_normal(z, mu, logvar).sum(1)
    log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z)).sum(1)
    return log_qz_x - log_qz, log_qz - log_prod_qzd, log_prod_qzd - log_pz


def beta_tcvae_loss(model, x: torch.Tensor, beta: float, dataset_size: int, anneal: float = 1.0):
    """-> (loss, VAEOutput): reconstruction + MI + beta * TC + dimension-wise KL, the last two warmed up by `anneal`."""
    out = model(x, compute_loss=True)
    mi, tc, dim_kl = kl_decomposition(out.z, out.mu, out.logvar, dataset_size)
    loss = (out.rec_loss + mi + anneal * (beta * tc + dim_kl)).mean()
    return loss, out


class TCDiscriminator(nn.Module):
    """FactorVAE's critic: tells a sample of q(z) from one of prod_d q(z_d) (the batch with each dimension shuffled
    on its own). Its logit log D/(1-D) estimates log q(z) - sum_d log q(z_d), so its mean estimates the total
    correlation. Unlike the minibatch estimate above, it does not need the posteriors of a batch to overlap: it
    sees a dependence such as "this dimension is lower whenever those two are far from 0" directly."""

    def __init__(self, latent_dim: int, width: int = 512, depth: int = 4):
        super().__init__()
        layers, d = [], latent_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.LeakyReLU(0.2)]
            d = width
        self.net = nn.Sequential(*layers, nn.Linear(d, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) logit that z came from q(z) rather than from the product of its marginals"""
        return self.net(z).squeeze(1)


def permute_dims(z: torch.Tensor, generator: torch.Generator = None) -> torch.Tensor:
    """(B, D) -> (B, D): each column shuffled independently, a sample of prod_d q(z_d)"""
    b = z.shape[0]
    idx = torch.stack([torch.randperm(b, generator=generator) for _ in range(z.shape[1])], 1).to(z.device)
    return z.gather(0, idx)


def factor_vae_loss(model, critic: TCDiscriminator, x: torch.Tensor, gamma: float, anneal: float = 1.0):
    """-> (loss, VAEOutput, tc): the ELBO's reconstruction + KL, plus gamma * the critic's TC estimate, warmed up by
    `anneal`. Train the critic afterwards with `critic_loss` on the same z, detached."""
    out = model(x, compute_loss=True, beta=1.0)
    tc = critic(out.z)
    loss = (out.rec_loss + out.kl + anneal * gamma * tc).mean()
    return loss, out, tc.mean().detach()


def critic_loss(critic: TCDiscriminator, z: torch.Tensor, generator: torch.Generator = None) -> torch.Tensor:
    """binary cross-entropy of the critic: samples of q(z) are 1, dimension-shuffled samples are 0"""
    z = z.detach()
    real, shuffled = critic(z), critic(permute_dims(z, generator))
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        shuffled, torch.zeros_like(shuffled))


def supervised_kl(mu: torch.Tensor, logvar: torch.Tensor, axes: torch.Tensor, std: float) -> torch.Tensor:
    """(B, D) posterior, (B, K) known factor values -> (B,) KL(q(z|x) || p(z|y)) in nats, where p(z_k | y) is
    N(axes_k, std^2) for the first K dimensions and N(0, 1) for the rest."""
    k = axes.shape[1]
    head = 0.5 * (((mu[:, :k] - axes) ** 2 + logvar[:, :k].exp()) / std**2 - 1.0 - logvar[:, :k] + 2 * math.log(std))
    return head.sum(1) + VAE.kl_per_dim(mu[:, k:], logvar[:, k:]).sum(1)


def supervised_loss(model, x: torch.Tensor, axes: torch.Tensor, std: float, beta: float, pairs: tuple = None):
    """-> (loss, VAEOutput): a VAE whose first K latents are the data's known factors (Kingma et al. 2014's M2 with
    every label seen, the labels as values on an axis). The decoder reads the face's factor values there (plus
    N(0, std^2) noise, so it also learns what lies between them) and z ~ q(z|x) in the other dimensions; the model's
    axis reader learns to read the values from the image, through the KL to p(z_k | y) = N(value, std^2) alone. The
    factors are told to the decoder, so the other dimensions have nothing to gain by holding them (each nat they hold
    costs KL), and moving along axis k changes factor k and leaves the rest of the face. (A prior that merely pulled
    the encoder's first means towards the values was overruled by the reconstruction term, thousands of nats to its
    tens: the means followed the faces' looks, and the glasses axis correlated 0.57 with glasses.)

    That alone leaves the decoder free to read a factor from the other latents as well, since in every training face
    they agree with the axis; it then follows them, and moving the axis changes less than it should. `pairs` =
    (x', axes', use): the same faces with one part changed, their values, and a (B,) bool of which faces are decoded
    as their pair. For those the decoder gets the pair's values and the face's own other latents and must draw x', so
    a part can only come from its axis (counterfactual pairs, as in Kulkarni et al. 2015's DC-IGN, whose batches vary
    one factor at a time)."""
    k = axes.shape[1]
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu, logvar)
    told, target = axes, x
    if pairs is not None:
        changed, changed_axes, use = pairs
        told = torch.where(use[:, None], changed_axes, axes)
        target = torch.where(use[:, None, None, None], changed, x)
    z = torch.cat([told + std * torch.randn_like(told), z[:, k:]], 1)
    logits = model.decode_logits(z)
    rec = model.reconstruction_nll(target, logits)
    kl = supervised_kl(mu, logvar, axes, std)
    loss = (rec + beta * kl).mean()
    return loss, VAEOutput(reconstruction=torch.sigmoid(logits), mu=mu, logvar=logvar, z=z, rec_loss=rec, kl=kl, loss=loss)
