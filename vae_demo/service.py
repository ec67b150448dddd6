"""The app's handlers as plain Python: model name + user inputs -> PIL images, lists and dicts.

app.py binds these to Gradio components and turns DemoError into gr.Error; the CLI and the tests call
them directly. Every user-facing failure is raised as one of USER_ERRORS with a readable message.
"""

import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import torch
from PIL import Image

from . import inference
from .images import ImageError, display_scale, grid, heatmap, save_gif, to_pil
from .inference import InputError
from .loading import ModelLoadError, bundled_models
from .registry import ModelRegistry

USER_ERRORS = (InputError, ImageError, ModelLoadError)
GIF_KEEP = 256  # GIFs kept on disk for download; older ones are deleted


def image_arg(image):
    """What Gradio or a caller passes for an image (path, FileData dict, PIL, array) -> what images.open_image takes."""
    if isinstance(image, dict):
        image = image.get("path") or image.get("url")
        if image is None:
            raise ImageError("No image was given. Upload an image or pick an example.")
    return image


class DemoService:
    def __init__(self, registry: ModelRegistry, gif_dir: Optional[Path] = None):
        self.registry = registry
        self.gif_dir = Path(gif_dir or tempfile.mkdtemp(prefix="vae-demo-gifs-"))
        self.gif_dir.mkdir(parents=True, exist_ok=True)
        self._gif_lock = threading.Lock()

    @classmethod
    def from_sources(cls, sources: list, device: torch.device) -> "DemoService":
        registry = ModelRegistry(device)
        for s in sources or ["mnist"]:
            registry.load(s, allow_local=True)
        return cls(registry)

    # --- models -------------------------------------------------------------------------
    def models(self) -> list:
        return self.registry.describe()

    def model_names(self) -> list:
        return self.registry.names()

    def load_model(self, source: str) -> str:
        """A bundled name or Hub repo id typed by a visitor -> the loaded model's name (no local paths)."""
        return self.registry.load(source, allow_local=False).info.name

    def model_card(self, model: Optional[str] = None) -> str:
        """A short Markdown description of a loaded model: data, latent size, likelihood, beta."""
        v = self.registry.get(model)
        c = v.config
        stats = v.info.stats or {}
        active = stats.get("active_units")
        lines = [
            f"**{v.info.name}** — trained on {c.dataset or 'unknown data'}; "
            f"{c.image_size}×{c.image_size} {'grey' if c.channels == 1 else 'RGB'} images; "
            f"latent size **{c.latent_dim}**" + (f" ({active} active)" if active is not None else "")
            + f"; {c.likelihood} likelihood; β = {c.beta:g}."
        ]
        return " ".join(lines)

    def scale(self, model: Optional[str] = None) -> int:
        return display_scale(self.registry.get(model).config.image_size)

    def examples(self, model: Optional[str] = None) -> list:
        """Example image paths shipped with a model (falls back to the first bundled model's)."""
        try:
            ex = self.registry.get(model).info.examples
        except ModelLoadError:
            ex = []
        if not ex:
            from .loading import CHECKPOINTS_DIR

            for name in bundled_models():
                ex = sorted((CHECKPOINTS_DIR / name / "examples").glob("*.png"))
                if ex:
                    break
        return [str(p) for p in ex]

    # --- tabs ---------------------------------------------------------------------------
    def reconstruct(self, image, model: Optional[str] = None):
        """image -> (reconstruction, input as seen, error map, posterior samples, metrics dict)"""
        vae = self.registry.get(model)
        r = inference.reconstruct(vae, image_arg(image))
        s = display_scale(vae.config.image_size)
        metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.metrics.items()}
        metrics["model"] = vae.info.name
        samples = [to_pil(t, s) for t in r.posterior_samples]
        return to_pil(r.reconstruction, s), to_pil(r.input, s), heatmap(r.error, vmax=1.0).resize(
            (vae.config.image_size * s,) * 2, Image.NEAREST
        ), samples, metrics, r

    def sample(self, model: Optional[str] = None, n=16, seed=0, temperature=1.0) -> list:
        vae = self.registry.get(model)
        x = inference.sample(vae, n, seed, temperature)
        s = max(1, display_scale(vae.config.image_size) // 2)
        return [to_pil(t, s) for t in x]

    def interpolate(self, image_a, image_b, model: Optional[str] = None, steps=8, method="lerp"):
        """two images -> (frames as PIL list, path of a looping GIF of the frames)"""
        if image_a is None or image_b is None:
            raise ImageError("Interpolation needs two images: give both A and B.")
        vae = self.registry.get(model)
        x = inference.interpolate(vae, image_arg(image_a), image_arg(image_b), steps, method)
        s = display_scale(vae.config.image_size)
        frames = [to_pil(t, s) for t in x]
        return frames, self._write_gif(frames)

    def encode(self, image, model: Optional[str] = None) -> list:
        vae = self.registry.get(model)
        return inference.encode_mean(vae, image_arg(image))[0]

    def decode(self, z, model: Optional[str] = None) -> Image.Image:
        vae = self.registry.get(model)
        return to_pil(inference.decode_latent(vae, _parse_z(z)), display_scale(vae.config.image_size))

    def sample_grid(self, model: Optional[str] = None, n=16, seed=0, temperature=1.0, nrow: int = 8) -> Image.Image:
        vae = self.registry.get(model)
        return grid(inference.sample(vae, n, seed, temperature), nrow=nrow, scale=2)

    # --- sliders ------------------------------------------------------------------------
    def slider_order(self, model: Optional[str] = None) -> list:
        return inference.slider_order(self.registry.get(model))

    def slider_labels(self, model: Optional[str] = None) -> list:
        vae = self.registry.get(model)
        kl = (vae.info.stats or {}).get("kl_per_dim")
        return [f"z{d}" + (f" · KL {kl[d]:.2f}" if kl else "") for d in inference.slider_order(vae)]

    def latent_from_image(self, image, model: Optional[str] = None) -> list:
        return self.encode(image, model)

    def random_latent(self, model: Optional[str] = None, seed=0) -> list:
        return inference.random_latent(self.registry.get(model), seed)

    def decode_with_sliders(self, model: Optional[str], base_z: list, values: list) -> Image.Image:
        """base z (latent_dim floats) with the slider values written into the dims in KL order -> image"""
        vae = self.registry.get(model)
        z = list(base_z) if base_z and len(base_z) == vae.config.latent_dim else [0.0] * vae.config.latent_dim
        for d, v in zip(inference.slider_order(vae), values):
            if v is not None:
                z[d] = v
        return self.decode(z, model)

    # --- files --------------------------------------------------------------------------
    def _write_gif(self, frames: list) -> str:
        with self._gif_lock:
            old = sorted(self.gif_dir.glob("*.gif"), key=lambda p: p.stat().st_mtime)
            for p in old[: max(0, len(old) - GIF_KEEP + 1)]:
                p.unlink(missing_ok=True)
            path = self.gif_dir / f"interpolation-{time.time_ns()}.gif"
        save_gif(frames, path)
        return str(path)


def _parse_z(z):
    """z as a list, or as JSON text of a list (what a textbox or a JSON component sends) -> list"""
    if isinstance(z, str):
        import json

        try:
            z = json.loads(z)
        except ValueError:
            raise InputError("z must be a JSON list of numbers, e.g. [0.1, -1.2, ...].") from None
    return z
