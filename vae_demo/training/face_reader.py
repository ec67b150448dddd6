"""Train the face reader (vae_demo/models/face_reader.py) on the generated faces and measure it on the held-out ones.

    python -m vae_demo.training.face_reader --data-root ../data --out checkpoints/classifiers/faces --epochs 3

Labels come from what python-avatars drew (labels.csv): skin tone (7, light to dark), glasses (1 for the eight
glasses, 0 for none or the eyepatch), smile (1 for SMILE, BIG_SMILE, TWINKLE; 0 for SERIOUS, SAD, CONCERNED, GRIMACE,
DISBELIEF; the other five mouths are in neither group and teach the smile head nothing) and beard (facial hair drawn).
"""

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vae_demo.datasets.faces import label_array, load_faces, to_tensor
from vae_demo.models.classifier import Classifier, ClassifierConfig, load_classifier
from vae_demo.models.face_reader import HEADS, read


def face_labels(labels: list) -> torch.Tensor:
    """labels.csv rows -> (N, 4) int64: skin tone, glasses, smile (-1: neither group), beard"""
    glasses = np.clip(label_array(labels, "glasses"), 0, 1)  # the eyepatch (-1) is no glasses
    cols = [label_array(labels, "skin_tone"), glasses, label_array(labels, "smile"), label_array(labels, "beard")]
    return torch.from_numpy(np.stack(cols, 1))


def loss_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    total, start = 0.0, 0
    for j, (_, n) in enumerate(HEADS):
        keep = y[:, j] >= 0
        if keep.any():
            total = total + F.cross_entropy(logits[keep, start : start + n], y[keep, j])
        start += n
    return total


def accuracy(reader: Classifier, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> dict:
    """held-out accuracy per head (smile over the faces whose mouth is in one of its two groups)"""
    reader.eval()
    probs = [read(reader, x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    out = {}
    for j, (name, _) in enumerate(HEADS):
        pred = torch.cat([p[name].argmax(1) for p in probs])
        keep = y[:, j] >= 0
        out[name] = round(float((pred[keep] == y[keep, j]).float().mean()), 4)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo.training.face_reader", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="../data", help="holds faces-train and faces-test (python -m vae_demo.datasets.faces)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    command = "python -m vae_demo.training.face_reader " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_images, train_rows = load_faces(Path(args.data_root) / "faces-train", mmap=False)
    test_images, test_rows = load_faces(Path(args.data_root) / "faces-test", mmap=False)
    x_train, y_train = to_tensor(train_images, torch.uint8), face_labels(train_rows)
    x_test, y_test = to_tensor(test_images), face_labels(test_rows)
    names = [f"{head}:{k}" for head, n in HEADS for k in range(n)]
    config = ClassifierConfig(image_size=64, channels=3, n_classes=len(names), class_names=names, dataset="faces",
                              widths=(16, 32, 64), hidden_dim=128, dropout=0.2, heads=[list(h) for h in HEADS])
    reader = Classifier(config).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(reader.parameters(), lr=args.lr)
    steps = -(-len(x_train) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps)
    gen, t0 = torch.Generator().manual_seed(args.seed), time.time()
    for epoch in range(1, args.epochs + 1):
        reader.train()
        perm = torch.randperm(len(x_train), generator=gen)
        for i in tqdm(range(steps), desc=f"epoch {epoch}/{args.epochs}", mininterval=5):
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            x = x_train[idx].float().div_(255.0).contiguous(memory_format=torch.channels_last)
            loss = loss_of(reader(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        tqdm.write(f"epoch {epoch}: held-out accuracy {accuracy(reader, x_test[:2000], y_test[:2000])}")
    out = Path(args.out)
    reader.eval().save_pretrained(out)
    metrics = {"accuracy": accuracy(load_classifier(out), x_test, y_test), "n_test": len(x_test),
               "minutes": round((time.time() - t0) / 60, 1), "command": command}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    rows = "\n".join(f"| {name} | {acc:.2%} |" for name, acc in metrics["accuracy"].items())
    (out / "README.md").write_text(
        "# The face reader\n\nReads a 64×64 cartoon face's skin tone (7, light to dark), glasses, smile and beard "
        "(vae_demo/models/face_reader.py), to judge what the faces VAE makes. Trained on the 60,000 generated training "
        f"faces in {metrics['minutes']} min; held-out accuracy on the {len(x_test):,} faces of seed 1 (smile: the faces "
        "whose mouth is in one of its two groups):\n\n| head | accuracy |\n|---|---|\n" + rows
        + f"\n\n```bash\n{command}\n```\n")
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
