"""Train the classifier that gives the verdict ("your image reads as 3 (98 %)"): its command, augmentation and card.

    python -m vae_demo.training.classifier --dataset mnist --epochs 6 --seed 0 --threads 2 --out checkpoints/classifiers/mnist

Trained on the real training split (never on VAE outputs) with mild augmentation, evaluated on the test split.
The model itself, and how the app loads it, is vae_demo/models/classifier.py.
"""

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vae_demo.models.classifier import CLASSIFIER_DATASETS, Classifier, ClassifierConfig, load_classifier

# Augmentation per dataset: (max shift in pixels, max rotation in degrees, random horizontal flips).
# Garments are left-right symmetric in meaning; digits are not, and a rotated shirt is not how Fashion-MNIST frames one.
AUGMENT = {"mnist": (2.0, 10.0, False), "fashion-mnist": (2.0, 0.0, True)}


def augment(x: torch.Tensor, shift: float, degrees: float, hflip: bool, gen: torch.Generator) -> torch.Tensor:
    """(B, C, H, W) -> the same batch, each image shifted by up to `shift` px, rotated by up to `degrees`, maybe mirrored"""
    b, _, h, _ = x.shape
    angle = (torch.rand(b, generator=gen) * 2 - 1) * math.radians(degrees)
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0) if hflip else torch.ones(b)
    t = (torch.rand(b, 2, generator=gen) * 2 - 1) * shift * 2 / h  # pixels -> grid units ([-1, 1] spans h pixels)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos * flip, -sin, t[:, 0]], 1), torch.stack([sin * flip, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@torch.inference_mode()
def evaluate(model: Classifier, images: torch.Tensor, labels: torch.Tensor, class_names: list, batch_size: int = 1000) -> dict:
    """Test images and labels -> overall and per-class accuracy (metrics.json)."""
    model.eval()
    pred = torch.cat([model(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
    hit = pred == labels
    per_class = {name: round(hit[labels == c].float().mean().item(), 4) for c, name in enumerate(class_names)}
    return {"test_accuracy": round(hit.float().mean().item(), 4), "per_class_accuracy": per_class, "n_test": len(labels)}


def write_card(out: Path, args: argparse.Namespace, command: str, metrics: dict, minutes: float, size: int) -> None:
    shift, degrees, hflip = AUGMENT[args.dataset]
    rows = [f"| {name} | {acc * 100:.2f} % |" for name, acc in metrics["per_class_accuracy"].items()]
    lines = [
        "---", "library_name: vae-demo", "tags: [image-classification, vae-demo]", "license: mit", "---",
        f"# A small CNN classifier for {args.dataset}", "",
        f"Reads {args.dataset} images (28x28 grey, light ink on black, values in [0, 1]) and says which class they show. "
        "The app uses it to judge VAE reconstructions and uploads framed like the dataset; it was trained on the real "
        "training split only (60,000 images), never on VAE outputs.", "",
        f"Architecture: {len(args.widths)} stages of (conv3x3 + BatchNorm + ReLU) x 2 and a 2x2 max-pool, widths "
        f"{list(args.widths)}, then dense {args.hidden_dim} with dropout {args.dropout} and {len(metrics['per_class_accuracy'])} logits.", "",
        "## Reproduce", "```bash", command, "```",
        f"Seed {args.seed}; epochs: {args.epochs}; Adam, learning rate {args.lr} with cosine decay, batch {args.batch_size}; "
        f"augmentation: random shifts up to ±{shift:g} px" + (f", rotations up to ±{degrees:g}°" if degrees else "")
        + (", horizontal flips" if hflip else "") + f". Training took {minutes:.1f} min on {args.threads or 'all'} CPU threads.", "",
        "## Result (test split, the weights as saved)",
        f"- test accuracy: **{metrics['test_accuracy'] * 100:.2f} %** on {metrics['n_test']:,} images",
        "- lowest class: {} ({:.2f} %)".format(*min(((k, v * 100) for k, v in metrics["per_class_accuracy"].items()), key=lambda kv: kv[1])), "",
        "| class | test accuracy |", "|---|---|", *rows, "",
        f"The weights ({size / 1e6:.2f} MB) are stored in float16 and cast to float32 when loaded "
        "(`vae_demo.models.classifier.load_classifier`). The same figures are in `metrics.json`.", "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo.training.classifier", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=CLASSIFIER_DATASETS, default="mnist")
    p.add_argument("--out", required=True, help="folder to write (config.json, model.safetensors, README.md, metrics.json)")
    p.add_argument("--data-root", default="../shared/datasets")
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    from safetensors.torch import save_file
    from tqdm import tqdm

    from vae_demo.datasets.mnist import load_dataset

    args = parse_args(argv)
    command = "python -m vae_demo.training.classifier " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_dataset(args.dataset, True, args.data_root), load_dataset(args.dataset, False, args.data_root)

    config = ClassifierConfig(image_size=train.images.shape[-1], channels=1, n_classes=len(train.class_names),
                              class_names=train.class_names, dataset=args.dataset, widths=tuple(args.widths),
                              hidden_dim=args.hidden_dim, dropout=args.dropout)
    model = Classifier(config).to(memory_format=torch.channels_last)  # channels-last convolutions: faster on a CPU
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = math.ceil(len(train.images) / args.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / (args.epochs * steps))))
    t0 = time.time()
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(len(train.images), generator=gen)
        bar = tqdm(range(steps), desc=f"epoch {epoch}/{args.epochs}", mininterval=5)
        loss_sum = hits = 0.0
        for i in bar:
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            x, y = augment(train.images[idx], *AUGMENT[args.dataset], gen).contiguous(memory_format=torch.channels_last), train.labels[idx]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            hits += (logits.argmax(1) == y).sum().item()
            bar.set_postfix(loss=f"{loss_sum / min((i + 1) * args.batch_size, len(perm)):.4f}", refresh=False)
        tqdm.write(f"epoch {epoch}: train loss {loss_sum / len(perm):.4f}, train accuracy {hits / len(perm):.4f} (augmented), "
                   f"{(time.time() - t0) / 60:.1f} min so far")
    minutes = (time.time() - t0) / 60

    # float16 halves the file; the figures below are measured on the weights as saved and loaded back
    model.save_pretrained(out)
    save_file({k: v.detach().half().contiguous() if v.is_floating_point() else v for k, v in model.state_dict().items()},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    metrics = evaluate(load_classifier(out), test.images, test.labels, test.class_names)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_card(out, args, command, metrics, minutes, (out / "model.safetensors").stat().st_size)
    print(f"test accuracy {metrics['test_accuracy']:.4f}; lowest class {min(metrics['per_class_accuracy'].values()):.4f}; "
          f"{minutes:.1f} min; wrote {out}")


if __name__ == "__main__":
    main()
