"""Named directions in an unsupervised VAE's latent space: knobs that change one thing ("stroke thickness",
"slant", "towards sneaker").

Nothing in the ELBO makes a latent dimension mean anything, so the knobs are found afterwards, from data:
- an attribute direction is fitted from the training images' posterior means mu and a measurement of each image
  (Morpho-MNIST's thickness, slant, width, ... see morphometry.py), by one of three methods:
  "regression"        least squares of the attribute on mu; the direction is the coefficient vector
  "class-regression"  the same within each class (mu and the attribute centred per digit), so that the knob does not
                      learn "thin strokes are 1s" and turn a 7 into a 1 on the way
  "class-covariance"  the within-class covariance of mu with the attribute: the regression's *pattern* (Haufe et al.
                      2014) rather than its weights. The weights lean on dimensions that barely vary (they decode
                      hardly anything), the pattern on those that vary with the attribute, so its edits are larger
  "class-ridge"       between the two: ridge regression within classes, the penalty the median eigenvalue of the codes'
                      covariance; for an attribute tied to the class (a wide 1 is a 0's width) the pattern changes the
                      digit and the weights hardly move the image, and this is the knob in between
  "class-orthogonal"  the pattern with the directions between the classes' mean codes projected out: an attribute
                      that also tells digits apart (a wide digit is more often a 0 than a 1) is moved only along what
                      varies within a digit, so the edit keeps the digit
  "deciles"           the mean mu of the top 10 % minus that of the bottom 10 %
- a class direction goes from the mean of all codes to the mean of one class's codes ("towards sneaker").
Each is stored (vae_demo/analysis/directions.py) as a unit vector u with `step`, the standard deviation of the training codes along u; an edit is
z = mu + amount * step * u, so amount 2 is two standard deviations along the knob, inside the prior's bulk.

    python -m vae_demo.training.directions mnist          # fit, measure which method edits best, write directions.safetensors
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from vae_demo.analysis.directions import DIRECTIONS_FILE, Direction, edit_latent, save_directions
from vae_demo.analysis.morphometry import ATTRIBUTES, measure

METHODS = ("regression", "class-regression", "class-ridge", "class-covariance", "class-orthogonal", "deciles")
FLOORS = {"right_direction": 0.9, "same_digit": 0.8}  # what an edit of +-2 must do to count (docs/KNOBS.md)
CHOOSE = {"right_direction": 0.9, "same_digit": 0.9}  # the knob kept: the largest edit that keeps the digit this often


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm().clamp_min(1e-12)


def _centre(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    for c in labels.unique():
        out[labels == c] -= x[labels == c].mean(0)
    return out


def fit_direction(mu: torch.Tensor, values: np.ndarray, labels: torch.Tensor, method: str) -> torch.Tensor:
    """(N, D) codes, (N,) attribute values, (N,) classes -> (D,) unit direction along which the attribute grows"""
    ok = torch.as_tensor(np.isfinite(values))
    mu, v, labels = mu[ok].double(), torch.as_tensor(values)[ok].double(), labels[ok]
    if method == "deciles":
        lo, hi = torch.quantile(v, 0.1), torch.quantile(v, 0.9)
        return _unit((mu[v >= hi].mean(0) - mu[v <= lo].mean(0)).float())
    if method in ("class-regression", "class-ridge", "class-covariance", "class-orthogonal"):
        means = torch.stack([mu[labels == c].mean(0) for c in labels.unique()])
        mu, v = _centre(mu, labels), _centre(v[:, None], labels)[:, 0]
        cov_mv = (mu * v[:, None]).mean(0)
        if method == "class-covariance":
            return _unit(cov_mv.float())
        if method == "class-orthogonal":
            q = torch.linalg.qr((means - means.mean(0)).T).Q  # (D, classes): the span of the class means' spread
            return _unit((cov_mv - q @ (q.T @ cov_mv)).float())
        if method == "class-ridge":
            cov = mu.T @ mu / len(mu)
            ridge = torch.linalg.eigvalsh(cov).median()
            return _unit(torch.linalg.solve(cov + ridge * torch.eye(len(cov), dtype=cov.dtype), cov_mv).float())
    elif method == "regression":
        mu, v = mu - mu.mean(0), v - v.mean()
    else:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    w = torch.linalg.lstsq(mu, v[:, None]).solution[:, 0]
    return _unit(w.float())


def r_squared(mu_fit, v_fit, mu_test, v_test) -> float:
    """held-out R^2 of the ordinary least-squares fit (with intercept) of an attribute on mu"""
    def design(m):
        return torch.cat([m.double(), torch.ones(len(m), 1, dtype=torch.float64)], 1)
    a, b = np.isfinite(v_fit), np.isfinite(v_test)
    w = torch.linalg.lstsq(design(mu_fit[torch.as_tensor(a)]), torch.as_tensor(v_fit[a])[:, None]).solution
    pred = (design(mu_test[torch.as_tensor(b)]) @ w)[:, 0].numpy()
    y = v_test[b]
    return float(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def class_direction(mu: torch.Tensor, labels: torch.Tensor, c: int) -> torch.Tensor:
    """(D,) unit vector from the mean of all codes to the mean of class c's"""
    return _unit(mu[labels == c].mean(0) - mu.mean(0))


