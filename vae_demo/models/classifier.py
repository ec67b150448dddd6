"""A small CNN per labelled dataset (MNIST, Fashion-MNIST): a faithful reader of the dataset, used to judge
what a VAE reconstructs and what a visitor uploads ("your image reads as 3 (98 %)").

Trained by `python -m vae_demo.training.classifier` (vae_demo/training/classifier.py) on the real training split.
No `from __future__ import annotations` here: PyTorchModelHubMixin reads the real type of `config` from `__init__`.
"""

import dataclasses
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from vae_demo.hub.loading import CHECKPOINTS_DIR, no_random_init

# One folder per dataset; this folder itself holds no config.json, so bundled_models() never lists it as a VAE.
CLASSIFIERS_DIR = CHECKPOINTS_DIR / "classifiers"
CLASSIFIER_DATASETS = ("mnist", "fashion-mnist")


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
    # Several readings at once (the face reader: skin tone, glasses, smile, beard): [name, classes] pairs whose classes
    # add up to n_classes; the logits are read head by head (vae_demo/models/face_reader.py). None: one reading.
    heads: Optional[list] = None

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
        if self.heads is not None and sum(int(n) for _, n in self.heads) != self.n_classes:
            raise ValueError(f"heads {self.heads} must add up to n_classes = {self.n_classes}.")
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
