"""Evaluate a bundled model on its test set and store what it knows beside its weights.

    python -m vae_demo.training.evaluate mnist --k 200

Writes into the checkpoint folder: metrics.json (ELBO terms, IWAE NLL with its k, MSE/PSNR, KL per
dimension, active units, the PCA baseline), latent_stats.json (slider order, anomaly distribution),
pca.safetensors (the PCA baseline), latent_map.safetensors (test-set means in 2-D), training_curves.png,
and an "Evaluation" section in the model card.
"""

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm import tqdm

from vae_demo.datasets.mnist import DEFAULT_ROOT, ImageData, fixed_binarized_test_set, load_dataset
from vae_demo.device import pick_device
from vae_demo.training.evaluate_math import active_units, assign_factors, factor_correlations, iwae_bound, mutual_info_gap
from vae_demo.hub.loading import load_vae
from vae_demo.models.vae import VAE
from vae_demo.analysis.bits import test_bits_per_dim
from vae_demo.analysis.pca import fit_pca, pca_tensors

FACTOR_LABELS = {"scale": "scale", "orientation": "rotation", "pos_x": "x position", "pos_y": "y position"}
MSE_QUANTILES = np.linspace(0, 100, 201)  # percentiles of per-image reconstruction MSE (anomaly scale)
PAPERS = [  # test NLL on dynamically binarized MNIST, nats (lower is better)
    ("VAE, one stochastic layer (Burda et al. 2016, k=5000 eval)", 86.76),
    ("IWAE k=50, one stochastic layer (Burda et al. 2016)", 84.78),
    ("VAE reproduced by pythae (Chadebec et al. 2022)", 89.78),
]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo.training.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("model", help="bundled model name or checkpoint folder")
    p.add_argument("--k", type=int, default=200, help="importance samples for the IWAE bound")
    p.add_argument("--n-test", type=int, default=0, help="evaluate on the first N test images only (0: all)")
    p.add_argument("--data-root", default=DEFAULT_ROOT)
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


@torch.inference_mode()
def encode_all(vae: VAE, images: torch.Tensor, batch_size: int = 1000, labels=None) -> tuple:
    """(N, C, H, W) -> (N, D) mu, (N, D) logvar, (N,) per-image MSE of decode(mu) against the input
    (a conditional model encodes and decodes with `labels`)"""
    mus, logvars, mses = [], [], []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(vae.device)
        y = labels[i : i + batch_size].to(vae.device) if getattr(vae.config, "num_labels", 0) else None
        mu, logvar = vae.encode(x, y)
        mses.append((vae.decode(mu, y) - x).pow(2).flatten(1).mean(1).cpu())
        mus.append(mu.cpu())
        logvars.append(logvar.cpu())
    return torch.cat(mus), torch.cat(logvars), torch.cat(mses)


@torch.inference_mode()
def likelihood(vae: VAE, images: torch.Tensor, k: int, batch_size: int, seed: int, labels=None) -> dict:
    """ELBO terms and the IWAE bound averaged over the images, in nats per image (of log p(x | y) for a conditional
    model, which reads `labels`)."""
    g = torch.Generator(device=vae.device).manual_seed(seed)
    rec = kl = iw = 0.0
    for i in tqdm(range(0, len(images), batch_size), desc=f"IWAE k={k}", leave=False):
        x = images[i : i + batch_size].to(vae.device)
        y = labels[i : i + batch_size].to(vae.device) if getattr(vae.config, "num_labels", 0) else None
        out = vae(x, generator=g, compute_loss=True, beta=1.0, y=y)
        rec += out.rec_loss.sum().item()
        kl += out.kl.sum().item()
        iw += iwae_bound(vae, x, k, batch_size=max(2048, len(x)), generator=g, y=y).sum().item()
    n = len(images)
    return {"rec": rec / n, "kl": kl / n, "elbo": -(rec + kl) / n, "iwae_bound": iw / n, "nll_iwae": -iw / n}


def latent_map_tensors(mu: torch.Tensor, labels: torch.Tensor) -> dict:
    """Test-set means -> their 2-D PCA projection, and the projection itself, for the latent map tab. A model with a
    2-D latent space is its own map: the identity, no projection, so a point on the map is exactly that z."""
    if mu.shape[1] == 2:
        return {"mean": torch.zeros(2), "components": torch.eye(2), "points": mu.half(), "labels": labels.to(torch.uint8)}
    pca = fit_pca(mu, 2)
    return {
        "mean": pca.mean.float(),
        "components": pca.components.float(),
        "points": pca.project(mu).half(),
        "labels": labels.to(torch.uint8),
    }


