"""A convolutional VAE: encoder -> (mu, logvar), z = mu + sigma * eps, decoder -> image.

No `from __future__ import annotations` here: PyTorchModelHubMixin reads the real type of
`config` from `__init__` to rebuild the dataclass from config.json.
"""

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

LIKELIHOODS = ("bernoulli", "gaussian")


@dataclass
class VAEConfig:
    image_size: int = 28
    channels: int = 1
    latent_dim: int = 32
    # Feature maps per stride-2 stage; image_size must divide by 2 ** len(hidden_channels).
    hidden_channels: tuple = (32, 64)
    hidden_dim: int = 512  # width of the dense layer between the conv stack and the latent
    block_convs: int = 1  # extra 3x3 convs after each stride-2 stage; 0 gives a lean net for large images
    # "deconv": dense layer to a small feature map, then transposed convs. "broadcast": a spatial broadcast
    # decoder (Watters et al. 2019): z is tiled over an (image_size / 4)^2 grid with x/y coordinate channels, two
    # 3x3 convs, then two transposed convs; position is rendered by comparing z with coordinates, so position
    # latents come out monotone (a dense decoder tends to curve them through a second dimension).
    decoder: str = "deconv"
    # "bernoulli": decoder outputs pixel logits (binary data, e.g. binarized MNIST);
    # "gaussian": decoder outputs means in [0, 1] with a fixed std `gaussian_std`.
    likelihood: str = "bernoulli"
    gaussian_std: float = 0.1
    beta: float = 1.0  # weight of the KL term in the loss (beta-VAE when > 1); of the total correlation for beta-TCVAE and FactorVAE (its gamma)
    # "elbo" (VAE / beta-VAE), "beta-tcvae" (only the KL's total-correlation part is weighted) or "factor-vae" (the ELBO
    # plus beta times a critic's estimate of the total correlation); a record of how it was trained
    objective: str = "elbo"
    dataset: str = ""  # what the weights were trained on, for the UI; empty for untrained models
    # Class names of the training data, if any (for labelling latent maps).
    class_names: Optional[list] = None
    # How the training images were framed, so uploads can be framed the same way (vae_demo/imaging/framing.py): "mnist"
    # (bounding box in 20 x 20, centred by mass), "fashion" (trimmed, long side to the frame, negated) or "none".
    framing: str = "none"
    # A conditional VAE (Sohn et al. 2015) when > 0: the encoder sees the image and its label's one-hot vector, the
    # decoder z and a label, so z holds the style (thickness, slant) and the label the class.
    num_labels: int = 0
    # The known factors the first latent dimensions hold, in order (training/objectives.py supervised_loss): dimension
    # k is the axis of factor_axes[k], its mean read from the image by a small CNN of its own (`axis_reader`), the
    # decoder taught what each value looks like. None: no such axes.
    factor_axes: Optional[list] = None
    # [low, high] of the values each axis was taught: the decoder reads an axis clamped to it, so a knob moved past a
    # factor's last value keeps that value (more glasses than glasses is glasses) instead of leaving what it learned.
    factor_range: Optional[list] = None
    # The app may serve this model's image-sized networks in bfloat16 on a CPU that multiplies it natively
    # (vae_demo/device.py, models/precision.py): set for a model whose card shows its served answers follow its float32
    # figures (benchmarks/faces.py for `faces`). Training and evaluation always run in float32.
    serve_bf16: bool = False

    def __post_init__(self):
        self.hidden_channels = tuple(int(c) for c in self.hidden_channels)
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}.")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}.")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be at least 1, got {self.latent_dim}.")
        if not self.hidden_channels:
            raise ValueError("hidden_channels needs at least one stage.")
        factor = 2 ** len(self.hidden_channels)
        if self.image_size % factor != 0:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2 ** len(hidden_channels) = {factor}; "
                "change image_size or use fewer stages in hidden_channels."
            )
        if self.objective not in ("elbo", "beta-tcvae", "factor-vae"):
            raise ValueError(f"objective must be 'elbo', 'beta-tcvae' or 'factor-vae', got {self.objective!r}.")
        if self.framing not in ("none", "mnist", "fashion", "faces"):
            raise ValueError(f"framing must be 'none', 'mnist', 'fashion' or 'faces', got {self.framing!r}.")
        if self.framing in ("mnist", "fashion") and self.channels != 1:
            raise ValueError(f"framing {self.framing!r} is for grey images; use 'faces' or 'none' with channels=3.")
        if self.framing == "faces" and self.channels != 3:
            raise ValueError("framing 'faces' is for colour images (channels=3).")
        if self.decoder not in ("deconv", "broadcast"):
            raise ValueError(f"decoder must be 'deconv' or 'broadcast', got {self.decoder!r}.")
        if self.decoder == "broadcast" and self.image_size % 4:
            raise ValueError(f"the broadcast decoder needs image_size divisible by 4, got {self.image_size}.")
        if self.block_convs < 0:
            raise ValueError(f"block_convs must be 0 or more, got {self.block_convs}.")
        if self.num_labels < 0 or (self.num_labels and self.class_names and len(self.class_names) != self.num_labels):
            raise ValueError(f"num_labels must be 0 (unconditional) or the number of class names, got {self.num_labels}.")
        if self.factor_axes is not None and (len(self.factor_axes) > self.latent_dim or self.num_labels or self.image_size % 8):
            raise ValueError("factor_axes names at most latent_dim axes, of an unconditional model of images whose side divides by 8.")
        if self.factor_range is not None and (not self.factor_axes or len(self.factor_range) != len(self.factor_axes)
                                              or any(len(r) != 2 or r[0] > r[1] for r in self.factor_range)):
            raise ValueError("factor_range gives [low, high] for each of the factor_axes.")
        if self.beta < 0 or self.gaussian_std <= 0:
            raise ValueError("beta must be >= 0 and gaussian_std > 0.")


