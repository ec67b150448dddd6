"""The DemoService's handlers for what VAEs are used for: filling in missing pixels (/impute), making a labelled
dataset (/augment) and what an image costs in bits (on /reconstruct). Kept apart from service.py so each file stays
about one thing; DemoService inherits them."""

import threading
from typing import Callable, Optional

from vae_demo.analysis import bits as coding
from vae_demo.imaging.uploads import image_arg
from vae_demo.serving import augment, fill_in, inference

DATASETS_KEPT = 16  # exported zips kept on disk for download; older ones are deleted
_datasets_lock = threading.Lock()


class ApplicationEndpoints:
    def impute(self, image, model: Optional[str] = None, mask="bottom half", method: str = "metropolis", n=8, seed=0,
               steps=None, frame: bool = True) -> tuple:
        """/impute: an image and a mask (a preset's name or a picture, painted = missing) -> (one row of equal tiles:
        the masked input, then n completions; {"completions", "reads_as", "acceptance_rate", ...}; the per-pixel
        spread of the completions as a heat map)"""
        self.calls["impute"] += 1
        vae = self.registry.get(model)
        image = None if image is None else image_arg(image, self.upload_roots)
        return fill_in.impute(vae, image, mask, method, n, seed, steps, bool(frame), roots=self.upload_roots)

    def augment(self, model: Optional[str] = None, per_class=100, seed=0, progress: Optional[Callable] = None) -> tuple:
        """/augment: a conditional model writes per_class images of every class -> (a zip: a folder per label with
        PNGs and labels.csv; a preview, eight of each class; {"read_as_label": the share the bundled classifier reads
        as its folder's label, ...})"""
        self.calls["augment"] += 1
        if not model:
            if not self.conditional_models():
                raise inference.InputError("No conditional model is loaded (bundled: mnist-cvae).")
            model = self.conditional_models()[0]
        folder = self.gif_dir / "datasets"
        path, preview, info = augment.augment(self.registry.get(model), per_class, seed, folder, progress)
        with _datasets_lock:
            for old in sorted(folder.glob("*.zip"), key=lambda p: p.stat().st_mtime)[:-DATASETS_KEPT]:
                old.unlink(missing_ok=True)
        return path, preview, info

    def bits(self, image, model: Optional[str] = None, frame: bool = True, k: int = 64) -> tuple:
        """image -> (what it costs under the model: {"rate", "distortion", "elbo", "iwae" in bits, "png_bytes", ...};
        the sentence that says it); ({}, "") for a photo autoencoder, whose decoder defines no p(x|z)"""
        vae = self.registry.get(model)
        if inference.is_spatial(vae):
            return {}, ""
        x, _ = inference.framed_tensor(vae, image_arg(image, self.upload_roots), bool(frame))
        b = coding.image_bits(vae, x, k=k, y=inference.condition(vae, x))
        return b, coding.sentence(b, vae.config.image_size, vae.config.likelihood == "bernoulli")

    def fill_in_models(self) -> list:
        """the loaded models that can fill in (a likelihood over pixels, unconditional)"""
        out = []
        for name in self.model_names():
            try:
                fill_in.check_model(self.registry.get(name))
                out.append(name)
            except fill_in.InputError:
                continue
        return out
