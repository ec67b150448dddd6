"""The app's handlers as plain Python: model name + user inputs -> PIL images, lists and dicts.

app.py binds these to Gradio components and turns a DemoError (vae_demo/errors.py) into gr.Error; the CLI and the
tests call them directly. Every user-facing failure is raised as a DemoError with a readable message.
"""

import tempfile
from collections import Counter, deque
import threading
import time
from pathlib import Path
from typing import Optional

import torch
from PIL import Image

from vae_demo.serving import inference, texts
from vae_demo.device import batch_threads
from vae_demo.imaging.charts import labelled_grid, latent_map, posterior_chart
from vae_demo.imaging.uploads import ImageError, image_arg, sketch_image  # noqa: F401
from vae_demo.imaging.render import contact_sheet, display_scale, grid, heatmap, save_gif, tile_sheet, to_pil  # noqa: F401
from vae_demo.serving.inference import InputError
from vae_demo.analysis.evaluation_files import evaluation_of, latent_to_map, map_to_latent
from vae_demo.hub.loading import PHOTO_REPOS, ModelLoadError, bundled_models, hub_reachable
from vae_demo.models.vae import VAE
from vae_demo.serving.registry import Limits, ModelRegistry
from vae_demo.serving.model_endpoints import ModelEndpoints
from vae_demo.serving.knob_endpoints import KnobEndpoints
from vae_demo.serving.application_endpoints import ApplicationEndpoints
from vae_demo.serving.train_endpoints import TrainEndpoints

GIF_KEEP = 256  # GIFs kept on disk for download; older ones are deleted


