"""What an image costs in bits under a VAE: a VAE is a compressor.

With bits-back coding (Hinton & van Camp 1993; Townsend et al. 2019, BB-ANS) an image can be sent in about −ELBO/ln 2
bits: the code z costs its KL (the rate R), the pixels given z cost −log p(x|z) (the distortion D). The IWAE bound
with k samples is tighter: it approaches −log p(x), the shortest code the model allows.

A Bernoulli model's probabilities are of binary images, so its bits are those of the image thresholded at 1/2 (and
the PNG compared is of that binary image). A Gaussian model's density becomes a probability of 8-bit pixels by
multiplying by the bin width 1/256 per value: + 8 bits per value.
"""

import io
import math

import torch
from PIL import Image

from vae_demo.models.vae import VAE

LN2 = math.log(2)


def coded_image(vae, x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) in [0, 1] -> the image the model's likelihood gives a probability to (binary for Bernoulli)"""
    return (x >= 0.5).to(x.dtype) if vae.config.likelihood == "bernoulli" else x


def png_bytes(x: torch.Tensor, binary: bool) -> int:
    """(1, C, H, W) in [0, 1] -> the size of the smallest PNG Pillow writes of it (1-bit for a binary image)"""
    arr = (x[0].detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    img = Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")
    if binary:
        img = img.convert("1")
    buf = io.BytesIO()
    img.save(buf, "png", optimize=True)
    return len(buf.getvalue())


@torch.inference_mode()
def image_bits(vae, x: torch.Tensor, k: int = 64, y=None, seed: int = 0) -> dict:
    """(1, C, H, W) in [0, 1] -> {"rate", "distortion", "elbo", "iwae" (bits), "iwae_k", "png_bytes", "dims",
    "bits_per_dim"}; the rate and distortion average k seeded posterior samples"""
    x = coded_image(vae, x)
    mu, logvar = vae.encode(x, y)
    g = torch.Generator(device=x.device).manual_seed(seed)
    z = vae.reparameterize(mu.expand(k, -1), logvar.expand(k, -1), generator=g)
    log_px = -vae.reconstruction_nll(x.expand(k, -1, -1, -1), vae.decode_logits(z, y))  # (k,)
    log_pz = -0.5 * (z**2 + math.log(2 * math.pi)).sum(1)
    log_qz = -0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi)).sum(1)
    iwae = float(torch.logsumexp(log_px + log_pz - log_qz, 0)) - math.log(k)
    dims = x[0].numel()
    quantise = 0.0 if vae.config.likelihood == "bernoulli" else dims * 8.0  # density -> 8-bit probabilities
    rate = float(VAE.kl_per_dim(mu, logvar).sum()) / LN2
    distortion = float(-log_px.mean()) / LN2 + quantise
    bound = -iwae / LN2 + quantise
    return {"rate": round(rate, 1), "distortion": round(distortion, 1), "elbo": round(rate + distortion, 1),
            "iwae": round(bound, 1), "iwae_k": k, "dims": dims, "bits_per_dim": round(bound / dims, 4),
            "png_bytes": png_bytes(x, vae.config.likelihood == "bernoulli")}


def test_bits_per_dim(nll_nats: float, dims: int, likelihood: str) -> float:
    """a test set's NLL (nats per image) -> bits per dimension (8-bit pixels for a Gaussian likelihood)"""
    return nll_nats / (dims * LN2) + (0.0 if likelihood == "bernoulli" else 8.0)


def sentence(b: dict, size: int, binary: bool) -> str:
    """the Reconstruct tab's line: what the image costs under this model, against its PNG"""
    what = "your image (thresholded to black and white, as this model's likelihood is over binary pixels)" if binary else "your image"
    png = b["png_bytes"]
    return (f"**What it costs in bits.** Under this model {what} costs **{b['rate']:.0f} bits** (the KL: the code) + "
            f"**{b['distortion']:.0f} bits** (the reconstruction) = −ELBO / ln 2 = **{b['elbo']:.0f} bits**; the IWAE "
            f"bound (k = {b['iwae_k']}) says ≤ **{b['iwae']:.0f} bits** ({b['bits_per_dim']:.3f} per pixel value). "
            f"The PNG file of the same {size} × {size} image is {png} bytes ({8 * png} bits)"
            + ("" if b["iwae"] < 8 * png else ": smaller, because a Gaussian likelihood with one fixed σ prices every "
               "pixel's noise, where a PNG codes flat colour almost for free") + ". A VAE is a compressor: "
            "with bits-back coding the sender draws z with bits of other data that the receiver recovers on decoding, "
            "so an image is sent in about −ELBO / ln 2 bits (Townsend et al. 2019).")
