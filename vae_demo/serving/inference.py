"""What the app does with a model, as plain functions: reconstruct, sample, interpolate, encode, decode.

Inputs are validated here (not in the UI) so the app, the HTTP API and the CLI refuse bad values with
the same sentence. Every function runs under torch.inference_mode on the model's own device.
"""

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from vae_demo.models.classifier import classifier_for
from vae_demo.device import batch_threads
from vae_demo.imaging.framing import SceneError, frame as frame_like_training
from vae_demo.imaging.uploads import ImageInput, prepare
from vae_demo.serving.verdicts import verdict
from vae_demo.analysis.evaluation_files import evaluation_of
from vae_demo.models.protocol import LoadedModel
from vae_demo.models.vae import VAE
from vae_demo.errors import DemoError

MAX_SAMPLES = 64
MIN_STEPS, MAX_STEPS = 2, 32
MAX_TEMPERATURE = 5.0
MAX_LATENT_ABS = 1e3  # |z| beyond this is no longer a question about the model
MAX_TRAVERSE_DIMS, MAX_TRAVERSE_VALUES = 16, 15
# Photo autoencoders decode a 512-pixel image per call: seconds each on a CPU, so fewer at a time.
MAX_PHOTO_SAMPLES, MAX_PHOTO_STEPS, PHOTO_SAMPLE_SIZE = 4, 8, 256
POSTERIOR_SEED = 0  # ELBO terms use seeded posterior samples so the same upload gives the same numbers


class InputError(DemoError, ValueError):
    """A parameter a person chose that cannot be used, with a message saying which values work."""


@dataclass
class Reconstruction:
    input: torch.Tensor  # (1, C, H, W) the upload as the model sees it
    reconstruction: torch.Tensor  # (1, C, H, W) decode(mu)
    error: torch.Tensor  # (H, W) per-pixel squared error, averaged over channels
    mu: torch.Tensor  # (D,)
    logvar: torch.Tensor  # (D,)
    posterior_samples: torch.Tensor  # (K, C, H, W) decode(z) for z ~ q(z|x)
    metrics: dict
    pca_reconstruction: Optional[torch.Tensor] = None  # (1, C, H, W) the linear baseline, if the model has one


def _int(value, name: str, lo: int, hi: int) -> int:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a whole number from {lo} to {hi}; got {value!r}.") from None
    if not math.isfinite(f) or f != int(f) or not lo <= f <= hi:
        raise InputError(f"{name} must be a whole number from {lo} to {hi}; got {value!r}.")
    return int(f)


def check_seed(seed) -> int:
    """Any whole number (int, integral float, digit string; any size) -> a torch seed in 0 .. 2**63 - 1."""
    if isinstance(seed, bool):
        seed = int(seed)
    if isinstance(seed, int):
        return seed % (2**63)
    if isinstance(seed, str) and re.fullmatch(r"\s*[+-]?\d{1,4300}\s*", seed):
        return int(seed) % (2**63)
    try:
        f = float(seed)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"seed must be a whole number; got {seed!r}.") from None
    if not math.isfinite(f) or f != int(f):
        raise InputError(f"seed must be a whole number; got {seed!r}.")
    return int(f) % (2**63)


def check_temperature(t) -> float:
    try:
        f = float(t)
    except (TypeError, ValueError):
        raise InputError(f"temperature must be a number above 0 and at most {MAX_TEMPERATURE:g}; got {t!r}.") from None
    if not math.isfinite(f) or not 0 < f <= MAX_TEMPERATURE:
        raise InputError(f"temperature must be a number above 0 and at most {MAX_TEMPERATURE:g}; got {t!r}.")
    return f


def is_spatial(vae) -> bool:
    """Photo autoencoders (Stable Diffusion's VAE, TAESD) have (C, H/8, W/8) latents, not a vector."""
    return vae.config.latent_dim is None


def require(vae, capability: str) -> None:
    if capability not in vae.capabilities:
        notes = vae.notes
        raise InputError(notes.get(capability) or f"This model does not support {capability}.")