def with_step(name, label, vector, mu, **kw) -> Direction:
    return Direction(name=name, label=label, vector=vector.float(), step=float((mu.float() @ vector.float()).std()), **kw)


@torch.inference_mode()
def edit_test(vae, d: Direction, images, labels, classifier, amount: float = 2.0, batch_size: int = 500) -> dict:
    """Move each image's code +amount and -amount along d and decode both. For an attribute direction: the share of
    images whose measured attribute is larger at +amount ("right direction"), the share the classifier still reads as
    the image's label at both ends ("same digit"), and the mean change per unit of amount. For a class direction: the
    share read as that class at +amount."""
    up, down, kept, toward = [], [], [], []
    for i in range(0, len(images), batch_size):
        x, y = images[i : i + batch_size].to(vae.device), labels[i : i + batch_size].to(vae.device)
        mu = vae.encode(x)[0]
        plus, minus = vae.decode(edit_latent(mu, d, amount)), vae.decode(edit_latent(mu, d, -amount))
        p_plus, p_minus = classifier.predict(plus).argmax(1), classifier.predict(minus).argmax(1)
        if d.kind == "class":
            toward.append((p_plus == int(d.target)).cpu())
            continue
        kept.append(((p_plus == y) & (p_minus == y)).cpu())
        up.append(measure(plus.cpu())[d.name])
        down.append(measure(minus.cpu())[d.name])
    if d.kind == "class":
        return {"n": len(images), "read_as_target": float(torch.cat(toward).float().mean())}
    up, down = np.concatenate(up), np.concatenate(down)
    ok = np.isfinite(up) & np.isfinite(down)
    return {
        "n": len(images),
        "right_direction": float(((up > down) & ok).mean()),
        "same_digit": float(torch.cat(kept).float().mean()),
        "change_per_amount": float(np.mean((up - down)[ok]) / (2 * amount)),
    }


