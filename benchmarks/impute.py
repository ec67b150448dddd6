"""Fill in (data imputation) on MNIST test digits: every preset × every method, plus the masked input itself.

    python benchmarks/impute.py [--n 1000] [--seeds 3] [--steps 10] [--sweep 10,30,100] [--json docs/impute.json]
                                [--pictures docs]

For each preset and method, over `--seeds` seeds (one completion per digit per seed, the preset `random 50%` redrawn
per seed): the mean squared error on the missing pixels (against the grey test digit) and the share of completions
the bundled classifier reads as the digit. The masked input (missing pixels 0, the background) is read the same way.
`--sweep`: metropolis with more chain steps (seed 0), to say what the app's default costs. Needs ../shared/datasets.
Prints JSON; docs/APPLICATIONS.md quotes it.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vae_demo import load_vae  # noqa: E402
from vae_demo.analysis import imputation as im  # noqa: E402
from vae_demo.analysis.evaluation_files import evaluation_of  # noqa: E402
from vae_demo.datasets.mnist import load_dataset  # noqa: E402
from vae_demo.models.classifier import classifier_for  # noqa: E402


def completions(vae, pca, x, missing, method: str, seed: int, steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    missing = missing.expand(len(x), -1, -1, -1)
    if method == "masked input":
        return im.masked(x, missing)
    if method == "mean":
        return im.mean_completion(pca, x, missing)
    starts = torch.cat([im.pca_completions(pca, x[i:i + 1], missing[i:i + 1], 1, generator=g) for i in range(len(x))])
    if method == "pca":
        return torch.cat([im.pca_completions(pca, x[i:i + 1], missing[i:i + 1], 2, generator=g)[1:] for i in range(len(x))])
    return im.markov_chain(vae, x, missing, steps=steps, metropolis=method == "metropolis", generator=g, start=starts,
                           warmup=im.warmup_steps(steps)).completions


def score(clf, x, y, missing, done) -> tuple:
    miss = missing.expand_as(x)
    mse = float(((done - x) ** 2)[miss].mean())
    acc = float((clf.predict(done).argmax(1) == y).float().mean())
    return mse, acc


def summary(values: list) -> dict:
    return {"mean": round(statistics.mean(values), 4), "sd": round(statistics.pstdev(values), 4)}


@torch.inference_mode()
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=im.DEFAULT_STEPS)
    p.add_argument("--sweep", default="10,30,100")
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--json", default=None)
    p.add_argument("--pictures", default=None)
    args = p.parse_args(argv)
    t0 = time.time()
    vae = load_vae("mnist")
    pca, clf = evaluation_of(vae).pca, classifier_for("mnist")
    data = load_dataset("mnist", train=False, root=args.data_root)
    x, y = data.images[: args.n], data.labels[: args.n]
    methods = ["masked input", "mean", "pca", "pseudo-gibbs", "metropolis"]
    table = {}
    for preset in im.PRESETS:
        table[preset] = {}
        for method in methods:
            mses, accs = [], []
            for seed in range(args.seeds):
                missing = im.preset_mask(preset, 28, torch.Generator().manual_seed(seed))[None, None].expand(len(x), 1, 28, 28)
                mse, acc = score(clf, x, y, missing, completions(vae, pca, x, missing, method, seed, args.steps))
                mses.append(mse)
                accs.append(acc)
            table[preset][method] = {"missing_mse": summary(mses), "accuracy": summary(accs)}
            print(preset, method, table[preset][method], f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    sweep = {}
    for steps in [int(s) for s in args.sweep.split(",") if s]:
        sweep[steps] = {}
        for preset in im.PRESETS:
            missing = im.preset_mask(preset, 28, torch.Generator().manual_seed(0))[None, None].expand(len(x), 1, 28, 28)
            mse, acc = score(clf, x, y, missing, completions(vae, pca, x, missing, "metropolis", 0, steps))
            sweep[steps][preset] = {"missing_mse": round(mse, 4), "accuracy": round(acc, 4)}
        print("sweep", steps, sweep[steps], file=sys.stderr, flush=True)
    out = {"n_digits": len(x), "seeds": args.seeds, "steps": args.steps, "warmup_steps": im.warmup_steps(args.steps),
           "table": table, "metropolis_by_steps": sweep, "seconds": round(time.time() - t0, 1)}
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.pictures:
        pictures(vae, pca, x, y, Path(args.pictures))
    return 0


def pictures(vae, pca, x, y, folder: Path) -> None:
    """docs/impute.png: four test digits, each preset, each method's first completion"""
    from vae_demo.imaging.charts import labelled_grid
    from vae_demo.serving.fill_in import masked_tile

    rows, names = [], []
    picks = [int((y == d).nonzero()[0]) for d in (7, 2, 4, 9)]
    for i in picks:
        for preset in ("bottom half", "centre square"):
            missing = im.preset_mask(preset, 28)[None, None]
            xi = x[i:i + 1]
            tiles = [masked_tile(xi, missing)]
            for method in ("mean", "pca", "pseudo-gibbs", "metropolis"):
                done = completions(vae, pca, xi.expand(4, -1, -1, -1), missing, method, 0, im.DEFAULT_STEPS)
                tiles += [done[k:k + 1].expand(-1, 3, -1, -1) for k in range(min(2, len(done)) if method in ("pca", "pseudo-gibbs", "metropolis") else 1)]
            rows.append(torch.cat(tiles))
            names.append(f"{int(y[i])}, {preset}")
    sheet = labelled_grid(torch.cat(rows), len(rows[0]), names, scale=3, label_width=150,
                          axis=("masked", "mean · pca ×2 · pseudo-gibbs ×2", "metropolis ×2"))
    sheet.save(folder / "impute.png")


if __name__ == "__main__":
    sys.exit(main())