def image_tensor(vae: LoadedModel, image: ImageInput, size: Optional[tuple] = None, frame: bool = True) -> torch.Tensor:
    """Any image -> (1, C, S, S) in [0, 1] on the model's device, as this model expects it: with `frame`, framed
    like the model's training data where its config names a framing (a drawn digit cropped, fitted and centred
    by mass, as MNIST's were), else padded to a square and resized. Photo models keep the aspect ratio:
    (1, 3, H, W), long side <= their max size, or exactly `size`."""
    if is_spatial(vae):
        return vae.prepare(image, size=size)
    return framed_tensor(vae, image, frame)[0]


def framed_tensor(vae: LoadedModel, image: ImageInput, frame: bool = True) -> tuple:
    """A small model's input -> ((1, C, S, S) on its device, None or the sentence saying why it could not be framed:
    a photo of a scene is shown whole, not refused, on every path: reconstruct, interpolate, encode, the sliders)."""
    framing = vae.config.framing
    if frame and framing != "none":
        try:
            return frame_like_training(image, framing, vae.config.image_size).image.to(vae.device), None
        except SceneError as e:
            return prepare(image, vae.config.image_size, vae.config.channels).to(vae.device), str(e)
    return prepare(image, vae.config.image_size, vae.config.channels).to(vae.device), None


@torch.inference_mode()
def reconstruct(vae: LoadedModel, image: ImageInput, n_posterior: int = 8, frame: bool = True) -> Reconstruction:
    """An image -> its reconstruction from the posterior mean, error map, posterior samples and metrics.

    ELBO terms (nats): reconstruction = -E_q[log p(x|z)] averaged over the seeded posterior samples,
    KL = KL(q(z|x) || N(0, I)) in closed form; ELBO = -(reconstruction + KL) is a lower bound on log p(x).
    """
    if is_spatial(vae):
        return _reconstruct_photo(vae, image_tensor(vae, image), n_posterior)
    x, note = framed_tensor(vae, image, frame)  # a photo of a scene: shown whole, with a sentence that says why
    y = condition(vae, x)
    mu, logvar = vae.encode(x, y)
    g = torch.Generator(device=x.device).manual_seed(POSTERIOR_SEED)
    k = max(1, n_posterior)
    z = vae.reparameterize(mu.expand(k, -1), logvar.expand(k, -1), generator=g)
    both = vae.decode_logits(torch.cat([mu, z]), y)  # (1 + k, C, H, W): the mean's decode and the samples' in one pass
    x_hat, logits = torch.sigmoid(both[:1]), both[1:]
    rec = vae.reconstruction_nll(x.expand(k, -1, -1, -1), logits).mean().item()
    kl_dims = VAE.kl_per_dim(mu, logvar)[0]
    kl = kl_dims.sum().item()
    err = (x - x_hat).pow(2).mean(1)[0]
    mse = err.mean().item()
    metrics = {
        "mse": mse,
        "psnr": 10 * math.log10(1.0 / max(mse, 1e-10)),
        "reconstruction_nll": rec,
        "kl": kl,
        "elbo": -(rec + kl),
        "beta": vae.config.beta,
        "likelihood": vae.config.likelihood,
        "latent_dim": vae.config.latent_dim,
    }
    if note:
        metrics["framing_note"] = note
    if y is not None:
        metrics["label"] = (vae.config.class_names or [])[int(y)] if vae.config.class_names else int(y)
    metrics.update(verdict(vae, x, x_hat))
    know = evaluation_of(vae)
    pct = know.anomaly_percentile(mse)
    if pct is not None:
        metrics["anomaly_percentile"] = pct  # % of test images reconstructed better than this one
    pca_rec = None
    if know.pca is not None:
        pca_rec = know.pca.reconstruct(x.flatten(1).cpu()).clamp(0, 1).view_as(x)
        metrics["pca_mse"] = (pca_rec - x.cpu()).pow(2).mean().item()
    return Reconstruction(
        input=x, reconstruction=x_hat, error=err, mu=mu[0], logvar=logvar[0],
        posterior_samples=torch.sigmoid(logits), metrics=metrics, pca_reconstruction=pca_rec,
    )


