"""The one way to load a model: a bundled name, a local folder, or a Hugging Face Hub repo id.

Weights are read from `model.safetensors` only. A repo that offers only a pickled
`pytorch_model.bin` is refused: unpickling a download can run arbitrary code.

Hub downloads go through huggingface_hub (`get_hf_file_metadata`, `hf_hub_download`, its cache), bounded, in
hub/download.py; this module turns a folder into a model (checking what its config asks the server to build first).
"""

import contextlib
import io
import json
import logging
import threading
from pathlib import Path
from typing import Optional, Union

import torch

from vae_demo.hub import download as hub
from vae_demo.hub.download import (  # noqa: F401  (re-exported: the names callers and tests know loading by)
    CONFIG_NAME, HUB_DEADLINE, HUB_TIMEOUT, MAX_JSON_BYTES, PHOTO_REPOS, WEIGHTS_NAME, ModelLoadError, download_snapshot,
    hub_reachable, is_repo_id,
)
from vae_demo.models.protocol import LoadedModel, ModelInfo  # noqa: F401  (ModelInfo: re-exported)
from vae_demo.models.vae import VAE, VAEConfig

log = logging.getLogger("vae_demo.loading")

CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
# What a model knows about its data (see analysis/evaluation_files.py): fetched when a repo has them; nothing breaks when it does not.
OPTIONAL_FILES = ("latent_stats.json", "metrics.json", "pca.safetensors", "latent_map.safetensors", "directions.safetensors")
PHOTO_WEIGHTS = "diffusion_pytorch_model.safetensors"  # diffusers' name (Stable Diffusion's VAE, TAESD)
# owner/name as the Hub allows them: letters, digits, '-', '_', '.'; no '..' or '--', no leading '.'.

# What a config may ask the server to build (checked before any tensor is allocated).
MAX_IMAGE_SIZE, MAX_LATENT_DIM, MAX_STAGES, MAX_BLOCK_CONVS = 256, 1024, 8, 4
MAX_LABELS = 1000  # a conditional model's classes
MAX_FEATURE_ELEMENTS = 8_000_000  # activations of one image through the conv stacks




def bundled_models() -> list:
    """Names of the checkpoints shipped in checkpoints/, e.g. ["mnist"]."""
    if not CHECKPOINTS_DIR.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS_DIR.iterdir() if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file())



def load_vae(
    source: Union[str, Path] = "mnist",
    device: Union[str, torch.device] = "cpu",
    revision: Optional[str] = None,
    allow_local: bool = True,
    cache_dir: Optional[str] = None,
    token: Optional[str] = None,
) -> VAE:
    """A bundled name | a local folder | a Hub repo id "user/repo" -> VAE in eval mode on `device`.

    `allow_local=False` (the app's run-time box) accepts only bundled names and repo ids, so a
    visitor cannot make the server read arbitrary folders.
    """
    source = str(source).strip()
    if not source:
        raise ModelLoadError("No model was named. Give a bundled name (e.g. 'mnist') or a Hub repo id 'user/repo'.")
    folder = _resolve(source, revision, allow_local, cache_dir, token)
    vae = _load_folder(folder, source, torch.device(device))
    vae.info = ModelInfo(
        name=Path(source).name if allow_local and Path(source).is_dir() and source not in bundled_models() else source,
        source=source,
        folder=folder,
        revision=revision,
        stats=_read_json(folder / "latent_stats.json"),
        examples=sorted((folder / "examples").glob("*.png")) if (folder / "examples").is_dir() else [],
    )
    vae = vae.to(torch.device(device)).eval()
    if isinstance(vae, VAE):  # channels-last: the CPU's convolution kernels are faster in that layout
        vae.to(memory_format=torch.channels_last)
    return vae


def _resolve(source: str, revision, allow_local: bool, cache_dir, token) -> Path:
    if source in bundled_models():
        return CHECKPOINTS_DIR / source  # no network call at all
    looks_local = source.startswith((".", "/", "~", "\\")) or source.count("/") > 1 or "\\" in source
    if allow_local:
        path = Path(source).expanduser()
        if path.is_dir():
            return path
        if looks_local or path.exists():
            raise ModelLoadError(f"There is no model folder at {source!r} (it should hold {CONFIG_NAME} and {WEIGHTS_NAME}).")
    if is_repo_id(source):
        return _download(source, revision, cache_dir, token)
    names = ", ".join(bundled_models()) or "none"
    raise ModelLoadError(
        f"{source!r} is not a bundled model (bundled: {names}) "
        + ("nor a folder " if allow_local else "")
        + "nor a Hub repo id of the form 'user/repo'."
    )


