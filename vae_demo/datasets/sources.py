"""What the in-app trainer learns from: a visitor's own images, or one of three sets that need no upload.

- `images`: the visitor's (datasets/own_images.py reads and fits them);
- `digits`: 5,000 MNIST training digits (500 per class) shipped with the app in `digits-5000.npz` (836 KB);
- `faces`: cartoon faces drawn on the fly (datasets/faces.py), a pool that grows while the run trains;
- `shapes`: dSprites drawn on the fly (datasets/dsprites.py), a fresh batch every step.

Every source gives float batches (B, C, S, S) in [0, 1] at the run's image size. A source that draws its images
(faces, shapes) is deterministic per seed.

    python -m vae_demo.datasets.sources make-digits --data-root ../shared/datasets   # rewrites digits-5000.npz
"""

import argparse
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from vae_demo.models.recipe import SOURCES  # noqa: F401  (the names the trainer and the tab use)
DIGITS_FILE = Path(__file__).with_name("digits-5000.npz")
FACES_FIRST = 64  # faces drawn before the first step: enough for a first batch, quick enough for a first sample
FACES_PER_STEP = 8  # faces drawn after each step until the pool is full (drawing one costs about a step's 1/10)
FACES_POOL = 4000


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """(B, C, H, W) float -> (B, C, side, side), area-averaged when shrinking"""
    if x.shape[-1] == side:
        return x
    mode = "area" if x.shape[-1] > side else "bilinear"
    return F.interpolate(x, size=(side, side), mode=mode, **({} if mode == "area" else {"align_corners": False})).clamp_(0, 1)


class Source:
    """images to train on, drawn by a torch.Generator so that a run is repeatable by its seed"""

    name = ""
    channels = 1
    likelihood = "bernoulli"  # grey sets that are mostly ink or background; colour sets: "gaussian"
    dataset = ""  # what the model card and the picker say it learned

    def __init__(self, side: int, seed: int):
        self.side, self.gen = side, torch.Generator().manual_seed(seed)

    def batch(self, n: int) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """a chance to grow a drawn pool between steps"""

    def size(self) -> int:
        """distinct images available now (drawn sources: how many have been drawn)"""
        raise NotImplementedError


class ArraySource(Source):
    def __init__(self, images: np.ndarray, side: int, seed: int, name: str, dataset: str):
        super().__init__(side, seed)
        x = torch.from_numpy(np.ascontiguousarray(images))  # (N, C, S0, S0) uint8
        self.images = (resize(x.float().div_(255), side) * 255).round_().to(torch.uint8) if x.shape[-1] != side else x
        self.channels = int(x.shape[1])
        self.likelihood = "bernoulli" if self.channels == 1 else "gaussian"
        self.name, self.dataset = name, dataset

    def batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self.images), (n,), generator=self.gen)
        return self.images[idx].float().div_(255)

    def size(self) -> int:
        return len(self.images)


class ShapesSource(Source):
    name, dataset = "shapes", "dsprites (drawn in the run)"

    def __init__(self, side: int, seed: int):
        super().__init__(side, seed)
        from vae_demo.datasets import dsprites

        self._ds, self.rng, self.drawn = dsprites, np.random.default_rng(seed), 0

    def batch(self, n: int) -> torch.Tensor:
        self.drawn += n
        return resize(self._ds.generate(self._ds.sample_factors(n, self.rng)), self.side)

    def size(self) -> int:
        return self.drawn


class FacesSource(Source):
    name, channels, likelihood, dataset = "faces", 3, "gaussian", "cartoon faces (drawn in the run)"

    def __init__(self, side: int, seed: int, first: int = FACES_FIRST, pool: int = FACES_POOL):
        super().__init__(side, seed)
        from vae_demo.datasets import faces  # python-avatars and resvg-py: only when faces are asked for

        self._faces, self.seed, self.cap = faces, seed, pool
        self.pool = torch.empty((pool, 3, side, side), dtype=torch.uint8)
        self.n = 0
        self._draw(first)

    def _draw(self, k: int) -> None:
        k = min(k, self.cap - self.n)
        if k <= 0:
            return
        images, _ = self._faces.render_faces(k, self.seed, start=self.n)
        x = resize(self._faces.to_tensor(images), self.side)
        self.pool[self.n : self.n + k] = (x * 255).round_().to(torch.uint8)
        self.n += k

    def after_step(self) -> None:
        self._draw(FACES_PER_STEP)

    def batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, self.n, (n,), generator=self.gen)
        return self.pool[idx].float().div_(255)

    def size(self) -> int:
        return self.n


def digits(side: int, seed: int) -> ArraySource:
    with np.load(DIGITS_FILE, allow_pickle=False) as f:
        images = f["images"][:, None]  # (5000, 1, 28, 28) uint8
    return ArraySource(images, side, seed, "digits", "5,000 MNIST training digits")


def open_source(source: str, side: int, seed: int, images: Optional[np.ndarray] = None) -> Source:
    if source == "images":
        if images is None:
            raise ValueError("the images source needs the visitor's images")
        return ArraySource(images, side, seed, "images", "your images")
    if source == "digits":
        return digits(side, seed)
    if source == "faces":
        return FacesSource(side, seed)
    if source == "shapes":
        return ShapesSource(side, seed)
    raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {source!r}.")


def make_digits(data_root: str, per_class: int = 500, seed: int = 0) -> None:
    """the bundled digits: `per_class` MNIST training digits of each class, drawn by `seed`"""
    from vae_demo.datasets.mnist import load_dataset

    d = load_dataset("mnist", True, data_root)
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([torch.nonzero(d.labels == c).flatten()[torch.randperm(int((d.labels == c).sum()), generator=g)[:per_class]]
                     for c in range(10)]).sort().values
    images = (d.images[idx, 0] * 255).round().to(torch.uint8).numpy()
    np.savez_compressed(DIGITS_FILE, images=images, labels=d.labels[idx].numpy().astype(np.uint8), index=idx.numpy().astype(np.int32))


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m vae_demo.datasets.sources")
    p.add_argument("command", choices=["make-digits"])
    p.add_argument("--data-root", default="../shared/datasets")
    a = p.parse_args()
    make_digits(a.data_root)
    print(f"wrote {DIGITS_FILE}")
