"""Knobs with names: how well each named direction edits, how well mnist-cvae writes a digit as every digit, and
what β does, measured on the test sets and written to docs/KNOBS.md with pictures.

    python benchmarks/knobs.py [--n 1000]

Reads what `python -m vae_demo.training.directions mnist|fashion-mnist` measured (checkpoints/*/edits.json) and measures the
conditional model's analogies itself: for n test digits, the ten tiles of /analogy's handler; the classifier's
reading of each tile, and the rank correlation (Spearman) of the tiles' thickness and slant with the input's.
Needs ../shared/datasets.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vae_demo.imaging.charts import labelled_grid, rate_distortion_chart  # noqa: E402
from vae_demo.models.classifier import classifier_for  # noqa: E402
from vae_demo.datasets.mnist import DEFAULT_ROOT, load_dataset  # noqa: E402
from vae_demo.analysis.directions import edit_latent  # noqa: E402
from vae_demo.serving.edits import directions_of  # noqa: E402
from vae_demo.hub.loading import load_vae  # noqa: E402
from vae_demo.analysis.morphometry import measure  # noqa: E402
from vae_demo.serving.service import DemoService  # noqa: E402

DOCS = ROOT / "docs"
BETAS = ("mnist-beta-0.25", "mnist-beta-1", "mnist-beta-4", "mnist-beta-16")


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    ra, rb = np.argsort(np.argsort(a[ok])), np.argsort(np.argsort(b[ok]))
    return float(np.corrcoef(ra, rb)[0, 1])


@torch.inference_mode()
def analogies(n: int, root: str, seed: int = 0, model: str = "mnist-cvae") -> dict:
    vae = load_vae(model)
    clf = classifier_for("mnist")
    test = load_dataset("mnist", False, root)
    idx = torch.randperm(len(test.images), generator=torch.Generator().manual_seed(seed))[:n]
    x, y = test.images[idx], test.labels[idx]
    read = clf.predict(x).argmax(1)  # the label comes from the classifier, as in the app
    mu = vae.encode(x, read)[0]
    hits = np.zeros((10,))
    tiles_attr = {k: [] for k in ("thickness", "slant")}
    for d in range(10):
        tiles = vae.decode(mu, torch.full((n,), d))
        hits[d] = float((clf.predict(tiles).argmax(1) == d).float().mean())
        m = measure(tiles)
        for k in tiles_attr:
            tiles_attr[k].append(m[k])
    m_in = measure(x)
    rho = {k: [spearman(m_in[k], t) for t in tiles_attr[k]] for k in tiles_attr}
    return {"n": n, "classifier_reads_label": float((read == y).float().mean()), "tile_read_as_digit": hits.tolist(),
            "tile_read_overall": float(hits.mean()), "spearman": rho,
            "spearman_mean": {k: float(np.mean(v)) for k, v in rho.items()}, "examples": idx[:6].tolist()}


def edit_picture(svc: DemoService, root: str) -> None:
    """six test digits (rows), each knob from -2 to +2 (five columns), the knobs side by side"""
    from PIL import Image, ImageDraw

    from vae_demo.imaging.charts import _label_font
    from vae_demo.imaging.render import grid

    vae = svc.registry.get("mnist")
    test = load_dataset("mnist", False, root)
    x = test.images[[3, 2, 1, 18, 4, 8]]
    amounts = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    blocks = []
    with torch.inference_mode():
        mu = vae.encode(x)[0]
        for d in directions_of(vae):
            tiles = torch.cat([vae.decode(edit_latent(mu[i : i + 1].expand(5, -1), d, amounts)) for i in range(len(x))])
            blocks.append((d.label, grid(tiles, nrow=5, padding=2, scale=2).convert("RGB")))
    font, gap, head = _label_font(15), 16, 44
    w = sum(b.width for _, b in blocks) + gap * (len(blocks) - 1)
    sheet = Image.new("RGB", (w, blocks[0][1].height + head), "white")
    draw, x0 = ImageDraw.Draw(sheet), 0
    for label, b in blocks:
        sheet.paste(b, (x0, head))
        draw.text((x0 + b.width / 2, 12), label, fill="#1f2937", font=font, anchor="mm")
        draw.text((x0 + 4, 32), "−2", fill="#6b7280", font=font, anchor="lm")
        draw.text((x0 + b.width - 4, 32), "+2", fill="#6b7280", font=font, anchor="rm")
        x0 += b.width + gap
    sheet.save(DOCS / "knobs.png")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--data-root", default=DEFAULT_ROOT)
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    svc = DemoService.from_sources(["mnist", "fashion-mnist", "mnist-cvae", "mnist-2d", *BETAS], torch.device("cpu"))
    lines = ["# Knobs with names", "",
             "Measured by `python benchmarks/knobs.py` (and `python -m vae_demo.training.directions mnist|fashion-mnist`, whose",
             "figures it reads from `checkpoints/*/edits.json`), on the CPU. Every number below is a share of test images.", ""]

    # 1. named directions on mnist
    e = json.loads((ROOT / "checkpoints/mnist/edits.json").read_text())
    lines += ["## Named directions on `mnist`", "",
              f"Fitted on {e['n_fit']:,} training images' μ, measured on {e['n_test']:,} test digits: each one's μ moved "
              f"+{e['amount']:g} and −{e['amount']:g} standard deviations along the knob, both decoded, both measured with "
              "Morpho-MNIST's definitions (`vae_demo/analysis/morphometry.py`). *Right direction*: the +2 image measures larger than "
              "the −2 image. *Same digit*: the bundled classifier reads the digit's label in both. Floors: 90 % and 80 %.", ""]
    lines += ["| knob | fitted by | held-out R² of the linear fit | right direction | same digit | change per step | "
              "control (shuffled values): right direction |", "|---|---|---|---|---|---|---|"]
    for name, a in e["attributes"].items():
        best = a["methods"][a["chosen"]]
        lines.append(f"| {a['label']} | {a['chosen']} | {a['r2']:.2f} | **{best['right_direction']:.1%}** | "
                     f"**{best['same_digit']:.1%}** | {best['change_per_amount']:+.2f} {a['unit']} (SD in the data "
                     f"{a['sd']:.2f}) | {a['shuffled_control']['right_direction']:.1%} |")
    lines += ["", "Every method, for every knob (which edits more cleanly):", "",
              "| knob | method | right direction | same digit | change per step |", "|---|---|---|---|---|"]
    for name, a in e["attributes"].items():
        for method, r in a["methods"].items():
            mark = " ← kept" if method == a["chosen"] else ""
            lines.append(f"| {a['label']} | {method}{mark} | {r['right_direction']:.1%} | {r['same_digit']:.1%} | "
                         f"{r['change_per_amount']:+.3f} {a['unit']} |")
    lines += ["", "The kept method is the one with the largest edit among those that move the attribute the right way and",
              "keep the digit at least 90 % of the time (else among those that meet the floors). Least squares leans on",
              "dimensions that barely vary and hardly moves the image; the covariance pattern and the deciles move it most",
              "but, for width and slant, change the digit with it (a wide digit is more often a 0 than a 1); projecting the",
              "directions between the class means out keeps the digit. A direction fitted on shuffled values (the control)",
              "moves the image at random: it does not pass.", "",
              "![each knob from −2 to +2 on six test digits](knobs.png)", ""]
    edit_picture(svc, args.data_root)

    # 2. class directions on fashion-mnist
    f = json.loads((ROOT / "checkpoints/fashion-mnist/edits.json").read_text())
    amounts = sorted({k.rsplit("_", 1)[1] for a in f["attributes"].values() for k in a if k.startswith("read_as_target_at_")},
                     key=float)
    lines += ["## Class directions on `fashion-mnist`", "",
              f"From the mean of all codes towards the mean of one class's. Over {f['n_test']:,} test items of the *other* "
              "classes: the share the classifier reads as the target class after moving that many standard deviations.", "",
              "| knob | " + " | ".join(f"+{a}" for a in amounts) + " |", "|---|" + "---|" * len(amounts)]
    for a in f["attributes"].values():
        lines.append(f"| {a['label']} | " + " | ".join(f"{a['read_as_target_at_' + k]:.1%}" for k in amounts) + " |")
    lines.append("")

    # 3. analogies
    an = analogies(args.n, args.data_root)
    (DOCS / "knobs.json").write_text(json.dumps({"analogy": an}, indent=1))
    lines += ["## Your handwriting as every digit (`mnist-cvae`, `/analogy`)", "",
              f"{an['n']:,} test digits; each one's label read by the classifier ({an['classifier_reads_label']:.1%} right), "
              "encoded with it, decoded with every label. Floors: 95 % read as their digit, Spearman ≥ 0.7.", "",
              "| tile | " + " | ".join(str(d) for d in range(10)) + " | all |", "|---|" + "---|" * 11,
              "| read as its digit | " + " | ".join(f"{h:.1%}" for h in an["tile_read_as_digit"]) + f" | **{an['tile_read_overall']:.1%}** |"]
    for k in ("thickness", "slant"):
        lines.append(f"| Spearman ρ of {k}, tile vs input | " + " | ".join(f"{r:.2f}" for r in an["spearman"][k])
                     + f" | **{an['spearman_mean'][k]:.2f}** |")
    test = load_dataset("mnist", False, args.data_root)
    rows = [svc.analogy(test.images[i, 0].mul(255).byte().numpy(), "mnist-cvae")[0] for i in an["examples"]]
    from PIL import Image

    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)), "white")
    for i, r in enumerate(rows):
        sheet.paste(r, (0, i * r.height))
    sheet.save(DOCS / "analogy.png")
    lines += ["", "![six test digits, each written as 0 to 9](analogy.png)", ""]

    # 4. beta
    lines += ["## What β does", "", "Four models that differ only in β (the same architecture, data, seed and schedule), "
              "on the binarized test set (`python -m vae_demo.training.evaluate`):", "",
              "| model | β | rate (KL, nats) | distortion (nats) | ELBO | NLL (IWAE) | active units |", "|---|---|---|---|---|---|---|"]
    pts = []
    for name in BETAS:
        m = json.loads((ROOT / "checkpoints" / name / "metrics.json").read_text())
        pts.append({"beta": m["beta"], "rate": m["kl"], "distortion": m["rec"]})
        lines.append(f"| {name} | {m['beta']:g} | {m['kl']:.2f} | {m['rec']:.2f} | {m['elbo']:.2f} | {m['nll_iwae']:.2f} | "
                     f"{m['active_units']} of {m['latent_dim']} |")
    recon, chart, samples, _ = svc.compare_betas(str(ROOT / "checkpoints/mnist/examples/3_3.png"))
    chart.save(DOCS / "rate_distortion.png")
    samples.save(DOCS / "beta_samples.png")
    rate_distortion_chart(pts)
    lines += ["", "![the rate-distortion plane, one test digit marked](rate_distortion.png)", "",
              "![samples of each β from the same z](beta_samples.png)", ""]
    svc.manifold("mnist-2d").save(DOCS / "manifold.png")
    lines += ["## A latent space seen whole (`mnist-2d`)", "", "![decode(z) over the prior's quantiles](manifold.png)", ""]
    (DOCS / "KNOBS.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