@dataclass
class VAEOutput:
    reconstruction: torch.Tensor  # (B, C, H, W) in [0, 1]
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    z: torch.Tensor  # (B, D) the latent actually decoded
    rec_loss: Optional[torch.Tensor] = None  # (B,) -log p(x|z) in nats
    kl: Optional[torch.Tensor] = None  # (B,) KL(q(z|x) || N(0, I)) in nats
    loss: Optional[torch.Tensor] = None  # scalar: mean(rec_loss + beta * kl)


def _down(c_in: int, c_out: int, extra: int) -> nn.Module:
    layers = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
    for _ in range(extra):
        layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.SiLU()]
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int, extra: int) -> nn.Module:
    layers = [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.SiLU()]
    for _ in range(extra):
        layers += [nn.Conv2d(c_out, c_out, 3, padding=1), nn.SiLU()]
    return nn.Sequential(*layers)


class VAE(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="vae-demo",
    tags=["vae", "variational-autoencoder", "vae-demo"],
    license="mit",
):
    # What the app may do with this model (photo autoencoders declare fewer; see models/photo.py).
    capabilities = frozenset({"reconstruct", "sample", "interpolate", "sliders", "traverse", "latent_map"})
    deterministic = False  # the encoder outputs a distribution, not a point
    kl_defined = True
    notes: dict = {}  # nothing it cannot do (photo autoencoders say what they cannot, see models/photo.py)
    info = None  # where it was loaded from: set by load_vae (vae_demo.models.protocol.ModelInfo)

    def __init__(self, config: VAEConfig):
        super().__init__()
        if isinstance(config, dict):  # tolerate a plain dict (e.g. read by hand from config.json)
            config = VAEConfig(**config)
        self.config = config
        labels = config.num_labels
        if labels:  # a conditional model needs a label wherever it encodes or decodes (see inference.condition)
            self.capabilities = frozenset({"reconstruct", "sample", "interpolate", "analogy"})
        chans = config.hidden_channels
        self.bottom = config.image_size // 2 ** len(chans)
        flat = chans[-1] * self.bottom**2

        stages, c_in = [], config.channels
        for c in chans:
            stages.append(_down(c_in, c, config.block_convs))
            c_in = c
        self.encoder = nn.Sequential(*stages, nn.Flatten(), nn.Linear(flat, config.hidden_dim), nn.SiLU())
        self.to_moments = nn.Linear(config.hidden_dim + labels, 2 * config.latent_dim)
        if config.factor_axes:  # reads the known factors' values: a regression of its own, not a share of the encoder's
            small = config.image_size // 8
            self.axis_reader = nn.Sequential(
                _down(config.channels, 16, 0), _down(16, 32, 0), _down(32, 64, 0), nn.Flatten(),
                nn.Linear(64 * small * small, 128), nn.SiLU(), nn.Linear(128, len(config.factor_axes)),
            )
        if config.factor_range:  # (2, K) low and high of each axis: a buffer, made once rather than on every decode
            self.register_buffer("axis_range", torch.tensor(config.factor_range, dtype=torch.float32).T.contiguous(),
                                 persistent=False)

        if config.decoder == "broadcast":
            g, c = config.image_size // 4, chans[min(1, len(chans) - 1)]
            # numpy, not torch.linspace/meshgrid: under from_pretrained's device context those import torch._dynamo, slowly
            ramp = np.linspace(-1.0, 1.0, g, dtype=np.float32)
            coords = torch.from_numpy(np.stack(np.meshgrid(ramp, ramp, indexing="xy"))[None].copy())
            self.register_buffer("coords", coords, persistent=False)  # (1, 2, g, g): x, y in [-1, 1]
            self.from_latent = nn.Sequential(
                nn.Conv2d(config.latent_dim + labels + 2, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1), nn.SiLU()
            )
            ups = [_up(c, chans[0], config.block_convs), _up(chans[0], chans[0], config.block_convs)]
        else:
            self.from_latent = nn.Sequential(
                nn.Linear(config.latent_dim + labels, config.hidden_dim), nn.SiLU(), nn.Linear(config.hidden_dim, flat), nn.SiLU()
            )
            ups = [_up(chans[i], chans[i - 1], config.block_convs) for i in range(len(chans) - 1, 0, -1)]
            ups.append(_up(chans[0], chans[0], config.block_convs))
        self.decoder = nn.Sequential(*ups, nn.Conv2d(chans[0], config.channels, 3, padding=1))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def one_hot(self, y, n: int) -> torch.Tensor:
        """labels (n,) ints, or (n, L) weights (a mix of classes) -> (n, L) float rows; a conditional model's input"""
        y = torch.as_tensor(y, device=self.device)
        if y.dim() == 0:
            y = y.expand(n)
        if y.dim() == 1:
            if y.dtype.is_floating_point or ((y < 0) | (y >= self.config.num_labels)).any():
                raise ValueError(f"labels must be whole numbers 0 to {self.config.num_labels - 1}.")
            return F.one_hot(y.long(), self.config.num_labels).float()
        return y.float()

    def with_label(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """(B, D) z, labels -> (B, D + L): what a conditional decoder reads. z that already has the L label columns
        (a latent the API handed out) passes as it is; an unconditional model takes z alone."""
        labels = self.config.num_labels
        if not labels or (z.shape[1] == self.config.latent_dim + labels and y is None):
            return z
        if y is None:
            raise ValueError("this is a conditional VAE: it needs a label to decode (or z followed by the label's one-hot).")
        return torch.cat([z, self.one_hot(y, len(z)).to(z.dtype)], 1)

    def encode(self, x: torch.Tensor, y=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) in [0, 1] (and the labels, for a conditional model) -> (B, D) mean and log-variance of q(z|x)"""
        x = x * 2 - 1  # the networks read [-1, 1]
        h = self.encoder(x)
        if self.config.num_labels:
            if y is None:
                raise ValueError("this is a conditional VAE: it needs the image's label to encode it.")
            h = torch.cat([h, self.one_hot(y, len(h)).to(h.dtype)], 1)
        mu, logvar = self.to_moments(h).chunk(2, dim=1)
        if self.config.factor_axes:  # the first dimensions' means are the factors' values, as the axis reader reads them
            mu = torch.cat([self.axis_reader(x), mu[:, len(self.config.factor_axes) :]], 1)
        return mu, logvar.clamp(-30.0, 20.0)

    def decode_logits(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """(B, D) -> (B, C, H, W) unbounded decoder output (Bernoulli logits or pre-sigmoid means)"""
        z = self.with_label(z, y)
        if self.config.factor_range:  # each known factor's axis at most as far as the values it was taught
            lo, hi = self.axis_range.to(z.dtype)
            z = torch.cat([torch.clamp(z[:, : len(lo)], lo, hi), z[:, len(lo) :]], 1)
        if self.config.decoder == "broadcast":  # (B, D) -> (B, D + 2, g, g): z at every grid cell, plus where it is
            b, (_, _, g, _) = len(z), self.coords.shape
            grid = torch.cat([z[:, :, None, None].expand(b, z.shape[1], g, g), self.coords.expand(b, 2, g, g)], 1)
            return self.decoder(self.from_latent(grid))
        h = self.from_latent(z).view(-1, self.config.hidden_channels[-1], self.bottom, self.bottom)
        return self.decoder(h)

    def decode(self, z: torch.Tensor, y=None) -> torch.Tensor:
        """(B, D) -> (B, C, H, W) in [0, 1]; pixel probabilities for a Bernoulli likelihood"""
        return torch.sigmoid(self.decode_logits(z, y))

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: Optional[torch.Generator] = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): sampling that gradients can flow through"""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def pixel_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """targets (B, C, H, W), decoder output (B, C, H, W) -> (B, C, H, W) -log p(x|z) of each pixel, in nats"""
        if self.config.likelihood == "bernoulli":
            return F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")
        std = self.config.gaussian_std
        return 0.5 * ((x - torch.sigmoid(logits)) / std) ** 2 + math.log(std) + 0.5 * math.log(2 * math.pi)

    def reconstruction_nll(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """targets (B, C, H, W), decoder output (B, C, H, W) -> (B,) -log p(x|z) in nats"""
        return self.pixel_nll(x, logits).flatten(1).sum(1)

    @staticmethod
    def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """(B, D), (B, D) -> (B, D) KL(N(mu, sigma^2) || N(0, 1)) per latent dimension, in nats"""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)

    def forward(
        self,
        x: torch.Tensor,
        sample_posterior: bool = True,
        generator: Optional[torch.Generator] = None,
        compute_loss: bool = False,
        target: Optional[torch.Tensor] = None,
        beta: Optional[float] = None,
        y=None,
    ) -> VAEOutput:
        """(B, C, H, W) in [0, 1] -> VAEOutput; `target` defaults to x (pass the binarized x when training);
        `y`: the labels, for a conditional model"""
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar, generator) if sample_posterior else mu
        logits = self.decode_logits(z, y)
        out = VAEOutput(reconstruction=torch.sigmoid(logits), mu=mu, logvar=logvar, z=z)
        if compute_loss:
            out.rec_loss = self.reconstruction_nll(x if target is None else target, logits)
            out.kl = self.kl_per_dim(mu, logvar).sum(1)
            b = self.config.beta if beta is None else beta
            out.loss = (out.rec_loss + b * out.kl).mean()
        return out