def condition(vae, x: torch.Tensor, label=None):
    """A conditional model's label for x: the one given (a class index or name), else what the dataset's classifier
    reads in x (a 0-d tensor, or (B,) for a batch); None for an unconditional model."""
    if not vae.config.num_labels:
        return None
    names = vae.config.class_names or []
    if label not in (None, ""):
        if isinstance(label, str) and label.strip() in names:
            return torch.tensor(names.index(label.strip()))
        try:
            return torch.tensor(_int(label, "label", 0, vae.config.num_labels - 1))
        except InputError:
            raise InputError(f"label must be one of {', '.join(names) or range(vae.config.num_labels)}; got {label!r}.") from None
    clf = classifier_for(vae.config.dataset, vae.device)
    if clf is None:
        raise InputError(f"{vae.info.name} is conditional and has no classifier to read the label: give the label.")
    y = clf.predict(x).argmax(1)
    return y[0] if len(x) == 1 else y


def _reconstruct_photo(vae, x: torch.Tensor, n_posterior: int) -> Reconstruction:
    """A photo autoencoder has no p(x|z): report pixel metrics, SSIM and (for the SD VAE) the KL term."""
    from vae_demo.imaging.uploads import ssim

    mu, logvar = vae.encode(x)
    x_hat = vae.decode(mu)
    err = (x - x_hat).pow(2).mean(1)[0]
    mse = err.mean().item()
    metrics = {"mse": mse, "psnr": 10 * math.log10(1.0 / max(mse, 1e-10)), "ssim": ssim(x, x_hat),
               "latent_shape": list(mu.shape[1:]), "image_size": list(x.shape[-2:]), "deterministic": vae.deterministic}
    if vae.kl_defined:
        metrics["kl"] = vae.kl_per_dim(mu, logvar).sum().item()
    k = 0 if vae.deterministic else min(max(0, n_posterior - 1), 2)  # each decode of a photo costs seconds on a CPU
    if k:
        g = torch.Generator(device=x.device).manual_seed(POSTERIOR_SEED)
        posterior = vae.decode(vae.reparameterize(mu.expand(k, *mu.shape[1:]), logvar.expand(k, *mu.shape[1:]), g))
    else:
        posterior = x_hat
    return Reconstruction(input=x, reconstruction=x_hat, error=err, mu=mu[0], logvar=logvar[0],
                          posterior_samples=posterior, metrics=metrics)


def prior_latents(vae: LoadedModel, n: int = 16, seed=0, temperature: float = 1.0) -> torch.Tensor:
    """n, seed, temperature -> (n, D) (photo models: (n, C, h, w)) z ~ N(0, temperature^2 I) on the CPU; same seed, same z."""
    require(vae, "sample")
    n = _int(n, "n", 1, MAX_PHOTO_SAMPLES if is_spatial(vae) else MAX_SAMPLES)
    t = check_temperature(temperature)
    g = torch.Generator().manual_seed(check_seed(seed))  # CPU generator: identical draws on every device
    shape = vae.latent_shape(PHOTO_SAMPLE_SIZE, PHOTO_SAMPLE_SIZE) if is_spatial(vae) else (vae.config.latent_dim,)
    z = torch.randn(n, *shape, generator=g) * t
    if vae.config.num_labels:  # a conditional model: tile i is written as class i mod L
        z = torch.cat([z, vae.one_hot(torch.arange(n) % vae.config.num_labels, n).cpu()], 1)
    return z


