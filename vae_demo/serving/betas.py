"""What β does: the same image through models that differ only in β, with each one's rate and distortion.

β weighs the KL term: loss = distortion + β · rate, where rate = KL(q(z|x) ‖ p(z)) is how many nats the code spends on
this image and distortion = −E_q log p(x|z) how many it still needs to describe the pixels. Small β buys sharp
reconstructions with a code that need not look like the prior (samples are poor); large β pays in blur for a code the
prior covers (samples look like its reconstructions). Alemi et al. 2018 ("Fixing a Broken ELBO") draw the family as
a curve in the rate-distortion plane; the ELBO alone cannot tell its points apart.
"""

import dataclasses

import torch

from vae_demo.serving import inference
from vae_demo.analysis.evaluation_files import evaluation_of


def beta_family(models: dict) -> list:
    """{name: model} -> [(beta, name)] of the largest group (at least 3) of models that differ only in beta, by beta"""
    groups: dict = {}
    for name, vae in models.items():
        c = vae.config
        if not c.latent_dim or c.num_labels or c.objective != "elbo":
            continue
        key = repr(dataclasses.replace(c, beta=0.0))
        groups.setdefault(key, []).append((float(c.beta), name))
    best = max(groups.values(), key=len, default=[])
    return sorted(best) if len({b for b, _ in best}) >= 3 else []


def test_point(vae) -> dict:
    """the model's test-set rate and distortion (metrics.json, written by python -m vae_demo.training.evaluate), or {}"""
    m = evaluation_of(vae).metrics or {}
    return {"rate": m["kl"], "distortion": m["rec"]} if "kl" in m and "rec" in m else {}


@torch.inference_mode()
def compare(family: list, models: dict, image, n_samples: int = 8, seed: int = 0) -> list:
    """[(beta, name)], an image -> one dict per model: its reconstruction (1, C, H, W), this image's rate and distortion
    (nats, 8 seeded posterior samples), the test set's, and n_samples prior samples (n, C, H, W) of the same seed"""
    rows = []
    for beta, name in family:
        vae = models[name]
        r = inference.reconstruct(vae, image, n_posterior=8)
        rows.append({
            "name": name, "beta": beta, "reconstruction": r.reconstruction, "input": r.input,
            "rate": r.metrics["kl"], "distortion": r.metrics["reconstruction_nll"], "test": test_point(vae),
            "samples": inference.sample(vae, n_samples, seed),
        })
    return rows
