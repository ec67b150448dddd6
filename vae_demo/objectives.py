"""Training objectives beyond the plain ELBO: the β-TCVAE decomposition of the KL term (Chen et al. 2018).

KL(q(z|x) || p(z)) averaged over the data splits into
  index-code mutual information  I(x; z)
+ total correlation              KL(q(z) || prod_d q(z_d))     <- penalised by beta: dependent latents
+ dimension-wise KL              sum_d KL(q(z_d) || p(z_d))
Penalising only the total correlation pushes the latent dimensions to be statistically independent,
which is what lines them up with independent generative factors (x position, y position, scale, ...).
"""

import math

import torch

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
