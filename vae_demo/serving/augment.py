"""/augment, make a dataset (data augmentation): a conditional VAE writes `per_class` new images of every class, and
they are packed as a zip a training script can read: a folder per label with PNGs in it, and labels.csv.

The images are decode(z, label) with z ~ N(0, I): the decoder's pixel probabilities as grey levels. The bundled
classifier's reading of each is returned beside the file, so a visitor sees how many of them are what their folder says.
"""

import csv
import io
import re
import time
import zipfile
from pathlib import Path
from typing import Callable, Optional

import torch
from PIL import Image

from vae_demo.device import batch_threads
from vae_demo.imaging.render import tile_sheet
from vae_demo.serving.inference import InputError, _int, check_seed
from vae_demo.serving.verdicts import reads

MAX_PER_CLASS = 1000
BATCH = 500  # images decoded at once


def folder_name(name: str) -> str:
    """a class name -> a folder name that is the same on every file system ("T-shirt/top" -> "T-shirt-top")"""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-.") or "class"


def generate(vae, per_class: int, seed: int, progress: Optional[Callable] = None) -> tuple:
    """-> ((L * per_class, C, H, W) in [0, 1], (L * per_class,) labels): per_class images of every label, z ~ N(0, I)"""
    n_labels = vae.config.num_labels
    labels = torch.arange(n_labels).repeat_interleave(per_class)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(len(labels), vae.config.latent_dim, generator=g)
    out = []
    with torch.inference_mode():
        for start in range(0, len(z), BATCH):
            with batch_threads(BATCH):
                out.append(vae.decode(z[start:start + BATCH].to(vae.device), labels[start:start + BATCH]).cpu())
            if progress:
                progress(min(1.0, (start + BATCH) / len(z)) * 0.6, "decoding")
    return torch.cat(out), labels


def pack(images: torch.Tensor, labels: torch.Tensor, names: list, path: Path, progress: Optional[Callable] = None) -> None:
    """images, labels -> a zip at `path`: <label>/<label>_<i>.png for each image, and labels.csv (file, label)"""
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["file", "label", "label_index"])
    arr = (images.clamp(0, 1) * 255).round().byte()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
        for i, (x, y) in enumerate(zip(arr, labels.tolist())):
            folder = folder_name(names[y])
            name = f"{folder}/{folder}_{i:05d}.png"
            a = x.permute(1, 2, 0).numpy()
            img = Image.fromarray(a[:, :, 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB")
            buf = io.BytesIO()
            img.save(buf, "png", compress_level=6)
            zf.writestr(name, buf.getvalue())
            writer.writerow([name, names[y], y])
            if progress and i % 500 == 0:
                progress(0.6 + 0.4 * i / len(arr), "writing PNGs")
        zf.writestr("labels.csv", table.getvalue())


def augment(vae, per_class=100, seed=0, out_dir: Optional[Path] = None, progress: Optional[Callable] = None) -> tuple:
    """-> (the zip's path, a preview sheet: the first 8 images of every class, one class per row, {"per_class",
    "images", "classes", "read_as_label": the share the bundled classifier reads as its folder's label, per class and
    in all})"""
    if not vae.config.latent_dim or not vae.config.num_labels:
        raise InputError(f"{vae.info.name} is not conditional: it cannot be told which class to draw. Pick mnist-cvae, "
                         "a conditional VAE, to make a labelled dataset.")
    per_class = _int(per_class, "per_class", 1, MAX_PER_CLASS)
    seed = check_seed(seed)
    names = vae.config.class_names or [str(i) for i in range(vae.config.num_labels)]
    images, labels = generate(vae, per_class, seed, progress)
    read = [r for start in range(0, len(images), BATCH) for r in reads(vae, images[start:start + BATCH])]
    info = {"model": vae.info.name, "per_class": per_class, "images": len(images), "seed": seed,
            "classes": [folder_name(n) for n in names]}
    if read:
        hit = torch.tensor([r["reads_as"] == names[y] for r, y in zip(read, labels.tolist())])
        info["read_as_label"] = round(float(hit.float().mean()), 4)
        info["read_as_label_per_class"] = {folder_name(n): round(float(hit[labels == k].float().mean()), 4)
                                           for k, n in enumerate(names)}
    folder = Path(out_dir) if out_dir else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{vae.info.name}-{per_class}-per-class-seed-{seed}-{time.time_ns()}.zip"
    pack(images, labels, names, path, progress)
    k = min(8, per_class)
    preview = torch.cat([images[labels == c][:k] for c in range(len(names))])
    return str(path), tile_sheet(preview, nrow=k, cell=56), info
