"""vae-demo: a variational autoencoder you can see. `load_vae` is the one way to load a model."""

from .loading import ModelLoadError, bundled_models, load_vae
from .model import VAE, VAEConfig, VAEOutput

__all__ = ["VAE", "VAEConfig", "VAEOutput", "load_vae", "bundled_models", "ModelLoadError"]
__version__ = "0.1.0"
