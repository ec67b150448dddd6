"""What every loaded model offers the app: this project's VAE and a diffusers photo autoencoder alike.

The serving code is written against `LoadedModel`, not against a class, so it asks a model what it can do
(`capabilities`, `notes`, `config.latent_dim is None` for a spatial latent) instead of probing it with getattr.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Protocol, runtime_checkable

import torch


@dataclass
class ModelInfo:
    """Where a loaded model came from and what was shipped with it; set by `load_vae`."""

    name: str  # what the UI and the API call it
    source: str  # what was asked for: a bundled name, a folder or a repo id
    folder: Path  # where config.json and model.safetensors were read
    revision: Optional[str] = None
    stats: Optional[dict] = None  # latent_stats.json: per-dimension KL, order, spread of mu
    examples: list = field(default_factory=list)  # example PNGs shipped with the model


class ModelConfig(Protocol):
    latent_dim: Optional[int]  # None: a (C, H/d, W/d) latent whose size follows the image (photo autoencoders)
    image_size: int  # the side the model sees (the long side for photo models)
    channels: int  # 1 grey, 3 colour
    likelihood: str  # "bernoulli" | "gaussian": what p(x|z) is, for the ELBO's reconstruction term
    dataset: str  # what it was trained on, for labels and the classifier's verdict
    beta: float  # the KL term's weight (γ for FactorVAE)
    objective: str  # "elbo" | "beta-tcvae" | "factor-vae"
    class_names: Optional[list]
    framing: str  # "mnist" | "fashion" | "none": how an upload is framed like the training data
    num_labels: int  # 0, or a conditional model's number of classes


@runtime_checkable
class LoadedModel(Protocol):
    config: ModelConfig
    capabilities: frozenset  # what the app may do with it: "reconstruct", "sample", "sliders", ...
    notes: dict  # capability -> a sentence for the page where the model cannot do it or does it differently
    deterministic: bool  # True: the encoder gives a point (TAESD), no posterior to sample
    kl_defined: bool  # False: no KL term to report
    info: Optional[ModelInfo]  # None for a model built in memory rather than loaded

    @property
    def device(self) -> torch.device: ...

    def encode(self, x: torch.Tensor) -> tuple:
        """(B, C, H, W) in [0, 1] -> (mu, logvar), each (B, latent_dim) or (B, C', h, w)"""

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """latents -> (B, C, H, W) in [0, 1]"""