def parse_args(argv=None):
    import argparse

    from vae_demo.datasets.mnist import DEFAULT_ROOT

    p = argparse.ArgumentParser(prog="python -m vae_demo.training.directions", description=__doc__.splitlines()[0])
    p.add_argument("model", help="bundled model name or checkpoint folder (trained on mnist or fashion-mnist)")
    p.add_argument("--data-root", default=DEFAULT_ROOT)
    p.add_argument("--n-fit", type=int, default=20_000, help="training images the directions are fitted on")
    p.add_argument("--n-test", type=int, default=1_000, help="test images the edits are measured on")
    p.add_argument("--amount", type=float, default=2.0)
    p.add_argument("--attributes", nargs="+", default=["thickness", "slant", "width", "height"], choices=list(ATTRIBUTES))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> None:
    """Fit every method for every attribute, measure each one's edits on test images, keep the one that edits most
    cleanly (right direction and same digit, the smaller of the two), and check a control fitted on shuffled values."""
    from tqdm import tqdm

    from vae_demo.models.classifier import classifier_for
    from vae_demo.datasets.mnist import load_dataset
    from vae_demo.training.evaluate import encode_all
    from vae_demo.hub.loading import load_vae

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    vae = load_vae(args.model)
    c, folder = vae.config, Path(vae.info.folder)
    clf = classifier_for(c.dataset)
    if clf is None or c.num_labels:
        raise SystemExit(f"{args.model}: directions are fitted for unconditional mnist / fashion-mnist models.")
    g = torch.Generator().manual_seed(args.seed)
    train, test = load_dataset(c.dataset, True, args.data_root), load_dataset(c.dataset, False, args.data_root)
    fit_idx = torch.randperm(len(train.images), generator=g)[: args.n_fit]
    test_idx = torch.randperm(len(test.images), generator=g)[: args.n_test]
    x_fit, y_fit = train.images[fit_idx], train.labels[fit_idx]
    x_test, y_test = test.images[test_idx], test.labels[test_idx]
    mu_fit, mu_test = encode_all(vae, x_fit)[0], encode_all(vae, x_test)[0]
    results, chosen = {}, []
    if c.dataset == "mnist":
        m_fit = {k: v for k, v in measure(x_fit).items() if k in args.attributes}
        m_test = {k: v for k, v in measure(x_test).items() if k in args.attributes}
        for name in tqdm(args.attributes, desc="attributes"):
            label, unit = ATTRIBUTES[name]
            r2 = r_squared(mu_fit, m_fit[name], mu_test, m_test[name])
            rows = {}
            for method in METHODS:
                d = with_step(name, label, fit_direction(mu_fit, m_fit[name], y_fit, method), mu_fit, unit=unit, method=method, r2=r2)
                rows[method] = edit_test(vae, d, x_test, y_test, clf, args.amount)
                rows[method]["direction"] = d
            shuffled = m_fit[name][torch.randperm(len(x_fit), generator=g).numpy()]
            control = with_step(name, label, fit_direction(mu_fit, shuffled, y_fit, "regression"), mu_fit, unit=unit)
            # the largest edit among the methods that keep the digit 90 % of the time; else among those that meet the
            # floors; else the one that comes closest
            def score(k, r=rows):
                meets = [all(r[k][f] >= v for f, v in floor.items()) for floor in (CHOOSE, FLOORS)]
                return (*meets, r[k]["change_per_amount"] if any(meets) else min(r[k]["right_direction"], r[k]["same_digit"]))

            best = max(METHODS, key=score)
            d = rows[best].pop("direction")
            d.per_amount = rows[best]["change_per_amount"]
            chosen.append(d)
            results[name] = {"label": label, "unit": unit, "r2": r2, "chosen": best, "sd": float(np.nanstd(m_test[name])),
                             "methods": {k: {kk: vv for kk, vv in v.items() if kk != "direction"} for k, v in rows.items()},
                             "shuffled_control": edit_test(vae, control, x_test, y_test, clf, args.amount)}
            print(name, json.dumps(results[name]["methods"][best]), "control", json.dumps(results[name]["shuffled_control"]))
    else:
        for i, cname in enumerate(tqdm(c.class_names, desc="classes")):
            d = with_step(cname.lower(), f"towards {cname}", class_direction(mu_fit, y_fit, i), mu_fit, kind="class",
                          method="class-mean", target=i)
            others = y_test != i
            results[d.name] = {"label": d.label, **{f"read_as_target_at_{a:g}": edit_test(vae, d, x_test[others], y_test[others], clf, a)["read_as_target"]
                                                    for a in (1.0, args.amount, 2 * args.amount)}}
            chosen.append(d)
    save_directions(chosen, folder / DIRECTIONS_FILE)
    report = {"model": vae.info.name, "dataset": c.dataset, "amount": args.amount, "n_fit": args.n_fit, "n_test": args.n_test,
              "seed": args.seed, "attributes": results}
    (folder / "edits.json").write_text(json.dumps(report, indent=1))
    update_card(folder, report, " ".join(["python -m vae_demo.training.directions", *(argv or sys.argv[1:])]))
    print(f"wrote {folder / DIRECTIONS_FILE} and edits.json")


def update_card(folder: Path, report: dict, command: str) -> None:
    """the model card's "Named directions" section: how each knob was fitted, its R^2 and how it edits"""
    import re

    card = folder / "README.md"
    text = card.read_text() if card.exists() else f"# {folder.name}\n"
    text = re.sub(r"\n<!-- directions -->.*<!-- /directions -->\n", "\n", text, flags=re.S)
    a = report["amount"]
    lines = ["<!-- directions -->", "## Named directions (`directions.safetensors`)", "",
             f"Fitted on {report['n_fit']:,} training images, measured on {report['n_test']:,} test images by `{command}`; "
             f"an edit moves μ ±{a:g} standard deviations of the training codes along the direction.", ""]
    if report["dataset"] == "mnist":
        lines += ["| knob | fitted by | held-out R² (attribute on μ) | right direction | same digit | change per step |",
                  "|---|---|---|---|---|---|"]
        for r in report["attributes"].values():
            m = r["methods"][r["chosen"]]
            lines.append(f"| {r['label']} | {r['chosen']} | {r['r2']:.2f} | {m['right_direction']:.1%} | {m['same_digit']:.1%} | "
                         f"{m['change_per_amount']:+.2f} {r['unit']} |")
    else:
        keys = [k for k in next(iter(report["attributes"].values())) if k.startswith("read_as_target_at_")]
        lines += ["| knob | " + " | ".join("read as the class at +" + k.rsplit("_", 1)[1] for k in keys) + " |",
                  "|---|" + "---|" * len(keys)]
        lines += [f"| {r['label']} | " + " | ".join(f"{r[k]:.1%}" for k in keys) + " |" for r in report["attributes"].values()]
    lines += ["", "<!-- /directions -->"]
    card.write_text(text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
