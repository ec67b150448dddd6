"""Photo VAEs from diffusers behind the app's model contract: Stable Diffusion's AutoencoderKL and TAESD.

`PhotoVAE` speaks like `vae_demo.model.VAE` -- encode(x in [0, 1]) -> (mu, logvar), decode(z) -> [0, 1] --
but its latents are spatial, (B, C, H/8, W/8), and live in the *scaled* space

    z = (raw - shift) * scale    (shift = shift_factor or latents_mean, scale = scaling_factor [/ latents_std])

in which a latent diffusion model was trained against N(0, I) noise. That is the space where "sample
z ~ N(0, I)", "KL(q(z|x) || N(0, I))" and "slider offsets of +-3" mean what the rest of the app assumes;
diffusers pipelines apply exactly this map after `vae.encode` and undo it before `vae.decode`.

diffusers is imported lazily, so the app pays its import time only when a photo model is loaded.
"""

import inspect
import json
import math
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn

from vae_demo.imaging.uploads import MAX_SIZE_LIMIT, ImageInput, fit_size, prepare_photo, ssim  # noqa: F401  (re-exported)
from vae_demo.errors import DemoError

KINDS = {"AutoencoderKL": "autoencoder_kl", "AutoencoderTiny": "autoencoder_tiny"}  # diffusers class -> kind
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
PIPELINE_INDEX = "model_index.json"  # a full pipeline keeps its autoencoder in the vae/ subfolder
# Deterministic encoders (TAESD) report this log-variance: diffusers and our VAE clamp logvar to [-30, 20],
# so it is the smallest variance any model here can report; finite, so it survives JSON.
LOGVAR_DETERMINISTIC = -30.0
MAX_PARAMS = 150_000_000  # SD's and SDXL's VAE: 84 M, TAESD: 2.4 M; checked before anything is allocated
CHANNEL_OFFSET_SPAN = 3.0  # suggested slider range for channel offsets: +-3 standard deviations of the prior


class PhotoModelError(DemoError, ValueError):
    """A photo model folder that cannot be loaded, with a sentence saying why."""


