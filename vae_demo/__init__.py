"""vae-demo: a variational autoencoder you can see. `load_vae` is the one way to load a model."""

from vae_demo.hub.loading import ModelLoadError, bundled_models, load_vae
from vae_demo.models.vae import VAE, VAEConfig, VAEOutput

__all__ = ["VAE", "VAEConfig", "VAEOutput", "load_vae", "bundled_models", "ModelLoadError"]
__version__ = "0.1.0"
