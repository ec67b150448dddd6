"""The DemoService's handlers for the knobs: named edits (/edit), every digit in one hand (/analogy) and what β does
(/compare_betas). Kept apart from service.py so each file stays about one thing; DemoService inherits them."""

from typing import Optional

import torch
from PIL import Image

from vae_demo.serving import betas, edits
from vae_demo.imaging.charts import labelled_grid, rate_distortion_chart
from vae_demo.device import batch_threads
from vae_demo.analysis.directions import edit_latent
from vae_demo.imaging.uploads import image_arg
from vae_demo.imaging.render import display_scale, grid, to_pil
from vae_demo.serving.inference import InputError, _int


class KnobEndpoints:
    # --- named knobs ----------------------------------------------------------------------
    def knobs(self, model: Optional[str] = None) -> list:
        """[(name, label)] of the model's named directions (empty for a model without directions.safetensors)"""
        return [(d.name, d.label) for d in edits.directions_of(self.registry.get(model))]

    def knob_offset(self, model: Optional[str], z: list, amounts: list) -> list:
        """z (latent_dim floats) + each named knob's amount (standard deviations along it) -> the moved z"""
        vae = self.registry.get(model)
        out = torch.tensor([z], dtype=torch.float32)
        for d, a in zip(edits.directions_of(vae), amounts):
            if a:
                out = edit_latent(out, d, edits.check_amount(a))
        return out[0].tolist()

    def edit(self, image, model: Optional[str] = None, attribute: str = "", amount=2.0, frame: bool = True) -> tuple:
        """image, a named attribute, an amount in standard deviations -> (the edited image, what was measured before
        and after: the attribute and the others the model has knobs for, and the class the classifier reads)"""
        self.calls["edit"] += 1
        if image is None:
            raise InputError("Give an image (upload, drawing or example) to edit.")
        vae = self.registry.get(model)
        after, _, info = edits.edit(vae, image_arg(image, self.upload_roots), attribute, amount, frame=bool(frame))
        info["model"] = vae.info.name
        return to_pil(after, display_scale(vae.config.image_size)), info

    def knob_grid(self, model: Optional[str] = None, attribute: str = "", image=None, n_faces=4, seed=0,
                  frame: bool = True) -> tuple:
        """/knob_grid, vector arithmetic on a named knob: rows of faces (z = 0 except on faces, then the given
        image if any, then n_faces of the model's examples picked by seed) against -2 .. +2 along the knob (columns) ->
        (the grid, {"attribute", "label", "amounts", "rows": [{"row", "read": one reading per column}]})"""
        import random

        self.calls["knob_grid"] += 1
        vae = self.registry.get(model)
        n = _int(n_faces, "n_faces", 0, edits.MAX_GRID_FACES)
        seed = _int(seed, "seed", 0, 2**31 - 1)
        d = edits.find_direction(vae, attribute)
        pool = self.examples(model)
        picked = random.Random(seed).sample(pool, min(n, len(pool)))
        # z = 0 decodes to the average digit; the faces' codes are too spread for it to be a face, so no such row
        centre = vae.config.dataset != "faces"
        rows = [("z = 0 (average)", None)] if centre else []
        rows += [("your image", image_arg(image, self.upload_roots))] if image is not None else []
        rows += [(f"example {p.rsplit('/', 1)[-1].rsplit('.', 1)[0]}", image_arg(p, self.upload_roots)) for p in picked]
        if not rows:
            raise InputError("Give an image or ask for at least one example face (n_faces ≥ 1).")
        with batch_threads(len(rows) * len(edits.GRID_AMOUNTS)):
            tiles, read = edits.knob_grid(vae, d, [im for label, im in rows if im is not None],
                                             frame=bool(frame), centre=centre)
        k = len(edits.GRID_AMOUNTS)
        picture = labelled_grid(tiles, k, [label for label, _ in rows], scale=max(1, 128 // vae.config.image_size),
                                label_width=120, axis=(f"{edits.GRID_AMOUNTS[0]:+g}", f"0 ({d.label})", f"{edits.GRID_AMOUNTS[-1]:+g}"))
        info = {"model": vae.info.name, "attribute": d.name, "label": d.label, "amounts": list(edits.GRID_AMOUNTS),
                "step": d.step, "rows": [{"row": label, "read": read[i * k : (i + 1) * k]} for i, (label, _) in enumerate(rows)]}
        return picture, info

    # --- your digit as every digit --------------------------------------------------------
    def analogy(self, image, model: Optional[str] = None, label=None, frame: bool = True) -> tuple:
        """/analogy: image -> (one image of ten tiles in a row, the digits 0 to 9 left to right, written in the image's
        style; {"label": the image's label, "label_from": given or read, "model"})"""
        self.calls["analogy"] += 1
        if image is None:
            raise InputError("Give an image (upload, drawing or example) to write as every digit.")
        if not model:
            if not self.conditional_models():
                raise InputError("No conditional model is loaded (bundled: mnist-cvae).")
            model = self.conditional_models()[0]
        vae = self.registry.get(model)
        tiles, y, how = edits.analogy(vae, image_arg(image, self.upload_roots), label, frame=bool(frame))
        names = vae.config.class_names or [str(i) for i in range(len(tiles))]
        return grid(tiles, nrow=len(tiles), padding=2, scale=3, pad_value=1.0), {"label": names[y], "label_from": how,
                                                                                "model": vae.info.name}

    def conditional_models(self) -> list:
        return [n for n in self.registry.names() if "analogy" in self.registry.get(n).capabilities]

    # --- a latent space seen whole ---------------------------------------------------------
    def manifold(self, model: Optional[str] = None, n: int = 15) -> Optional[Image.Image]:
        """A 2-D model: decode(z) over an n x n grid of the prior's quantiles 5 % .. 95 % (the Keras VAE example's
        manifold), z0 left to right, z1 bottom to top as on the map; None for other models"""
        vae = self.registry.get(model)
        if vae.config.latent_dim != 2 or vae.config.num_labels:
            return None
        q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))
        z1, z0 = torch.meshgrid(q.flip(0), q, indexing="ij")
        with torch.inference_mode(), batch_threads(n * n):
            x = vae.decode(torch.stack([z0.flatten(), z1.flatten()], 1).to(vae.device))
        return grid(x, nrow=n, padding=0, scale=2)

    # --- what beta does --------------------------------------------------------------------
    def beta_family(self) -> list:
        return betas.beta_family({n: self.registry.get(n) for n in self.registry.names()})

    def compare_betas(self, image, n_samples: int = 8, seed=0) -> tuple:
        """image -> (a row per beta: input | reconstruction, the rate-distortion chart with this image marked,
        a row of prior samples per beta, a JSON list of each model's beta, rate and distortion)"""
        self.calls["compare_betas"] += 1
        family = self.beta_family()
        if not family:
            raise InputError("No family of models that differ only in β is loaded (bundled: mnist-beta-0.25 … mnist-beta-16).")
        if image is None:
            raise InputError("Give an image (upload, drawing or example) to compare the β models on.")
        models = {name: self.registry.get(name) for _, name in family}
        rows = betas.compare(family, models, image_arg(image, self.upload_roots), int(n_samples), seed)
        labels = [f"β={r['beta']:g}  R {r['rate']:.0f}  D {r['distortion']:.0f}" for r in rows]
        recon = labelled_grid(torch.cat([torch.cat([r["input"], r["reconstruction"]]) for r in rows]), 2, labels, scale=3,
                              label_width=190, axis=("input", "", "reconstruction"))
        samples = labelled_grid(torch.cat([r["samples"] for r in rows]), len(rows[0]["samples"]),
                                [f"β={r['beta']:g}" for r in rows], scale=2, label_width=80, axis=None)
        tests = [{"beta": r["beta"], **r["test"]} for r in rows if r["test"]]
        chart = rate_distortion_chart(tests, [{"beta": r["beta"], "rate": r["rate"], "distortion": r["distortion"]} for r in rows]) \
            if len(tests) == len(rows) else None
        table = [{"model": r["name"], "beta": r["beta"], "rate": round(r["rate"], 3), "distortion": round(r["distortion"], 3),
                  **({"test_rate": round(r["test"]["rate"], 3), "test_distortion": round(r["test"]["distortion"], 3)} if r["test"] else {})}
                 for r in rows]
        return recon, chart, samples, table