def _download(repo_id: str, revision, cache_dir, token) -> Path:
    """config.json + the weights (+ OPTIONAL_FILES) of a Hub repo -> the snapshot folder in the Hub cache.

    The config says which kind of model it is: a diffusers autoencoder ("_class_name") keeps its weights in
    diffusion_pytorch_model.safetensors, a vae-demo model in model.safetensors. One probe of the Hub serves both."""

    def weights_for(folder: Path) -> tuple:
        raw = _read_json(folder / CONFIG_NAME)
        if isinstance(raw, dict) and "_class_name" in raw:
            return (PHOTO_WEIGHTS,), ()
        return (WEIGHTS_NAME,), OPTIONAL_FILES

    return download_snapshot(repo_id, (CONFIG_NAME,), (), revision, cache_dir, token, then=weights_for)


def _load_folder(folder: Path, source: str, device: torch.device = torch.device("cpu")) -> VAE:
    raw = _read_json(folder / CONFIG_NAME) if (folder / CONFIG_NAME).is_file() else None
    if isinstance(raw, dict) and "_class_name" in raw:  # a diffusers autoencoder: models/photo.py builds and checks it
        from vae_demo.models.photo import PhotoModelError, load_photo_vae

        try:
            return load_photo_vae(folder, device=device)
        except PhotoModelError as e:
            raise ModelLoadError(f"{source!r}: {e}") from None
    config_file, weights_file = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    if not config_file.is_file() or not weights_file.is_file():
        has_pickle = (folder / "pytorch_model.bin").exists()
        raise ModelLoadError(
            f"{source!r} needs {CONFIG_NAME} and {WEIGHTS_NAME}"
            + (" (it has only a pickled pytorch_model.bin, which this app never loads)." if has_pickle else ".")
        )
    raw = _read_json(config_file)
    if not isinstance(raw, dict):
        raise ModelLoadError(f"The {CONFIG_NAME} of {source!r} is not a JSON object.")
    try:
        config = VAEConfig(**raw)
        with torch.device("meta"):  # shapes only: nothing is allocated for a config that asks for too much
            n_params = sum(t.numel() for t in VAE(config).state_dict().values())
    except (TypeError, ValueError, OverflowError, RuntimeError) as e:
        raise ModelLoadError(f"{source!r} is not a model this app knows how to build: {e}") from None
    _check_size(config, n_params, source)
    try:
        with contextlib.redirect_stdout(io.StringIO()), no_random_init():  # the mixin prints "Loading weights from ..."
            return VAE.from_pretrained(str(folder), strict=True, map_location="cpu")
    except Exception as e:  # safetensors errors, shape mismatches, missing or renamed tensors
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise ModelLoadError(f"The weights of {source!r} do not match its config or are damaged: {msg}") from None


_INIT_LOCK = threading.Lock()


@contextlib.contextmanager
def no_random_init():
    """While a model is built to be loaded at once with strict=True (every parameter and buffer overwritten, or
    the load fails): torch.nn.init's in-place initialisers do nothing (here and in classifier.load_classifier).
    Random init would be thrown away at once, and it is a large share of a small model's load time; transformers'
    `no_init_weights` does the same."""
    init = torch.nn.init
    names = [n for n in dir(init) if n.endswith("_") and not n.startswith("_") and callable(getattr(init, n))]
    with _INIT_LOCK:
        saved = {n: getattr(init, n) for n in names}
        try:
            for n in names:
                setattr(init, n, lambda tensor, *args, **kwargs: tensor)
            yield
        finally:
            for n, fn in saved.items():
                setattr(init, n, fn)


def _check_size(c: VAEConfig, n_params: int, source: str) -> None:
    """Refuse configs that would make the server allocate or compute far more than a demo model needs."""
    counts = {"image_size": c.image_size, "latent_dim": c.latent_dim, "hidden_dim": c.hidden_dim, "block_convs": c.block_convs,
              "num_labels": c.num_labels}
    counts.update({f"hidden_channels[{i}]": ch for i, ch in enumerate(c.hidden_channels)})
    for what, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if what in ("block_convs", "num_labels") else 1):
            raise ModelLoadError(
                f"{source!r} is not a model this app knows how to build: {what} must be a positive whole number, got {value!r}."
            )
    features = sum(ch * (c.image_size >> (i + 1)) ** 2 for i, ch in enumerate(c.hidden_channels))
    features += c.hidden_channels[0] * c.image_size**2  # the decoder's last stage, at full resolution
    limits = [
        (c.image_size, MAX_IMAGE_SIZE, "image_size"),
        (c.latent_dim, MAX_LATENT_DIM, "latent_dim"),
        (len(c.hidden_channels), MAX_STAGES, "the number of hidden_channels stages"),
        (c.block_convs, MAX_BLOCK_CONVS, "block_convs"),
        (c.num_labels, MAX_LABELS, "num_labels"),
        (features * (1 + c.block_convs), MAX_FEATURE_ELEMENTS, "the activations per image"),
        (n_params * 4, hub.MAX_MODEL_BYTES, "the size of the weights in bytes"),
    ]
    for value, limit, what in limits:
        if value > limit:
            raise ModelLoadError(f"{source!r} is too large for this app: {what} is {value:,}, the limit is {limit:,}.")


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        raise ModelLoadError(f"{path.name} in {path.parent} is not valid JSON.") from None