def disentanglement(mu: np.ndarray, factors: np.ndarray) -> dict:
    """Which latent dimension tracks which generative factor: |Spearman rho| per (dim, factor), the greedy
    one-dim-per-factor assignment, and the Mutual Information Gap (Chen et al. 2018)."""
    from vae_demo.datasets.dsprites import factor_values

    values = factor_values(factors)
    names = ["scale", "orientation", "pos_x", "pos_y"]
    corr = factor_correlations(mu, values[:, 1:])  # shape is categorical: no rank correlation
    found = assign_factors(corr, names, min_corr=0.5)
    mig, per_factor = mutual_info_gap(mu, factors)  # all five factors, discrete indices
    return {
        "factor_spearman": {n: [round(float(v), 4) for v in corr[:, i]] for i, n in enumerate(names)},
        "factor_dims": {str(d): FACTOR_LABELS[n] for d, (n, _) in sorted(found.items())},
        "factor_best_rho": {FACTOR_LABELS[n]: round(r, 4) for _, (n, r) in found.items()},
        "mig": round(float(mig), 4),
        "mig_per_factor": dict(zip(["shape", *names], [None if v != v else round(float(v), 4) for v in per_factor])),
    }


def update_model_card(folder: Path, metrics: dict) -> None:
    card = folder / "README.md"
    text = card.read_text() if card.exists() else f"# {folder.name}\n"
    text = re.sub(r"\n<!-- evaluation -->.*<!-- /evaluation -->\n", "\n", text, flags=re.S)
    m = metrics
    lines = [
        "<!-- evaluation -->",
        "## Evaluation (`python -m vae_demo.training.evaluate`)",
        f"On {m['n_test']} test images ({m['test_set']}):",
        "",
        "| metric | value |",
        "|---|---|",
        f"| test ELBO | {m['elbo']:.2f} nats (reconstruction {m['rec']:.2f} + KL {m['kl']:.2f}) |",
        f"| test NLL{' of x given its label, −log p(x | y)' if m.get('conditional') else ''}, IWAE bound with k = {m['k']} | "
        f"**{m['nll_iwae']:.2f} nats** |",
        *([f"| bits per dimension (the IWAE bound{'; a density on 8-bit pixels, + 8 bits' if m['likelihood'] != 'bernoulli' else ''}) | "
           f"{m['bits_per_dim']:.4f} |"] if "bits_per_dim" in m else []),
        f"| reconstruction MSE / PSNR (decode μ, the test inputs) | {m['mse']:.4f} / {m['psnr']:.2f} dB |",
        f"| PCA with k = {m['latent_dim']} (linear baseline) MSE / PSNR | {m['pca_mse']:.4f} / {m['pca_psnr']:.2f} dB |",
        f"| active units (Cov(μ) > 0.01) | {m['active_units']} of {m['latent_dim']} |",
        "",
    ]
    if "factor_dims" in m:
        lines += ["Disentanglement on fresh generated sprites (|Spearman ρ| between a dimension's mean and the factor):", "",
                  "| latent dimension | factor | abs(ρ) |", "|---|---|---|"]
        lines += [f"| z{d} | {name} | {m['factor_best_rho'][name]:.3f} |" for d, name in m["factor_dims"].items()]
        lines += ["", f"MIG (all five factors): **{m['mig']:.3f}**; per factor: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in m["mig_per_factor"].items() if v is not None), ""]
    if m.get("dataset") == "mnist" and m.get("binarized") and not m.get("conditional"):
        lines += ["Compared with published test NLLs on dynamically binarized MNIST:", "", "| model | NLL (nats) |", "|---|---|"]
        lines += [f"| {name} | {v:.2f} |" for name, v in PAPERS]
        lines += [f"| **this model** (IWAE bound, k = {m['k']}) | **{m['nll_iwae']:.2f}** |", ""]
    lines += ["![training curves](training_curves.png)", "", "<!-- /evaluation -->"]
    card.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


def test_sets(c, args, binarized: bool) -> tuple:
    """-> (the test images with their labels, the images the likelihood is measured on (binarized MNIST's fixed
    binarization, else the same), training images for the PCA baseline, dSprites' true factors or None)"""
    test_factors = None
    if c.dataset == "dsprites":  # fresh sprites the model never saw, with their true factors
        from vae_demo.datasets.dsprites import FACTORS, generate, sample_factors

        test_factors = sample_factors(args.n_test or 10_000, rng=2024)
        grey = ImageData(generate(test_factors), torch.as_tensor(test_factors[:, 0]), list(FACTORS.shapes))
        target = grey.images
        train_images = generate(sample_factors(20_000, rng=7))
    elif c.dataset == "faces":  # the held-out set (seed 1) and 20,000 training faces for the PCA baseline
        from vae_demo.datasets.face_targets import load_split

        grey = load_split(args.data_root, False, args.n_test or None)
        target = grey.images
        train_images = load_split(args.data_root, True).images[:20_000].float().div_(255.0)
    else:
        grey = load_dataset(c.dataset, train=False, root=args.data_root)
        target = fixed_binarized_test_set(c.dataset, args.data_root, seed=0).images if binarized else grey.images
        if args.n_test:
            grey.images, grey.labels, target = grey.images[: args.n_test], grey.labels[: args.n_test], target[: args.n_test]
        train_images = load_dataset(c.dataset, train=True, root=args.data_root).images
    return grey, target, train_images, test_factors


def save_latent_map(folder: Path, mu: torch.Tensor, labels: torch.Tensor, c, data_root: str) -> None:
    """latent_map.safetensors: the test means in 2-D, coloured by class (faces: also by each drawn factor)"""
    tensors, meta = latent_map_tensors(mu, labels), None
    if c.dataset == "faces":  # the map can also be coloured by each drawn factor, as the visitor picks
        from vae_demo.datasets.face_targets import face_colourings
        from vae_demo.datasets.faces import load_faces

        colourings = face_colourings(load_faces(Path(data_root) / "faces-test")[1][: len(mu)])
        tensors.update({f"by:{name}": v for name, (v, _) in colourings.items()})
        meta = {"colourings": json.dumps({"skin tone": list(c.class_names or []),
                                          **{name: names for name, (_, names) in colourings.items()}})}
    save_file(tensors, str(folder / "latent_map.safetensors"), metadata=meta)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    vae = load_vae(args.model, device=device)
    folder, c = vae.info.folder, vae.config
    if c.dataset not in ("mnist", "fashion-mnist", "dsprites", "faces"):
        raise SystemExit(f"{args.model}: evaluation knows mnist, fashion-mnist, dsprites and faces, not {c.dataset!r}.")
    t0 = time.time()
    binarized = c.likelihood == "bernoulli" and c.dataset == "mnist"
    grey, target, train_images, test_factors = test_sets(c, args, binarized)

    lik = likelihood(vae, target, args.k, args.batch_size, args.seed, labels=grey.labels)
    mu, _, mse = encode_all(vae, grey.images, labels=grey.labels)
    mu_t, logvar_t, _ = encode_all(vae, target, labels=grey.labels)
    kl_dims = VAE.kl_per_dim(mu_t, logvar_t).mean(0)

    pca = fit_pca(train_images.flatten(1), c.latent_dim)
    pca_mse = (pca.reconstruct(grey.images.flatten(1)) - grey.images.flatten(1)).pow(2).mean(1)
    save_file(pca_tensors(pca), str(folder / "pca.safetensors"))
    save_latent_map(folder, mu, grey.labels, c, args.data_root)
    stats = json.loads((folder / "latent_stats.json").read_text()) if (folder / "latent_stats.json").exists() else {}
    stats.update({
        "n_images": len(target),
        "kl_per_dim": [round(v, 5) for v in kl_dims.tolist()],
        "kl_order": torch.argsort(kl_dims, descending=True).tolist(),
        "mu_mean": [round(v, 5) for v in mu.mean(0).tolist()],
        "mu_std": [round(v, 5) for v in mu.std(0).tolist()],
        "active_units": active_units(mu_t),
        "recon_mse_quantiles": [float(v) for v in np.percentile(mse.numpy(), MSE_QUANTILES)],
        "pca_mse_quantiles": [float(v) for v in np.percentile(pca_mse.numpy(), MSE_QUANTILES)],
    })
    (folder / "latent_stats.json").write_text(json.dumps(stats, indent=1))

    m_mse, p_mse = mse.mean().item(), pca_mse.mean().item()
    metrics = {
        "model": vae.info.name, "dataset": c.dataset, "binarized": binarized, "n_test": len(target),
        "test_set": ("MNIST test split binarized once with seed 0" if binarized else
                     f"{len(target):,} freshly generated sprites (seed 2024)" if c.dataset == "dsprites" else
                     f"{len(target):,} held-out faces (python -m vae_demo.datasets.faces --seed 1)" if c.dataset == "faces" else
                     f"{c.dataset} test split, grey levels"),
        "likelihood": c.likelihood, "latent_dim": c.latent_dim, "beta": c.beta, "k": args.k, "seed": args.seed,
        "conditional": bool(c.num_labels),
        **{key: round(v, 4) for key, v in lik.items()},
        "mse": round(m_mse, 6), "psnr": round(10 * math.log10(1 / m_mse), 3),
        "pca_mse": round(p_mse, 6), "pca_psnr": round(10 * math.log10(1 / p_mse), 3),
        "bits_per_dim": round(test_bits_per_dim(lik["nll_iwae"], c.channels * c.image_size**2, c.likelihood), 4),
        "kl_per_dim": stats["kl_per_dim"], "active_units": stats["active_units"],
        "seconds": round(time.time() - t0, 1), "device": str(device),
    }
    if c.dataset == "dsprites":
        metrics.update(disentanglement(mu_t.numpy(), test_factors))
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=1))
    log_file = folder / "training_log.json"
    if log_file.exists():
        from vae_demo.imaging.charts import training_curves

        training_curves(json.loads(log_file.read_text())).save(folder / "training_curves.png")
    update_model_card(folder, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k != "kl_per_dim"}, indent=1))


if __name__ == "__main__":
    main()