@dataclass
class PhotoConfig:
    kind: str = "autoencoder_kl"  # "autoencoder_kl" (Stable Diffusion's VAE) | "autoencoder_tiny" (TAESD)
    channels: int = 3
    latent_channels: int = 4
    downscale: int = 8  # image side / latent side: 2 ** (number of encoder blocks - 1)
    max_size: int = 512  # long side of the images fed in; a multiple of downscale
    scaling_factor: float = 0.18215  # z = (raw - shift_factor) * scaling_factor
    shift_factor: float = 0.0
    # Per-channel statistics some configs carry instead (Playground-style); when set they replace shift_factor:
    # z = (raw - latents_mean) * scaling_factor / latents_std.
    latents_mean: Optional[tuple] = None
    latents_std: Optional[tuple] = None
    force_upcast: bool = True  # diffusers' flag: the autoencoder overflows in float16 (SDXL's VAE), run it in float32
    likelihood: str = "gaussian"  # for the app's labels only: these decoders define no p(x|z), so no ELBO is reported
    dataset: str = "photos"
    beta: float = 1.0
    objective: str = "elbo"  # as VAEConfig's, for the same labels
    class_names: Optional[list] = None
    framing: str = "none"  # photos are fitted whole, not framed like a dataset
    num_labels: int = 0  # unconditional

    def __post_init__(self):
        if self.kind not in KINDS.values():
            raise ValueError(f"kind must be one of {sorted(KINDS.values())}, got {self.kind!r}.")
        if self.channels != 3:
            raise ValueError(f"Photo models take RGB images (channels=3), got channels={self.channels}.")
        if self.latent_channels < 1 or self.downscale < 1:
            raise ValueError("latent_channels and downscale must be at least 1.")
        if not (self.downscale <= self.max_size <= MAX_SIZE_LIMIT and self.max_size % self.downscale == 0):
            raise ValueError(
                f"max_size must be a multiple of the model's downscale {self.downscale} between {self.downscale} "
                f"and {MAX_SIZE_LIMIT}; got {self.max_size}."
            )
        self.scaling_factor, self.shift_factor = float(self.scaling_factor), float(self.shift_factor)
        if not (math.isfinite(self.scaling_factor) and self.scaling_factor > 0 and math.isfinite(self.shift_factor)):
            raise ValueError("scaling_factor must be a finite number above 0 and shift_factor a finite number.")
        for name in ("latents_mean", "latents_std"):
            v = getattr(self, name)
            if v is not None:
                v = tuple(float(x) for x in v)
                if len(v) != self.latent_channels or not all(map(math.isfinite, v)):
                    raise ValueError(f"{name} needs {self.latent_channels} finite numbers (one per latent channel).")
                setattr(self, name, v)
        if self.latents_std is not None and min(self.latents_std) <= 0:
            raise ValueError("latents_std must be above 0.")

    @property
    def latent_dim(self) -> None:
        """None: the latent is a (C, H/d, W/d) grid whose size depends on the image; see PhotoVAE.latent_shape."""
        return None

    @property
    def image_size(self) -> int:
        """The long side of the images the model sees (the app's size for square models)."""
        return self.max_size

    def shift_scale(self) -> tuple:
        """-> (shift, scale), one float per latent channel: z = (raw - shift) * scale"""
        c = self.latent_channels
        shift = list(self.latents_mean) if self.latents_mean is not None else [self.shift_factor] * c
        std = self.latents_std if self.latents_std is not None else [1.0] * c
        return shift, [self.scaling_factor / s for s in std]

    @classmethod
    def from_diffusers(cls, class_name: str, config, max_size: int = 512) -> "PhotoConfig":
        """A diffusers class name and its (filled-in) config -> PhotoConfig; raises ValueError for what we cannot show."""
        if class_name not in KINDS:
            raise ValueError(f"{class_name!r} is not an autoencoder this app can show (only {', '.join(KINDS)}).")
        if config.get("in_channels", 3) != 3 or config.get("out_channels", 3) != 3:
            raise ValueError("Only RGB autoencoders (in_channels = out_channels = 3) are supported.")
        if class_name == "AutoencoderKL":
            downscale = 2 ** (len(config["down_block_types"]) - 1)
            if len(config["up_block_types"]) != len(config["down_block_types"]):
                raise ValueError("The encoder and decoder of this AutoencoderKL have different numbers of blocks.")
        else:
            downscale = 2 ** (len(config["num_encoder_blocks"]) - 1)
            up = config["upsampling_scaling_factor"] ** (len(config["num_decoder_blocks"]) - 1)
            if up != downscale:
                raise ValueError(f"This AutoencoderTiny shrinks images {downscale}x but enlarges latents {up}x.")
        return cls(
            kind=KINDS[class_name],
            latent_channels=int(config["latent_channels"]),
            downscale=downscale,
            max_size=max_size,
            scaling_factor=float(config.get("scaling_factor", 1.0)),
            shift_factor=float(config.get("shift_factor") or 0.0),
            latents_mean=config.get("latents_mean"),
            latents_std=config.get("latents_std"),
            force_upcast=bool(config.get("force_upcast", True)),
        )


@dataclass
class PhotoOutput:
    reconstruction: torch.Tensor  # (B, 3, H, W) in [0, 1]
    mu: torch.Tensor  # (B, C, h, w)
    logvar: torch.Tensor  # (B, C, h, w)
    z: torch.Tensor  # (B, C, h, w) the latent actually decoded


def _notes(c: PhotoConfig) -> dict:
    """Why a capability is there or not, keyed by capability (and "kl"), in words for the UI."""
    grid = (f"The latent is a grid of numbers, {c.latent_channels} per {c.downscale}x{c.downscale} patch of the image, "
            "not a short vector: one slider per number makes no sense. Use the channel offsets instead: each adds a "
            "constant to one latent channel everywhere.")
    notes = {"sliders": grid, "traverse": grid}
    if c.kind == "autoencoder_kl":
        notes["sample"] = (
            "Samples are z ~ N(0, I) decoded. Stable Diffusion's VAE was trained with a tiny KL weight, so real photos "
            "occupy a small, structured part of its latent space: prior samples decode to texture and colour noise, "
            "not photos. Producing photos is the diffusion model's job, which learned where real latents lie.")
    else:
        notes["sample"] = "TAESD is a distilled, deterministic autoencoder with no prior: there is nothing to sample from."
        notes["kl"] = (
            f"TAESD's encoder is deterministic (logvar is reported as {LOGVAR_DETERMINISTIC:g}): KL(q(z|x) || N(0, I)) "
            "is undefined, and posterior samples all equal the reconstruction.")
    return notes


