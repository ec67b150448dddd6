"""Does a VAE's generated data help a classifier? Few real MNIST digits, with and without mnist-cvae's digits.

    python benchmarks/augment.py [--k 10,100] [--seeds 3] [--generated 1000] [--steps 800] [--json docs/augment.json]
                                 [--picture docs/augment.png]

For each k (real training digits per class) and seed: a small CNN (the bundled classifier's architecture) is trained
for --steps steps on the k·10 real digits alone, and on them plus --generated per class written by mnist-cvae (what
/augment exports, z ~ N(0, I)), batches drawn uniformly from the union. Test accuracy on all 10,000 MNIST test digits
at the end (and on 2,000 of them along the way: the learning curves). Also: the share of an export the bundled classifier reads as its
folder's label. mnist-cvae was trained on all 60,000 labelled training digits, so this measures what a generator
trained on more data passes on, not learning from k labels alone. Needs ../shared/datasets. Prints JSON.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from vae_demo import load_vae  # noqa: E402
from vae_demo.datasets.mnist import load_dataset  # noqa: E402
from vae_demo.models.classifier import Classifier, ClassifierConfig  # noqa: E402
from vae_demo.serving.augment import generate  # noqa: E402
from vae_demo.serving.verdicts import reads  # noqa: E402

EVAL_EVERY = 50
CURVE_TEST = 2000  # test digits read at every point of a learning curve (all 10,000 at its end)


def pick(labels: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """k indices of every class, drawn by seed"""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([(labels == c).nonzero()[:, 0][torch.randperm(int((labels == c).sum()), generator=g)[:k]]
                      for c in range(10)])


@torch.no_grad()
def accuracy(model, x, y) -> float:
    model.eval()
    hits = sum(int((model(x[i:i + 2000]).argmax(1) == y[i:i + 2000]).sum()) for i in range(0, len(x), 2000))
    model.train()
    return hits / len(x)


def train(x, y, test_x, test_y, steps: int, seed: int) -> list:
    """-> [(step, test accuracy)]: every EVAL_EVERY steps on the first CURVE_TEST test digits, and at the last step on
    all of them"""
    torch.manual_seed(seed)
    model = Classifier(ClassifierConfig(dataset="mnist", widths=(32, 64), hidden_dim=128, dropout=0.3)).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    curve = []
    for step in range(1, steps + 1):
        idx = torch.randint(len(x), (64,), generator=g)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == steps:
            curve.append((step, accuracy(model, test_x, test_y)))
        elif step % EVAL_EVERY == 0:
            curve.append((step, accuracy(model, test_x[:CURVE_TEST], test_y[:CURVE_TEST])))
    return curve


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--k", default="10,100")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--generated", type=int, default=1000, help="generated digits per class")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--json", default=None)
    p.add_argument("--picture", default=None)
    args = p.parse_args(argv)
    t0 = time.time()
    torch.set_num_threads(2)
    train_set = load_dataset("mnist", train=True, root=args.data_root)
    test = load_dataset("mnist", train=False, root=args.data_root)
    cvae = load_vae("mnist-cvae")
    out = {"k": [], "generated_per_class": args.generated, "steps": args.steps, "seeds": args.seeds, "runs": {}}
    for k in [int(v) for v in args.k.split(",")]:
        out["k"].append(k)
        for seed in range(args.seeds):
            idx = pick(train_set.labels, k, seed)
            rx, ry = train_set.images[idx], train_set.labels[idx]
            gx, gy = generate(cvae, args.generated, seed=1000 + seed)
            if seed == 0 and k == out["k"][0]:
                read = [r for i in range(0, len(gx), 500) for r in reads(cvae, gx[i:i + 500])]
                out["export_read_as_label"] = round(sum(r["reads_as"] == str(int(c)) for r, c in zip(read, gy)) / len(gy), 4)
            for name, (x, y) in {"real": (rx, ry), "real + generated": (torch.cat([rx, gx]), torch.cat([ry, gy]))}.items():
                curve = train(x, y, test.images, test.labels, args.steps, seed)
                out["runs"].setdefault(f"{k}|{name}", []).append(curve)
                print(k, name, seed, curve[-1], f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    out["summary"] = {key: {"final_accuracy": {"mean": round(statistics.mean(c[-1][1] for c in curves), 4),
                                               "sd": round(statistics.pstdev(c[-1][1] for c in curves), 4)}}
                      for key, curves in out["runs"].items()}
    out["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(out, indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.picture:
        picture(out, Path(args.picture))
    return 0


def picture(out: dict, path: Path) -> None:
    """test accuracy against training steps: real alone and real + generated, for each k (mean ± SD over seeds)"""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(out["k"]), sharey=True)
    for ax, k in zip(np.atleast_1d(axes), out["k"]):
        for name, colour in (("real", "#64748b"), ("real + generated", "#ea580c")):
            curves = np.asarray(out["runs"][f"{k}|{name}"])  # (seeds, points, 2)
            steps, acc = curves[0, :, 0], curves[:, :, 1] * 100
            ax.plot(steps, acc.mean(0), color=colour, label=name if name == "real" else
                    f"real + {out['generated_per_class']} generated per class")
            ax.fill_between(steps, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), color=colour, alpha=0.2)
        ax.set_title(f"{k} real digits per class")
        ax.set_xlabel("training step (batch 64)")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy, %")
    np.atleast_1d(axes)[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    sys.exit(main())
