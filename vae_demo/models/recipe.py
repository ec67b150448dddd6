"""A training run's settings as a visitor chooses them (the Train tab, `/train`, `python -m vae_demo.train`), checked
with a sentence for each bad value, and the VAEConfig they make. Shared by the server, which checks them before a run
starts, and the trainer, which builds the model; neither imports the other.

Caps come from the environment (README, "Train your own"): VAE_DEMO_TRAIN_MAX_SECONDS (default 300) and the latent
size and image sides below.
"""

import math
import os
from dataclasses import asdict, dataclass

from vae_demo.errors import DemoError
from vae_demo.models.vae import VAEConfig

SOURCES = ("images", "digits", "faces", "shapes")
IMAGE_SIZES = (16, 28, 32, 48, 64)  # sides the trainer's network takes: two stride-2 stages, so divisible by 4
MAX_LATENT = 128
MAX_BETA = 100.0
DEFAULT_SECONDS = 60  # on a CPU; a GPU does more in the same time
HIDDEN_CHANNELS = (32, 64)  # a network that learns something in a minute on one CPU core
HIDDEN_DIM = 256
GAUSSIAN_STD = 0.1  # colour images: p(x|z) = N(decoder(z), 0.1² I) per pixel, as the bundled faces model


def env_count(name: str, default: int) -> int:
    """a positive whole number from the environment (a cap or a count), else `default`"""
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else default


def max_seconds() -> int:
    return env_count("VAE_DEMO_TRAIN_MAX_SECONDS", 300)


class SettingsError(DemoError, ValueError):
    """A setting for a training run that cannot be used, with a sentence for the visitor."""


@dataclass
class TrainSettings:
    source: str = "digits"  # one of SOURCES
    latent_dim: int = 16
    beta: float = 1.0  # the KL term's weight: loss = reconstruction + beta * KL
    seconds: float = DEFAULT_SECONDS  # how long the run trains (a Stop ends it sooner and keeps what it learned)
    image_size: int = 32
    seed: int = 0
    batch_size: int = 64
    lr: float = 3e-3  # with a cosine decay over the seconds (training/in_app.py): a minute learns more than at 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


def _number(name: str, value, kind):
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        raise SettingsError(f"{name} must be a number; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a number; got {value!r}.") from None
    if not math.isfinite(number):
        raise SettingsError(f"{name} must be a finite number; got {value!r}.")
    if kind is int:
        if number != int(number):
            raise SettingsError(f"{name} must be a whole number; got {value!r}.")
        return int(number)
    return number


def check_settings(source, latent_dim, beta, seconds, image_size, seed) -> TrainSettings:
    """What a visitor typed -> TrainSettings, or SettingsError saying which value to change and to what"""
    source = str(source or "").strip().lower()
    if source not in SOURCES:
        raise SettingsError(f"source must be one of {', '.join(SOURCES)}; got {source!r}.")
    latent_dim = _number("latent_dim", latent_dim, int)
    if not 1 <= latent_dim <= MAX_LATENT:
        raise SettingsError(f"latent_dim must be between 1 and {MAX_LATENT}; got {latent_dim}.")
    beta = _number("beta", beta, float)
    if not 0 <= beta <= MAX_BETA:
        raise SettingsError(f"beta must be between 0 and {MAX_BETA:g} (1 is the plain VAE); got {beta:g}.")
    seconds = _number("seconds", seconds, float)
    if not 1 <= seconds <= max_seconds():
        raise SettingsError(f"seconds must be between 1 and {max_seconds()} on this server "
                            f"(VAE_DEMO_TRAIN_MAX_SECONDS); got {seconds:g}.")
    image_size = _number("image_size", image_size, int)
    if image_size not in IMAGE_SIZES:
        raise SettingsError(f"image_size must be one of {', '.join(map(str, IMAGE_SIZES))}; got {image_size}.")
    seed = _number("seed", seed, int)
    if not 0 <= seed < 2**31:
        raise SettingsError(f"seed must be between 0 and {2**31 - 1}; got {seed}.")
    return TrainSettings(source, latent_dim, beta, seconds, image_size, seed)


def model_config(s: TrainSettings, channels: int, likelihood: str, dataset: str) -> VAEConfig:
    """the VAE a run trains: small enough to learn in a minute on one core"""
    return VAEConfig(image_size=s.image_size, channels=channels, latent_dim=s.latent_dim, hidden_channels=HIDDEN_CHANNELS,
                     hidden_dim=HIDDEN_DIM, block_convs=0, likelihood=likelihood, gaussian_std=GAUSSIAN_STD, beta=s.beta,
                     dataset=dataset, framing="mnist" if s.source == "digits" and s.image_size == 28 else "none")