class PhotoVAE(nn.Module):
    """A diffusers AutoencoderKL or AutoencoderTiny with VAE's contract and spatial latents in the prior's space."""

    # Images per autoencoder call. On CPU batching buys no speed and one 512x512 SD-VAE pass already peaks at
    # ~2 GB; load_photo_vae raises it to 8 on CUDA.
    max_batch = 1
    info = None  # set by load_vae

    def __init__(self, autoencoder: nn.Module, config: PhotoConfig):
        super().__init__()
        self.autoencoder = autoencoder
        self.config = config
        self.deterministic = config.kind == "autoencoder_tiny"  # TAESD: mu is the code, logvar a constant
        self.kl_defined = not self.deterministic
        caps = {"reconstruct", "interpolate", "channel_offsets"} | ({"sample"} if self.kl_defined else set())
        self.capabilities = frozenset(caps)
        self.notes = _notes(config)
        shift, scale = config.shift_scale()
        self.register_buffer("_shift", torch.tensor(shift).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_scale", torch.tensor(scale).view(1, -1, 1, 1), persistent=False)
        self.upcast_reason: Optional[str] = None  # set when half precision gave NaN/inf and the model went to float32
        self._upcast_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return next(self.autoencoder.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.autoencoder.parameters()).dtype

    @property
    def label(self) -> str:
        return "Stable Diffusion VAE (AutoencoderKL)" if self.kl_defined else "TAESD (AutoencoderTiny)"

    def latent_shape(self, height: int, width: int) -> tuple:
        """image height, width (multiples of config.downscale) -> (C, height / d, width / d)"""
        d = self.config.downscale
        if height < d or width < d or height % d or width % d:
            raise ValueError(f"Image sides must be positive multiples of {d}; got {height}x{width}. Use prepare_photo.")
        return (self.config.latent_channels, height // d, width // d)

    def prepare(self, image: ImageInput, size: Optional[tuple] = None) -> torch.Tensor:
        """Any image -> (1, 3, H, W) in [0, 1] on the model's device; see prepare_photo for H, W."""
        return prepare_photo(image, self.config.max_size, self.config.downscale, size).to(self.device)

    def encode(self, x: torch.Tensor, y=None) -> tuple:
        """(B, 3, H, W) in [0, 1] -> (B, C, H/d, W/d) mean and log-variance of q(z|x), float32, in the prior's space;
        `y`, a conditional model's label, is always None here (the same call as VAE.encode's)"""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"encode takes (B, 3, H, W) images; got shape {tuple(x.shape)}.")
        self.latent_shape(*x.shape[2:])
        x = x.to(self.device, torch.float32) * 2 - 1  # diffusers autoencoders take [-1, 1]
        if self.deterministic:
            raw = self._run(lambda t: self.autoencoder.encode(t).latents, x)
            mu = (raw - self._shift) * self._scale
            return mu, torch.full_like(mu, LOGVAR_DETERMINISTIC)

        def moments(t):
            dist = self.autoencoder.encode(t).latent_dist
            return torch.cat([dist.mean, dist.logvar], dim=1)

        mean, logvar = self._run(moments, x).chunk(2, dim=1)
        # z = (raw - shift) * scale  =>  var(z) = var(raw) * scale^2
        return (mean - self._shift) * self._scale, logvar + 2 * torch.log(self._scale)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) latents in the prior's space -> (B, 3, h * d, w * d) float32 in [0, 1]"""
        if z.dim() != 4 or z.shape[1] != self.config.latent_channels:
            raise ValueError(f"decode takes (B, {self.config.latent_channels}, h, w) latents; got shape {tuple(z.shape)}.")
        raw = z.to(self.device, torch.float32) / self._scale + self._shift
        out = self._run(lambda t: self.autoencoder.decode(t).sample, raw)
        return ((out + 1) / 2).clamp(0, 1)

    def decode_with_channel_offsets(self, z: torch.Tensor, offsets: Sequence[float]) -> torch.Tensor:
        """(B, C, h, w) or (C, h, w) latents, C offsets -> decode(z + offsets[c] on all of channel c), in [0, 1]"""
        offs = torch.as_tensor(offsets, dtype=torch.float32).flatten()
        c = self.config.latent_channels
        if offs.numel() != c or not torch.isfinite(offs).all():
            raise ValueError(f"offsets must be {c} finite numbers, one per latent channel.")
        z = z[None] if z.dim() == 3 else z
        return self.decode(z.to(self.device, torch.float32) + offs.to(self.device).view(1, c, 1, 1))

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I); for TAESD sigma = exp(-15) ~ 3e-7, so z == mu to display precision"""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def kl_per_dim(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) x 2 -> (B, C, h, w) KL(N(mu, sigma^2) || N(0, 1)) per latent number, in nats (AutoencoderKL only)

        Measured in the scaled space (the diffusion prior's), not the raw space the VAE's own KL term used.
        """
        if not self.kl_defined:
            raise ValueError(self.notes["kl"])
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)

    def forward(self, x: torch.Tensor, sample_posterior: bool = False, generator=None) -> PhotoOutput:
        """(B, 3, H, W) in [0, 1] -> PhotoOutput; decodes the posterior mean unless sample_posterior"""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator) if sample_posterior else mu
        return PhotoOutput(reconstruction=self.decode(z), mu=mu, logvar=logvar, z=z)

    def save_pretrained(self, folder: Union[str, Path]) -> None:
        """Write config.json + diffusion_pytorch_model.safetensors (diffusers' own layout, current dtype)."""
        self.autoencoder.save_pretrained(str(folder), safe_serialization=True)

    def _run(self, fn, t: torch.Tensor) -> torch.Tensor:
        """fn (one autoencoder call) over t in chunks of max_batch, in the model's dtype -> float32.
        Half precision that yields NaN/inf (SDXL's VAE in float16) upcasts the model to float32 for good."""
        outs = []
        for chunk in t.split(self.max_batch):
            out = fn(chunk.to(self.device, self.dtype))
            if out.dtype != torch.float32 and not torch.isfinite(out).all():
                self._upcast(f"{out.dtype} gave non-finite values")
                out = fn(chunk.to(self.device, torch.float32))
            outs.append(out.float())
        return torch.cat(outs)

    def _upcast(self, reason: str) -> None:
        # Called under the app's inference_mode: parameters made there would be inference tensors.
        with self._upcast_lock, torch.inference_mode(False), torch.no_grad():
            if self.dtype != torch.float32:
                self.autoencoder.float()
                self.upcast_reason = reason
                warnings.warn(f"{self.label}: {reason}; running in float32 from now on.", RuntimeWarning, stacklevel=3)