@torch.inference_mode()
def sample(vae: LoadedModel, n: int = 16, seed=0, temperature: float = 1.0) -> torch.Tensor:
    """n, seed, temperature -> (n, C, H, W) decoded from z ~ N(0, temperature^2 I); same seed, same images."""
    return vae.decode(prior_latents(vae, n, seed, temperature).to(vae.device))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(D,), (D,), (T,) -> (T, D) spherical interpolation; falls back to lerp for (anti)parallel vectors"""
    t = t[:, None]
    na, nb = a.norm(), b.norm()
    cos = torch.dot(a, b) / (na * nb).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4 or (math.pi - omega).abs() < 1e-4 or na < 1e-8 or nb < 1e-8:
        return (1 - t) * a + t * b
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@torch.inference_mode()
def interpolation_path(vae: LoadedModel, image_a: ImageInput, image_b: ImageInput, steps: int = 8, method: str = "lerp",
                       frame: bool = True) -> torch.Tensor:
    """Two images, steps, "lerp"|"slerp" -> (steps, D) (photo models: (steps, C, h, w)) latents from mu_A to mu_B;
    a conditional model's are (steps, D + L): z then the label's one-hot, which goes from A's class to B's."""
    steps = _int(steps, "steps", MIN_STEPS, MAX_PHOTO_STEPS if is_spatial(vae) else MAX_STEPS)
    method = str(method).lower()
    if method not in ("lerp", "slerp"):
        raise InputError(f"method must be 'lerp' or 'slerp'; got {method!r}.")
    xa = image_tensor(vae, image_a, frame=frame)
    xb = image_tensor(vae, image_b, size=tuple(xa.shape[-2:]) if is_spatial(vae) else None, frame=frame)  # photos: B cropped to A's size
    ya, yb = condition(vae, xa), condition(vae, xb)
    if ya is None and not is_spatial(vae):  # both codes from one forward
        mu_a, mu_b = vae.encode(torch.cat([xa, xb]))[0]
    else:
        mu_a, mu_b = vae.encode(xa, ya)[0][0], vae.encode(xb, yb)[0][0]
    if ya is not None:  # a conditional model: the path runs through z and the label's one-hot together (A's digit to B's)
        mu_a, mu_b = vae.with_label(mu_a[None], ya)[0], vae.with_label(mu_b[None], yb)[0]
    shape = mu_a.shape  # (D,) or (C, h, w): paths are taken in the flattened space
    a, b = mu_a.flatten(), mu_b.flatten()
    t = torch.linspace(0, 1, steps, device=a.device)
    z = slerp(a, b, t) if method == "slerp" else (1 - t[:, None]) * a + t[:, None] * b
    return z.view(steps, *shape)


@torch.inference_mode()
def interpolate(vae: LoadedModel, image_a: ImageInput, image_b: ImageInput, steps: int = 8, method: str = "lerp",
                frame: bool = True) -> torch.Tensor:
    """Two images, steps, "lerp"|"slerp" -> (steps, C, H, W) frames decoded along the path from mu_A to mu_B."""
    return vae.decode(interpolation_path(vae, image_a, image_b, steps, method, frame))


@torch.inference_mode()
def encode_mean(vae: LoadedModel, image: ImageInput, frame: bool = True) -> tuple:
    """An image -> (mu, logvar) as lists of latent_dim floats."""
    x = image_tensor(vae, image, frame=frame)
    mu, logvar = vae.encode(x, condition(vae, x))
    return mu[0].tolist(), logvar[0].tolist()


def check_latent(vae: LoadedModel, z: Sequence) -> torch.Tensor:
    """A list of latent_dim finite numbers -> (1, D) tensor on the model's device
    (photo models: a nested (C, h, w) list, as /encode returns it -> (1, C, h, w))."""
    d = vae.config.latent_dim
    if isinstance(z, dict) and "z" in z:
        z = z["z"]
    if d is None:
        return _check_spatial_latent(vae, z)
    labels = vae.config.num_labels
    if not isinstance(z, (list, tuple)) or len(z) != d + labels:
        got = f"{len(z)} values" if isinstance(z, (list, tuple)) else type(z).__name__
        what = f"{d} numbers of z then the {labels} of the label's one-hot" if labels else f"{d} numbers (the model's latent size)"
        raise InputError(f"z must be a list of {d + labels} numbers ({what}); got {got}.")
    try:
        vals = [float(v) for v in z]
    except (TypeError, ValueError):
        raise InputError("z must contain only numbers.") from None
    if not all(math.isfinite(v) and abs(v) <= MAX_LATENT_ABS for v in vals):
        raise InputError(f"z must contain finite numbers between -{MAX_LATENT_ABS:g} and {MAX_LATENT_ABS:g}.")
    return torch.tensor([vals], dtype=torch.float32, device=vae.device)


def _check_spatial_latent(vae, z) -> torch.Tensor:
    c = vae.config.latent_channels
    try:
        t = torch.tensor(z, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(f"z must be a nested list of numbers shaped ({c}, height/8, width/8), as /encode returns it.") from None
    limit = vae.config.image_size // vae.config.downscale
    if t.dim() != 3 or t.shape[0] != c or not (1 <= t.shape[1] <= limit and 1 <= t.shape[2] <= limit):
        raise InputError(f"z must be shaped ({c}, h, w) with h and w from 1 to {limit}; got {tuple(t.shape)}.")
    if not torch.isfinite(t).all() or t.abs().max() > MAX_LATENT_ABS:
        raise InputError(f"z must contain finite numbers between -{MAX_LATENT_ABS:g} and {MAX_LATENT_ABS:g}.")
    return t[None].to(vae.device)


@torch.inference_mode()
def decode_with_offsets(vae, image: ImageInput, offsets: Sequence) -> torch.Tensor:
    """Photo models: encode an image, add offsets[c] to latent channel c everywhere, decode -> (1, 3, H, W)."""
    require(vae, "channel_offsets")
    vals = []
    for v in offsets:
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError("channel offsets must be numbers.") from None
        if not math.isfinite(f) or abs(f) > 10:
            raise InputError("channel offsets must be finite numbers between -10 and 10.")
        vals.append(f)
    if len(vals) != vae.config.latent_channels:
        raise InputError(f"give one offset per latent channel ({vae.config.latent_channels}).")
    mu = vae.encode(image_tensor(vae, image))[0]
    return vae.decode_with_channel_offsets(mu, vals)


@torch.inference_mode()
def decode_latent(vae: LoadedModel, z: Sequence) -> torch.Tensor:
    """A list of latent_dim floats -> (1, C, H, W) in [0, 1]."""
    return vae.decode(check_latent(vae, z))


def slider_order(vae: LoadedModel) -> list:
    """Latent dimensions, most informative first (average test-set KL), or 0..D-1 without stats."""
    if is_spatial(vae):
        return []
    stats = (vae.info.stats if vae.info else None) or {}
    order = stats.get("kl_order")
    d = vae.config.latent_dim
    if isinstance(order, list) and sorted(order) == list(range(d)):
        return order
    return list(range(d))


def random_latent(vae: LoadedModel, seed=0) -> list:
    require(vae, "sliders")
    g = torch.Generator().manual_seed(check_seed(seed))
    return torch.randn(vae.config.latent_dim, generator=g).tolist()


@torch.inference_mode()
def traverse(vae: LoadedModel, z: Sequence, dims: Optional[Sequence[int]] = None, n_values: int = 9, span: float = 3.0) -> torch.Tensor:
    """Latent traversal: for each of `dims` (default: the 8 most informative), set that coordinate of z to
    n_values values from -span to +span, keeping the others -> (len(dims) * n_values, C, H, W), row by row."""
    require(vae, "traverse")
    base = check_latent(vae, z)[0]
    n_values = _int(n_values, "n_values", 2, MAX_TRAVERSE_VALUES)
    try:
        span = float(span)
    except (TypeError, ValueError):
        raise InputError(f"span must be a number from 0.1 to 10; got {span!r}.") from None
    if not math.isfinite(span) or not 0.1 <= span <= 10:
        raise InputError(f"span must be a number from 0.1 to 10; got {span!r}.")
    order = slider_order(vae)
    dims = list(order[: min(8, len(order))] if dims is None else dims)
    d = vae.config.latent_dim
    if not dims or len(dims) > MAX_TRAVERSE_DIMS or any(not isinstance(i, int) or not 0 <= i < d for i in dims):
        raise InputError(f"dims must list 1 to {MAX_TRAVERSE_DIMS} latent dimensions between 0 and {d - 1}.")
    values = torch.linspace(-span, span, n_values, device=base.device)
    z_all = base.repeat(len(dims) * n_values, 1)
    for row, dim in enumerate(dims):
        z_all[row * n_values : (row + 1) * n_values, dim] = values
    with batch_threads(len(z_all)):
        return vae.decode(z_all)
