"""The models a running app serves: loaded once, looked up by name, added to at run time."""

import threading
from typing import Optional

import torch

from vae_demo.serving.edits import directions_of
from vae_demo.hub.loading import ModelLoadError, load_vae
from vae_demo.models.protocol import LoadedModel


class ModelRegistry:
    def __init__(self, device: torch.device):
        self.device = device
        self._models: dict = {}
        self._lock = threading.Lock()

    def load(self, source: str, allow_local: bool = True, revision: Optional[str] = None) -> LoadedModel:
        """Load (or return the already loaded) model; a failure leaves the loaded models untouched."""
        source = str(source or "").strip()
        with self._lock:
            if source in self._models:
                return self._models[source]
        vae = load_vae(source, device=self.device, revision=revision, allow_local=allow_local)
        with self._lock:
            self._models.setdefault(vae.info.name, vae)
            return self._models[vae.info.name]

    def get(self, name: Optional[str] = None) -> LoadedModel:
        """A loaded model by name; None or "" -> the first loaded model."""
        with self._lock:
            if not self._models:
                raise ModelLoadError("No model is loaded.")
            if name is None or str(name).strip() == "":
                return next(iter(self._models.values()))
            if name not in self._models:
                raise ModelLoadError(f"No model named {name!r} is loaded; loaded: {', '.join(self._models)}.")
            return self._models[name]

    def names(self) -> list:
        with self._lock:
            return list(self._models)

    def describe(self) -> list:
        """One JSON-ready dict per loaded model, for /models and the UI."""
        with self._lock:
            items = list(self._models.items())
        return [
            {
                "name": name,
                "capabilities": sorted(v.capabilities),
                "latent_dim": v.config.latent_dim,
                "image_size": v.config.image_size,
                "channels": v.config.channels,
                "likelihood": v.config.likelihood,
                "beta": v.config.beta,
                "dataset": v.config.dataset,
                "attributes": [d.name for d in directions_of(v)],
                "conditional": bool(v.config.num_labels),
                "source": v.info.source,
                "device": str(self.device),
            }
            for name, v in items
        ]