# --- loading ---------------------------------------------------------------------------------------------


def is_diffusers_config(config) -> bool:
    """A parsed config.json -> True if diffusers wrote it (any class; load_photo_vae says which it cannot show)."""
    return isinstance(config, dict) and isinstance(config.get("_class_name"), str) and "_diffusers_version" in config


def hub_files(subfolder: str = "") -> list:
    """The files to fetch from a Hub repo holding a diffusers autoencoder (under `subfolder` for a pipeline)."""
    prefix = f"{subfolder.strip('/')}/" if subfolder.strip("/") else ""
    return [prefix + CONFIG_NAME, prefix + WEIGHTS_NAME]


def pipeline_vae_subfolder(model_index) -> Optional[str]:
    """A full pipeline's parsed model_index.json -> "vae" when its autoencoder is one we load, else None."""
    entry = model_index.get("vae") if isinstance(model_index, dict) else None
    ok = isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[1] in KINDS
    return "vae" if ok else None


def choose_dtype(device: Union[str, torch.device], force_upcast: bool, requested: Optional[torch.dtype] = None) -> torch.dtype:
    """Where the autoencoder runs -> its dtype, chosen once at load: an explicit `requested` dtype wins; CUDA gets
    float16 unless the config says force_upcast (then float32); CPU and MPS get float32."""
    if requested is not None:
        if requested not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16; got {requested}.")
        return requested
    if torch.device(device).type != "cuda" or force_upcast:
        return torch.float32
    return torch.float16