class DemoService(ModelEndpoints, KnobEndpoints, ApplicationEndpoints, TrainEndpoints):
    def __init__(self, registry: ModelRegistry, gif_dir: Optional[Path] = None, upload_roots: Optional[list] = None):
        self.registry = registry
        self.upload_roots = upload_roots  # None: any path (Python callers); the app passes its upload folders
        self.gif_dir = Path(gif_dir or tempfile.mkdtemp(prefix="vae-demo-gifs-"))
        self.gif_dir.mkdir(parents=True, exist_ok=True)
        self._gif_lock = threading.Lock()
        # the GIFs that may be pruned, oldest first: those a given folder already holds, then the ones written here
        self._gifs: deque = deque(sorted(self.gif_dir.glob("*.gif"), key=lambda p: p.stat().st_mtime))
        self._maps: dict = {}  # model name -> LatentMap (drawn once)
        self.calls: Counter = Counter()  # handler name -> calls, so a test can see one action run one handler once

    @classmethod
    def from_sources(cls, sources: list, device: torch.device, upload_roots: Optional[list] = None,
                     gif_dir: Optional[Path] = None, limits: Optional[Limits] = None) -> "DemoService":
        registry = ModelRegistry(device, limits)
        for s in sources or ["mnist"]:
            registry.load(s, allow_local=True)
        hub_reachable()  # starts the background probe, so a visitor's guidance can say whether photo models can load
        return cls(registry, gif_dir=gif_dir, upload_roots=upload_roots)

    def model_card(self, model: Optional[str] = None) -> str:
        """A short Markdown description of a loaded model: data, latent size, likelihood, beta."""
        v = self.registry.get(model)
        c = v.config
        if inference.is_spatial(v):
            kind = "deterministic encoder (no σ, no KL)" if v.deterministic else "Gaussian encoder: μ, σ and a KL term"
            return (f"**{v.info.name}** — {v.label}: a photo autoencoder from diffusers; images up to {c.image_size} px "
                    f"on the long side keep their aspect ratio; latents are spatial, {c.latent_channels} channels at 1/{c.downscale} "
                    f"of the image size; {kind}. No ELBO: its decoder defines no p(x|z).")
        stats = v.info.stats or {}
        active = stats.get("active_units")
        lines = [
            f"**{v.info.name}** — trained on {c.dataset or 'unknown data'}; "
            f"{c.image_size}×{c.image_size} {'grey' if c.channels == 1 else 'RGB'} images; "
            f"latent size **{c.latent_dim}**" + (f" ({active} active)" if active is not None else "")
            + f"; {c.likelihood} likelihood; {texts.objective_label(c.objective, c.beta)}."
        ]
        return " ".join(lines)

    def scale(self, model: Optional[str] = None) -> int:
        return display_scale(self.registry.get(model).config.image_size)

    def examples(self, model: Optional[str] = None) -> list:
        """Example image paths shipped with a model; grey models without their own borrow the bundled digits."""
        try:
            vae = self.registry.get(model)
        except ModelLoadError:
            return []
        ex = vae.info.examples
        if not ex and vae.config.channels == 1:
            from vae_demo.hub.loading import CHECKPOINTS_DIR

            for name in bundled_models():
                ex = sorted((CHECKPOINTS_DIR / name / "examples").glob("*.png"))
                if ex:
                    break
        return [str(p) for p in ex]

    # --- tabs ---------------------------------------------------------------------------
    def reconstruct(self, image, model: Optional[str] = None, frame: bool = True):
        """image -> (reconstruction, metrics dict, one-paragraph summary): the API's answer, one image like its input.
        With `frame`, a drawn or photographed digit is first framed like the training data (imaging/framing.py).
        The pictures that explain it (the input as the model sees it, the error map, posterior samples, the
        mu/sigma chart, PCA) come from `explain`."""
        self.calls["reconstruct"] += 1
        vae = self.registry.get(model)
        r = inference.reconstruct(vae, image_arg(image, self.upload_roots), n_posterior=1, frame=bool(frame))
        metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.metrics.items()}
        metrics["model"] = vae.info.name
        guide = self.guidance(model, metrics)
        verdict = self.verdict(metrics)
        if guide and verdict:  # a classifier of digits always names a digit, even for a portrait: say what that is worth
            verdict = verdict.replace(". (a small CNN trained on the same data)", " — but a classifier that knows only these "
                                      "classes names one even for a picture that is none of them.")
        summary = "  \n".join(t for t in (guide, verdict, self._summary(vae, metrics)) if t)
        return to_pil(r.reconstruction, display_scale(vae.config.image_size)), metrics, summary

    @staticmethod
    def _error_map(vae, r, scale: int) -> Image.Image:
        """squared error per pixel as a heat map (photo models: scaled to their largest error)"""
        h, w = r.error.shape
        vmax = max(1e-3, float(r.error.max())) if inference.is_spatial(vae) else 1.0
        return heatmap(r.error, vmax=vmax).resize((w * scale, h * scale), Image.NEAREST)

    def verdict(self, metrics: dict) -> str:
        """What the classifier reads, in words: "your image reads as **3** (98 %); its reconstruction as **3** (97 %)"."""
        if "input_reads_as" in metrics:
            same = metrics["input_reads_as"] == metrics["reconstruction_reads_as"]
            return (f"Your face reads as **{metrics['input_reads_as']}**; its reconstruction as "
                    f"**{metrics['reconstruction_reads_as']}**" + ("." if same else " — the reconstruction changed what differs.")
                    + " (the face reader: a small CNN trained on the generated faces)")
        if "input_class" not in metrics:
            return ""
        same = metrics["input_class"] == metrics["reconstruction_class"]
        return (f"Your image reads as **{metrics['input_class']}** ({metrics['input_confidence']:.0%}); its reconstruction "
                f"reads as **{metrics['reconstruction_class']}** ({metrics['reconstruction_confidence']:.0%})"
                + ("." if same else " — the model made it into something else.") + " (a small CNN trained on the same data)")

    def guidance(self, model: Optional[str], metrics: dict) -> str:
        """For an upload this model was not made for (a scene, a photo, a screenshot): a sentence that says what
        the model knows and what to pick instead; empty for an ordinary input."""
        vae = self.registry.get(model)
        if inference.is_spatial(vae):
            return ""
        note, pct = metrics.get("framing_note"), metrics.get("anomaly_percentile")
        if not note and (pct is None or pct < 99):
            return ""
        c = vae.config
        kind = {"mnist": "handwritten digits", "fashion-mnist": "photos of clothes on a plain background",
                "dsprites": "white shapes on black", "faces": "cartoon faces (Avataaars parts on white)"}.get(c.dataset, f"{c.dataset or 'its training'} images")
        text = (note + " " if note else "Your image is unlike anything this model was trained on. ")
        text += f"This model knows {c.image_size}×{c.image_size} {kind}; above is what it made of your image."
        if c.dataset != "dsprites":
            photo = [n for n in self.model_names() if inference.is_spatial(self.registry.get(n))]
            if photo:
                text += f" For photos, pick a photo model: {', '.join(photo)}."
            else:
                text += f" For photos, load a photo model ({', '.join(PHOTO_REPOS)}) in the box above"
                reachable = hub_reachable()  # answered in the background; None while the first probe runs
                text += " — but this server cannot reach the Hugging Face Hub right now." if reachable is False else "."
        return "⚠️ " + text

    def _summary(self, vae, m: dict) -> str:
        if inference.is_spatial(vae):
            text = f"**MSE** {m['mse']:.4f} · **PSNR** {m['psnr']:.1f} dB · **SSIM** {m['ssim']:.3f}"
            text += f" · latent {'×'.join(map(str, m['latent_shape']))} for a {'×'.join(map(str, m['image_size']))} image"
            return text + (f" · **KL** {m['kl']:.0f} nats" if "kl" in m else " · deterministic encoder: no KL")
        what = {"mnist": "test digits", "fashion-mnist": "test clothes", "dsprites": "test sprites", "faces": "held-out faces"}.get(vae.config.dataset, "test images")
        text = (f"**MSE** {m['mse']:.4f} · **PSNR** {m['psnr']:.1f} dB · **ELBO** {m['elbo']:.1f} nats "
                f"= −(reconstruction {m['reconstruction_nll']:.1f} + KL {m['kl']:.1f})")
        if "pca_mse" in m:
            text += f"  \n**PCA baseline** with k = {vae.config.latent_dim}: MSE {m['pca_mse']:.4f} (the VAE: {m['mse']:.4f})"
        if "anomaly_percentile" in m:
            p = m["anomaly_percentile"]
            verdict = " — **unusual for this model**" if p >= 99 else ""
            text += f"  \n**Anomaly score**: reconstructed worse than {p:.0f} % of the {what}{verdict}."
        return text

    def as_seen(self, image, model: Optional[str] = None, frame: bool = True) -> Image.Image:
        """image -> the input as the model sees it (framed, grey or colour, resized, in [0, 1]), enlarged like the outputs"""
        vae = self.registry.get(model)
        x = inference.image_tensor(vae, image_arg(image, self.upload_roots), frame=bool(frame))
        return to_pil(x[0], display_scale(vae.config.image_size))

    def eigen(self, model: Optional[str] = None, n: int = 12) -> Image.Image:
        """/eigen: the PCA baseline's axes beside the VAE's (eigenfaces for faces, eigendigits for digits) -> one
        image of two rows: PCA's mean then its first n axes (each stretched to fill black..white), and the VAE's
        decode(mean μ of the test codes), then +2 standard deviations along each of its n most informative dimensions"""
        self.calls["eigen"] += 1
        vae = self.registry.get(model)
        pca = None if inference.is_spatial(vae) else evaluation_of(vae).pca
        if pca is None:
            raise InputError(f"{vae.info.name} has no PCA baseline (bundled models have pca.safetensors).")
        n = inference._int(n, "n", 1, min(24, len(pca.components)))
        c = vae.config
        shape = (c.channels, c.image_size, c.image_size)
        axes = pca.components[:n]
        lo, hi = axes.min(1, keepdim=True).values, axes.max(1, keepdim=True).values
        pca_row = torch.cat([pca.mean[None], (axes - lo) / (hi - lo).clamp_min(1e-8)]).view(-1, *shape)
        # the VAE's centre and axes: the mean of the test codes μ and +2 of their standard deviations along each of
        # the most informative dimensions (without latent_stats.json: z = 0 and +2)
        stats = evaluation_of(vae).stats or {}
        mean, std = stats.get("mu_mean"), stats.get("mu_std")
        ok = isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == c.latent_dim
        centre = torch.tensor(mean, dtype=torch.float32) if ok else torch.zeros(c.latent_dim)
        spread = torch.tensor(std, dtype=torch.float32) if ok else torch.ones(c.latent_dim)
        z = centre.repeat(n + 1, 1)
        for i, d in enumerate(inference.slider_order(vae)[:n]):
            z[i + 1, d] += 2.0 * spread[d]
        with torch.inference_mode(), batch_threads(n + 1):
            vae_row = vae.decode(z.to(vae.device)).cpu()
        what = "eigenfaces" if c.dataset == "faces" else "PCA axes"
        return labelled_grid(torch.cat([pca_row.clamp(0, 1), vae_row]), n + 1, [what, "VAE: z_i + 2 SD"],
                             scale=max(1, 96 // c.image_size), label_width=120, axis=("mean / decode(mean μ)", "", f"axis {n}"))

    def explain(self, image, model: Optional[str] = None, n_posterior: int = 8, frame: bool = True):
        """image -> (input as the model sees it, squared-error map, posterior samples, mu/sigma/KL chart, PCA or None)"""
        self.calls["explain"] += 1
        vae = self.registry.get(model)
        r = inference.reconstruct(vae, image_arg(image, self.upload_roots), n_posterior=n_posterior, frame=bool(frame))
        s = display_scale(vae.config.image_size)
        if inference.is_spatial(vae):  # one heat map per latent channel of mu instead of a bar per dimension
            maps = r.mu.float().cpu()
            lo, hi = maps.amin(dim=(1, 2), keepdim=True), maps.amax(dim=(1, 2), keepdim=True)
            chart = grid(((maps - lo) / (hi - lo).clamp_min(1e-6))[:, None], nrow=len(maps), scale=max(1, 128 // maps.shape[-1]))
            samples = [] if vae.deterministic else [to_pil(t) for t in r.posterior_samples]
            return to_pil(r.input, s), self._error_map(vae, r, s), samples, chart, None
        sigma = torch.exp(0.5 * r.logvar)
        kl = VAE.kl_per_dim(r.mu[None], r.logvar[None])[0]
        chart = posterior_chart(r.mu.tolist(), sigma.tolist(), kl.tolist(), inference.slider_order(vae))
        pca = to_pil(r.pca_reconstruction, s) if r.pca_reconstruction is not None else None
        return to_pil(r.input, s), self._error_map(vae, r, s), [to_pil(t, s) for t in r.posterior_samples], chart, pca

    def sample(self, model: Optional[str] = None, n=16, seed=0, temperature=1.0, nrow: int = 8) -> tuple:
        """/sample: -> (the n samples as one image, `nrow` per row; their latents, one list each, in the sheet's order:
        /decode of one gives that sample back)"""
        vae = self.registry.get(model)
        z = inference.prior_latents(vae, n, seed, temperature)
        with torch.inference_mode(), batch_threads(len(z)):
            x = vae.decode(z.to(vae.device))
        return tile_sheet(x, nrow=nrow), z.tolist()

    def interpolate(self, image_a, image_b, model: Optional[str] = None, steps=8, method="lerp", frame: bool = True,
                    keep: bool = False) -> tuple:
        """/interpolate: two images -> (the frames as one image, 8 per row; the path of a looping GIF of the frames at
        full size; the frames' latents). `keep`: a GIF that is never pruned (the page's first pair, for every visitor)."""
        if image_a is None or image_b is None:
            raise ImageError("Interpolation needs two images: give both A and B.")
        vae = self.registry.get(model)
        z = inference.interpolation_path(vae, image_arg(image_a, self.upload_roots), image_arg(image_b, self.upload_roots), steps,
                                         method, frame=bool(frame))
        with torch.inference_mode(), batch_threads(len(z)):
            x = vae.decode(z)
        frames = [to_pil(t, display_scale(vae.config.image_size)) for t in x]
        return tile_sheet(x, nrow=8), self._write_gif(frames, keep), z.cpu().tolist()

    def encode(self, image, model: Optional[str] = None, frame: bool = True) -> list:
        vae = self.registry.get(model)
        return inference.encode_mean(vae, image_arg(image, self.upload_roots), frame=bool(frame))[0]

    def decode(self, z, model: Optional[str] = None) -> Image.Image:
        vae = self.registry.get(model)
        return to_pil(inference.decode_latent(vae, _parse_z(z)), display_scale(vae.config.image_size))

    # --- sliders ------------------------------------------------------------------------
    def slider_order(self, model: Optional[str] = None) -> list:
        return inference.slider_order(self.registry.get(model))

    def slider_labels(self, model: Optional[str] = None) -> list:
        vae = self.registry.get(model)
        know = evaluation_of(vae)
        kl = (know.stats or vae.info.stats or {}).get("kl_per_dim")
        names = know.factor_names()
        for d, axis in enumerate(getattr(vae.config, "factor_axes", None) or ()):  # a supervised axis (training/train.py --supervised-factors)
            names[d] = f"{axis.replace('_', ' ')} axis"
        return [f"z{d}" + (f" · {names[d]}" if d in names else "") + (f" · KL {kl[d]:.2f}" if kl else "")
                for d in inference.slider_order(vae)]

    def channel_offsets(self, image, model: Optional[str] = None, *offsets) -> Image.Image:
        """Photo models: shift each latent channel of an image's code by a constant -> the decoded image."""
        vae = self.registry.get(model)
        return to_pil(inference.decode_with_offsets(vae, image_arg(image, self.upload_roots), list(offsets)))

    def current_z(self, model: Optional[str], base_z: list, values: list) -> list:
        vae = self.registry.get(model)
        z = list(base_z) if base_z and len(base_z) == vae.config.latent_dim else [0.0] * vae.config.latent_dim
        for d, v in zip(inference.slider_order(vae), values):
            if v is not None:
                z[d] = float(v)
        return z

    def traverse(self, z=None, model: Optional[str] = None, n_dims=8, span=3.0) -> Image.Image:
        """z (list or JSON; empty: the prior's mean) -> grid: one row per top dimension, -span .. +span"""
        vae = self.registry.get(model)
        z = _parse_z(z) if z not in (None, "", []) else [0.0] * vae.config.latent_dim
        n_dims = inference._int(n_dims, "n_dims", 1, min(inference.MAX_TRAVERSE_DIMS, vae.config.latent_dim))
        dims = inference.slider_order(vae)[:n_dims]
        x = inference.traverse(vae, z, dims, n_values=9, span=span)
        labels = self.slider_labels(model)[:n_dims]
        return labelled_grid(x, 9, [lab.split(" · KL")[0] for lab in labels], scale=max(1, 56 // vae.config.image_size))

    # --- latent map ---------------------------------------------------------------------
    def has_latent_map(self, model: Optional[str] = None) -> bool:
        return evaluation_of(self.registry.get(model)).latent_map is not None

    def map_colourings(self, model: Optional[str] = None) -> list:
        """What the latent map can be coloured by besides its classes (faces: skin tone, smile, glasses, beard, hat)"""
        return list(evaluation_of(self.registry.get(model)).map_colourings or {})

    def _map(self, vae, colour_by: Optional[str] = None):
        options = evaluation_of(vae).map_colourings or {}
        if colour_by and colour_by not in options:
            raise InputError(f"colour_by must be one of {', '.join(map(repr, options)) or 'nothing for this model'}; "
                             f"got {colour_by!r}.")
        key = (vae.info.name, colour_by or "")
        with self._gif_lock:
            cached = self._maps.get(key)
        if cached is None:
            lm = evaluation_of(vae).latent_map
            if lm is None:
                raise InputError(f"{vae.info.name} has no latent map (run python -m vae_demo.training.evaluate {vae.info.name}).")
            axes = ("z0", "z1") if vae.config.latent_dim == 2 else ("PC 1", "PC 2")  # a 2-D model's map is its latent space
            labels, names = options[colour_by] if colour_by else (lm["labels"], vae.config.class_names or [])
            cached = latent_map(lm["points"].numpy(), labels.numpy(), names, axis_names=axes)
            with self._gif_lock:
                self._maps[key] = cached
        return cached

    def map_view(self, model: Optional[str] = None, point=None, image=None, colour_by: Optional[str] = None):
        """-> (map with markers, decoded image at `point` or None, (u, v) of the point); `colour_by`: one of
        map_colourings (None: the classes)"""
        vae = self.registry.get(model)
        m = self._map(vae, colour_by)
        lm = evaluation_of(vae).latent_map
        marks = []
        if image is not None:
            mu, _ = inference.encode_mean(vae, image_arg(image, self.upload_roots))
            uv = latent_to_map(lm, torch.tensor(mu))
            marks.append((*uv, "#ea580c"))
            point = point or uv
        decoded = None
        if point is not None:
            u, v = float(point[0]), float(point[1])
            marks.append((u, v, "#111827"))
            decoded = self.decode(map_to_latent(lm, u, v).tolist(), model)
            point = (u, v)
        return m.marked(marks), decoded, point

    def map_pixel_to_point(self, model: Optional[str], px: float, py: float) -> tuple:
        m = self._map(self.registry.get(model))
        return m.from_pixel(px, py)

    def map_range(self, model: Optional[str] = None) -> tuple:
        m = self._map(self.registry.get(model))
        return m.xlim, m.ylim

    def how_it_works(self, model: Optional[str] = None) -> str:
        c = self.registry.get(model).config
        return texts.how_it_works(c.latent_dim, c.beta, c.likelihood, c.dataset, c.objective)


    def random_latent(self, model: Optional[str] = None, seed=0) -> list:
        return inference.random_latent(self.registry.get(model), seed)

    def decode_with_sliders(self, model: Optional[str], base_z: list, values: list) -> Image.Image:
        """base z (latent_dim floats) with the slider values written into the dims in KL order -> image"""
        return self.decode(self.current_z(model, base_z, values), model)

    # --- files --------------------------------------------------------------------------
    def _write_gif(self, frames: list, keep: bool = False) -> str:
        """-> the path of a new GIF of the frames; the oldest beyond GIF_KEEP are deleted, except those kept.
        The folder is listed once, when the service starts; after that it is this service's to write in."""
        with self._gif_lock:
            folder = self.gif_dir / "kept" if keep else self.gif_dir
            folder.mkdir(exist_ok=True)
            path = folder / f"interpolation-{time.time_ns()}.gif"
            if not keep:
                while len(self._gifs) >= GIF_KEEP:
                    self._gifs.popleft().unlink(missing_ok=True)
                self._gifs.append(path)
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
