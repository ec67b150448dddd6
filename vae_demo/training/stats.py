"""What a trained model knows about its test set, stored beside its weights as latent_stats.json."""

import torch

from vae_demo.models.vae import VAE


@torch.inference_mode()
def latent_statistics(model: VAE, images: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int = 1000) -> dict:
    """(N, C, H, W) test images -> per-dimension KL and spread of the posterior means.

    `kl_order` lists the latent dimensions from most to least informative (largest average KL first);
    the slider tab shows them in that order. A dimension whose mean barely moves across the test set
    (variance of mu below 0.01) is "inactive": the decoder ignores it (posterior collapse).
    """
    model.eval()
    mus, kls = [], []
    for i in range(0, len(images), batch_size):
        y = labels[i : i + batch_size] if model.config.num_labels else None  # a conditional model encodes (x, label)
        mu, logvar = model.encode(images[i : i + batch_size].to(model.device), y)
        mus.append(mu.cpu())
        kls.append(VAE.kl_per_dim(mu, logvar).cpu())
    mu = torch.cat(mus)
    kl = torch.cat(kls).mean(0)
    var = mu.var(0)
    return {
        "n_images": len(images),
        "kl_per_dim": [round(v, 5) for v in kl.tolist()],
        "kl_order": torch.argsort(kl, descending=True).tolist(),
        "mu_mean": [round(v, 5) for v in mu.mean(0).tolist()],
        "mu_std": [round(v, 5) for v in var.sqrt().tolist()],
        "active_units": int((var > 0.01).sum()),
    }