def load_photo_vae(
    folder: Union[str, Path],
    device: Union[str, torch.device] = "cpu",
    dtype: Optional[torch.dtype] = None,
    max_size: int = 512,
) -> PhotoVAE:
    """A folder with diffusers' config.json + diffusion_pytorch_model.safetensors -> PhotoVAE in eval mode on device.

    Weights are read with safetensors and loaded with strict=True (diffusers' from_pretrained would silently
    re-initialise missing tensors, and falls back to unpickling a .bin unless told otherwise); nothing is unpickled.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PhotoModelError(f"There is no model folder at {str(folder)!r}.")
    try:
        config = json.loads((folder / CONFIG_NAME).read_text())
    except FileNotFoundError:
        raise PhotoModelError(f"{folder.name!r} has no {CONFIG_NAME}.") from None
    except (OSError, ValueError, UnicodeDecodeError):
        raise PhotoModelError(f"The {CONFIG_NAME} in {folder.name!r} is not valid JSON.") from None
    class_name = config.get("_class_name") if isinstance(config, dict) else None
    if class_name not in KINDS:
        raise PhotoModelError(f"{folder.name!r} holds a diffusers {class_name or 'model'}, not an autoencoder this app "
                              f"can show ({' or '.join(KINDS)}).")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        weight_like = (".bin", ".pt", ".pth", ".ckpt", ".json", ".safetensors")  # pickles, shard indexes, variants
        others = sorted(p.name for p in folder.iterdir() if p.suffix in weight_like and p.name != CONFIG_NAME)
        raise PhotoModelError(
            f"{folder.name!r} has no {WEIGHTS_NAME}" + (f" (it has {', '.join(others)})" if others else "")
            + ". This app reads single-file safetensors weights only and never unpickles .bin files."
        )

    import diffusers  # noqa: PLC0415  (slow import, only for photo models)
    from safetensors.torch import load_file

    cls = getattr(diffusers, class_name)
    known = inspect.signature(cls.__init__).parameters  # old configs carry keys that from_config warns about
    init = {k: v for k, v in config.items() if k in known}
    try:
        with torch.device("meta"):  # shapes only: a config that asks for a giant model allocates nothing
            n_params = sum(p.numel() for p in cls.from_config(init).parameters())
        if n_params > MAX_PARAMS:
            raise PhotoModelError(f"{folder.name!r} asks for {n_params:,} parameters; this app builds at most {MAX_PARAMS:,}.")
        if weights.stat().st_size > 4 * n_params + 2**20:  # float32 tensors plus a header
            raise PhotoModelError(f"The weights of {folder.name!r} are larger than its {CONFIG_NAME} allows.")
        model = cls.from_config(init)
        photo_config = PhotoConfig.from_diffusers(class_name, model.config, max_size=max_size)
    except (TypeError, ValueError, KeyError, RuntimeError, OverflowError) as e:
        if isinstance(e, PhotoModelError):
            raise
        raise PhotoModelError(f"The {CONFIG_NAME} of {folder.name!r} does not describe a usable {class_name}: {e}") from None
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as e:  # truncated or not a safetensors file
        raise PhotoModelError(f"The weights of {folder.name!r} are damaged ({type(e).__name__}).") from None
    fix_keys = getattr(model, "_fix_state_dict_keys_on_load", None)
    if fix_keys is not None:  # old checkpoints (sd-vae-ft-mse) name attention weights query/key/value/proj_attn
        fix_keys(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        msg = " ".join(str(e).split())[:300]
        raise PhotoModelError(f"The weights of {folder.name!r} do not match its {CONFIG_NAME}: {msg}") from None
    device = torch.device(device)
    # nn.Module.to: diffusers' own .to warns about fp32-only modules on every dtype cast, though these have none.
    nn.Module.to(model, device=device, dtype=choose_dtype(device, photo_config.force_upcast, dtype))
    vae = PhotoVAE(model, photo_config).to(device).eval()
    vae.max_batch = 8 if device.type == "cuda" else 1
    return vae
