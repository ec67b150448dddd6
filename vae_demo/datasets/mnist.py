"""Training data as in-memory tensors: MNIST and Fashion-MNIST from torchvision's folder layout.

Only training and evaluation read these; the app and the test suite never do.
"""

from dataclasses import dataclass

import torch

DATASETS = ("mnist", "fashion-mnist")
DEFAULT_ROOT = "../shared/datasets"
MNIST_CLASSES = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@dataclass
class ImageData:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64
    class_names: list


def load_dataset(name: str, train: bool, root: str = DEFAULT_ROOT) -> ImageData:
    """name in DATASETS -> all images of the split as one float tensor (N, 1, 28, 28) in [0, 1]"""
    import torchvision  # imported here: the app itself never needs torchvision datasets

    if name == "mnist":
        ds, classes = torchvision.datasets.MNIST(root=root, train=train, download=False), MNIST_CLASSES
    elif name == "fashion-mnist":
        ds, classes = torchvision.datasets.FashionMNIST(root=root, train=train, download=False), FASHION_CLASSES
    else:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}.")
    images = ds.data.unsqueeze(1).float().div_(255.0)
    return ImageData(images=images, labels=ds.targets.clone().long(), class_names=classes)


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(N, C, H, W) grey levels in [0, 1] -> {0, 1} samples with P(1) = grey level (dynamic binarization)"""
    return torch.bernoulli(images, generator=generator)


def fixed_binarized_test_set(name: str = "mnist", root: str = DEFAULT_ROOT, seed: int = 0) -> ImageData:
    """The test split binarized once with a fixed seed, so every evaluation sees the same bits."""
    data = load_dataset(name, train=False, root=root)
    g = torch.Generator().manual_seed(seed)
    return ImageData(images=binarize(data.images, g), labels=data.labels, class_names=data.class_names)


def export_examples(data: ImageData, out_dir, per_class: int = 1, max_images: int = 10) -> list:
    """Write the first test image of each class as PNG (e.g. examples/3.png) for the app's example lists."""
    from pathlib import Path

    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for c in range(len(data.class_names)):
        idx = (data.labels == c).nonzero().flatten()[:per_class]
        for j, i in enumerate(idx.tolist()):
            arr = (data.images[i] * 255).round().byte().permute(1, 2, 0).numpy()  # (H, W, C)
            name = data.class_names[c].replace("/", "-").replace(" ", "_").lower()
            path = out_dir / (f"{c}_{name}.png" if per_class == 1 else f"{c}_{name}_{j}.png")
            Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB").save(path)
            written.append(path)
        if len(written) >= max_images:
            break
    return written
