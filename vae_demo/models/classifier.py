"""A small CNN per labelled dataset (MNIST, Fashion-MNIST): a faithful reader of the dataset, used to judge
what a VAE reconstructs and what a visitor uploads ("your image reads as 3 (98 %)").

    python -m vae_demo.classifier --dataset mnist --epochs 6 --seed 0 --threads 2 --out checkpoints/classifiers/mnist

Trained on the real training split (never on VAE outputs) with mild augmentation, evaluated on the test split.
No `from __future__ import annotations` here: PyTorchModelHubMixin reads the real type of `config` from `__init__`.
"""

import argparse
import dataclasses
import json
import math
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from .loading import CHECKPOINTS_DIR, no_random_init

# One folder per dataset; this folder itself holds no config.json, so bundled_models() never lists it as a VAE.
CLASSIFIERS_DIR = CHECKPOINTS_DIR / "classifiers"
CLASSIFIER_DATASETS = ("mnist", "fashion-mnist")
# Augmentation per dataset: (max shift in pixels, max rotation in degrees, random horizontal flips).
# Garments are left-right symmetric in meaning; digits are not, and a rotated shirt is not how Fashion-MNIST frames one.
AUGMENT = {"mnist": (2.0, 10.0, False), "fashion-mnist": (2.0, 0.0, True)}


@dataclass
class ClassifierConfig:
    image_size: int = 28
    channels: int = 1
    n_classes: int = 10
    class_names: Optional[list] = None
    dataset: str = ""  # "mnist" or "fashion-mnist"; empty for untrained models
    # Feature maps per stage; each stage is two 3x3 convs and a 2x2 max-pool, so image_size must divide by 2 ** len(widths).
    widths: tuple = (32, 64)
    hidden_dim: int = 128  # the dense layer before the logits
    dropout: float = 0.3

    def __post_init__(self):
        self.widths = tuple(int(w) for w in self.widths)
        if not self.widths or min(self.widths) < 1 or self.hidden_dim < 1 or self.n_classes < 2:
            raise ValueError("widths needs at least one positive stage, hidden_dim must be >= 1 and n_classes >= 2.")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}.")
        if self.image_size % 2 ** len(self.widths):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2 ** len(widths) = {2 ** len(self.widths)}; "
                             "change image_size or use fewer stages in widths.")
        if self.class_names is not None and len(self.class_names) != self.n_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names but n_classes is {self.n_classes}; make them agree.")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")


class Classifier(nn.Module, PyTorchModelHubMixin, library_name="vae-demo", tags=["image-classification", "vae-demo"], license="mit"):
    def __init__(self, config: ClassifierConfig):
        super().__init__()
        if isinstance(config, dict):
            config = ClassifierConfig(**config)
        self.config = config
        layers, c_in = [], config.channels
        for w in config.widths:
            for c in (c_in, w):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            c_in = w
        side = config.image_size // 2 ** len(config.widths)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(c_in * side * side, config.hidden_dim), nn.ReLU(inplace=True),
            nn.Dropout(config.dropout), nn.Linear(config.hidden_dim, config.n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1], the dataset's own polarity (light ink on black) -> (B, n_classes) logits"""
        return self.head(self.features(x))

    @torch.inference_mode()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, n_classes) probabilities; the model's current mode is kept (call .eval() first)"""
        return self(x.to(next(self.parameters()).device, torch.float32)).softmax(dim=-1)


def load_classifier(folder: Union[str, Path]) -> Classifier:
    """A folder with config.json + model.safetensors -> Classifier in eval mode on CPU (float16 weights cast to float32).

    Only safetensors is read; a folder with just a pickled pytorch_model.bin raises FileNotFoundError."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_file, weights_file = folder / "config.json", folder / "model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        pickled = " (a pickled pytorch_model.bin is never loaded)" if (folder / "pytorch_model.bin").exists() else ""
        raise FileNotFoundError(f"{folder} needs config.json and model.safetensors{pickled}.")
    raw = json.loads(config_file.read_text())
    known = {f.name for f in dataclasses.fields(ClassifierConfig)}
    if not isinstance(raw, dict) or set(raw) - known:
        raise ValueError(f"{config_file} is not a classifier config (unknown keys: {sorted(set(raw) - known) if isinstance(raw, dict) else raw!r}).")
    with no_random_init():  # every weight comes from the file: load_state_dict(strict=True) below
        model = Classifier(ClassifierConfig(**raw))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(weights_file), device="cpu").items()}
    model.load_state_dict(state, strict=True)
    return model.eval()


_cache: dict = {}
_cache_lock = threading.Lock()


def for_inference(model: Classifier) -> Classifier:
    """The same classifier with each BatchNorm folded into the conv before it and channels-last memory: the same
    probabilities (to float rounding; tested) for less work per call, since the app asks for a verdict on every
    reconstruction. Only for eval mode: a folded model cannot be trained."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    layers, out = list(model.eval().features), []
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, nn.Conv2d) and layers and isinstance(layers[0], nn.BatchNorm2d):
            layer = fuse_conv_bn_eval(layer, layers.pop(0))
        out.append(layer)
    model.features = nn.Sequential(*out)
    return model.to(memory_format=torch.channels_last)


def classifier_for(dataset: str, device: Union[str, torch.device] = "cpu") -> Optional[Classifier]:
    """"mnist" | "fashion-mnist" -> the bundled classifier on `device`, loaded once and shared; None for other datasets."""
    if dataset not in CLASSIFIER_DATASETS or not (CLASSIFIERS_DIR / dataset).is_dir():
        return None
    key = (dataset, str(torch.device(device)))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = for_inference(load_classifier(CLASSIFIERS_DIR / dataset)).to(device)
        return _cache[key]


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
        "(`vae_demo.classifier.load_classifier`). The same figures are in `metrics.json`.", "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo.classifier", description=__doc__.splitlines()[0])
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

    from .data import load_dataset

    args = parse_args(argv)
    command = "python -m vae_demo.classifier " + shlex.join(sys.argv[1:] if argv is None else argv)
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
    model = Classifier(config).to(memory_format=torch.channels_last)  # channels-last convs: ~1.3x faster on CPU
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
