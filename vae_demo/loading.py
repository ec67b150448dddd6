"""The one way to load a model: a bundled name, a local folder, or a Hugging Face Hub repo id.

Weights are read from `model.safetensors` only. A repo that offers only a pickled
`pytorch_model.bin` is refused: unpickling a download can run arbitrary code.

Hub downloads go through huggingface_hub (`get_hf_file_metadata`, `hf_hub_download`, its cache), bounded:
each file is first probed once without retries (HUB_TIMEOUT), so an unreachable or failing Hub answers in
seconds instead of hf_hub_download's ~23 s retry rounds; files are pinned to the probed commit and checked
against a size limit before any byte is fetched; and an unreachable Hub falls back to the local cache.
"""

import contextlib
import io
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Union

import torch

from .model import VAE, VAEConfig

log = logging.getLogger("vae_demo.loading")

CHECKPOINTS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# What a model knows about its data (see knowledge.py): fetched when a repo has them; nothing breaks when it does not.
OPTIONAL_FILES = ("latent_stats.json", "metrics.json", "pca.safetensors", "latent_map.safetensors")
PHOTO_WEIGHTS = "diffusion_pytorch_model.safetensors"  # diffusers' name (Stable Diffusion's VAE, TAESD)
# owner/name as the Hub allows them: letters, digits, '-', '_', '.'; no '..' or '--', no leading '.'.
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}$")  # branch, tag, refs/pr/N or commit sha

HUB_TIMEOUT = float(os.environ.get("VAE_DEMO_HUB_TIMEOUT", "5"))  # seconds per request: connect, and each read
HUB_DEADLINE = float(os.environ.get("VAE_DEMO_HUB_DEADLINE", "60"))  # seconds for all requests of one load
MAX_MODEL_BYTES = int(float(os.environ.get("VAE_DEMO_MAX_MODEL_MB", "400")) * 2**20)  # the SD VAE's weights: 335 MB  # weights, and params * 4
MAX_JSON_BYTES = 2**20  # config.json, latent_stats.json
# What a config may ask the server to build (checked before any tensor is allocated).
MAX_IMAGE_SIZE, MAX_LATENT_DIM, MAX_STAGES, MAX_BLOCK_CONVS = 256, 1024, 8, 4
MAX_FEATURE_ELEMENTS = 8_000_000  # activations of one image through the conv stacks

_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


class ModelLoadError(RuntimeError):
    """A model that cannot be loaded, with a message that names it and says why."""


@dataclass
class ModelInfo:
    name: str  # what the UI and the API call it
    source: str  # what was asked for: a bundled name, a folder or a repo id
    folder: Path  # where config.json and model.safetensors were read
    revision: Optional[str] = None
    stats: Optional[dict] = None  # latent_stats.json: per-dimension KL, order, spread of mu
    examples: list = field(default_factory=list)  # example PNGs shipped with the model


def bundled_models() -> list:
    """Names of the checkpoints shipped in checkpoints/, e.g. ["mnist"]."""
    if not CHECKPOINTS_DIR.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS_DIR.iterdir() if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file())


def is_repo_id(source: str) -> bool:
    return bool(REPO_ID_RE.match(source)) and ".." not in source and "--" not in source and not source.endswith(".git")


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
    if isinstance(vae, VAE):  # channels-last convolutions: decode(64) about 2x faster on CPU (docs/PERFORMANCE.md)
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


# --- the Hub ------------------------------------------------------------------------------------------
class _Expired(Exception):
    """The load's deadline passed."""


class _TransferError(Exception):
    """A file could not be fetched; the message says why, for a person."""


class _Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def timeout(self) -> float:
        """The timeout for the next request: HUB_TIMEOUT, or what is left of the deadline."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise _Expired()
        return min(HUB_TIMEOUT, left)

    def check(self) -> None:
        if self.passed():
            raise _Expired()

    def passed(self) -> bool:
        return time.monotonic() >= self.end - 0.05  # a request cut short by the deadline ends just before it


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


_HUB_STATE: dict = {}  # {"at": monotonic time of the last probe, "ok": bool}
PHOTO_REPOS = ("madebyollin/taesd", "stabilityai/sd-vae-ft-mse", "stabilityai/sdxl-vae")  # photo VAEs this app loads


def hub_reachable(max_age: float = 600.0, timeout: float = 3.0) -> bool:
    """Can this server reach the Hub now? One metadata request for a photo VAE's config, remembered for max_age s."""
    import time

    from huggingface_hub import get_hf_file_metadata, hf_hub_url, is_offline_mode

    if is_offline_mode():
        return False
    if _HUB_STATE and time.monotonic() - _HUB_STATE["at"] < max_age:
        return _HUB_STATE["ok"]
    try:
        get_hf_file_metadata(hf_hub_url(PHOTO_REPOS[0], CONFIG_NAME), timeout=timeout)
        ok = True
    except Exception:  # refused, DNS failure, timeout, 4xx/5xx: all mean "not now" to a visitor
        ok = False
    _HUB_STATE.update(at=time.monotonic(), ok=ok)
    return ok


def download_snapshot(repo_id: str, required=(CONFIG_NAME, WEIGHTS_NAME), optional=(), revision: Optional[str] = None,
                      cache_dir=None, token=None, then: Optional[Callable[[Path], tuple]] = None) -> Path:
    """Fetch `required` (and, if present, `optional`) files of one commit into the Hub cache -> its snapshot folder.

    A metadata request for required[0] (no retries, HUB_TIMEOUT) decides whether the Hub is reachable. If it is
    not (refused, timeout, 5xx), the local cache alone is used, so an offline machine answers within seconds.
    If it is, every file is pinned to the commit that request named and fetched with `_fetch_file`, all within
    HUB_DEADLINE. *.safetensors files may be MAX_MODEL_BYTES, others MAX_JSON_BYTES. Raises ModelLoadError.
    `then(snapshot folder) -> (more required, more optional)`, called once `required` is in, names files that
    depend on what those say (the weights a config asks for); they come from the same commit, with no new probe.
    """
    # Imported here so that HF_ENDPOINT / HF_HUB_OFFLINE / HF_HUB_CACHE set before the first load apply.
    import httpx2
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, is_offline_mode
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    if not is_repo_id(repo_id):
        raise ModelLoadError(f"{repo_id!r} is not a Hub repo id of the form 'user/repo'.")
    if revision is not None and (not REVISION_RE.match(str(revision)) or ".." in str(revision)):
        raise ModelLoadError(f"{revision!r} is not a valid revision (a branch, tag or commit id) for {repo_id}.")
    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    if is_offline_mode():
        return _from_cache(repo_id, required, optional, revision, cache_dir, token, where, "offline mode (HF_HUB_OFFLINE=1)", then)

    deadline = _Deadline(HUB_DEADLINE)
    first = required[0]
    try:
        meta = get_hf_file_metadata(hf_hub_url(repo_id, first, revision=revision), token=token, timeout=deadline.timeout())
    except RepositoryNotFoundError:
        raise ModelLoadError(f"The Hub repo {repo_id!r} was not found (or it is private and no token was given).") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"The Hub repo {repo_id!r} has no revision {revision!r}.") from None
    except EntryNotFoundError:
        raise ModelLoadError(f"The Hub repo {where} has no {first}; it is not a model this app can load.") from None
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status is not None and 400 <= status < 500 and status not in (408, 429):
            raise ModelLoadError(f"The Hub refused access to {where} (HTTP {status}).") from None
        return _from_cache(repo_id, required, optional, revision, cache_dir, token, where, f"the Hub answered HTTP {status}", then)
    except Exception as e:  # refused, DNS failure, timeout: httpx errors share no base with OSError
        why = f"the Hub could not be reached ({type(e).__name__})"
        return _from_cache(repo_id, required, optional, revision, cache_dir, token, where, why, then)

    commit = meta.commit_hash or ""
    if not _COMMIT_RE.match(commit):
        raise ModelLoadError(f"The Hub sent no valid commit id for {where}; it does not look like a Hugging Face Hub.")
    storage = Path(cache_dir or constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))
    fetch = dict(repo_id=repo_id, commit=commit, storage=storage, token=token, deadline=deadline)
    def fetch_required(names) -> None:
        for name in names:
            try:
                _fetch_file(name, _limit(name), meta=meta if name == first else None, **fetch)
            except EntryNotFoundError:
                raise _missing(name, where) from None

    try:
        fetch_required(required)
        if then is not None:
            more_required, more_optional = then(storage / "snapshots" / commit)
            fetch_required(more_required)
            optional = (*optional, *more_optional)
        for name in optional:
            try:
                _fetch_file(name, _limit(name), **fetch)
            except (EntryNotFoundError, HfHubHTTPError, httpx2.HTTPError, _TransferError, _Expired, OSError) as e:
                log.warning("%s of %s skipped: %s", name, where, e or type(e).__name__)
    except ModelLoadError:
        raise
    except Exception as e:
        if not isinstance(e, _Expired) and not deadline.passed():
            raise _explain(e, where) from None
        raise ModelLoadError(
            f"Downloading {where} from the Hugging Face Hub took longer than {HUB_DEADLINE:g} s; try again later. "
            "Nothing was saved; the models already loaded keep working."
        ) from None
    if revision != commit:  # a branch or tag: remember its commit, so the cache works offline
        _write_atomic(storage / "refs" / (revision or constants.DEFAULT_REVISION), commit.encode())
    return storage / "snapshots" / commit


def _missing(name: str, where: str) -> ModelLoadError:
    if name.endswith(".safetensors"):
        return ModelLoadError(f"The Hub repo {where} has no {name}. This app loads safetensors weights only and never "
                              "unpickles .bin files; convert the weights with safetensors first.")
    return ModelLoadError(f"The Hub repo {where} has no {name}.")


def _limit(filename: str) -> int:
    return MAX_MODEL_BYTES if filename.endswith(".safetensors") else MAX_JSON_BYTES


def _explain(e: Exception, where: str) -> ModelLoadError:
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(e, _TransferError):
        return ModelLoadError(f"Could not download {where}: {e} Nothing was saved; the models already loaded keep working.")
    if isinstance(e, HfHubHTTPError):
        status = getattr(getattr(e, "response", None), "status_code", "an error")
        return ModelLoadError(f"Could not download {where}: the Hub answered HTTP {status}; try again later. "
                              "Nothing was saved; the models already loaded keep working.")
    if type(e).__module__.startswith(("httpx", "httpcore")):  # a dropped or cut-off transfer after huggingface_hub's resumes
        return ModelLoadError(f"Could not download {where}: the transfer was cut off ({type(e).__name__}); try again later. "
                              "Nothing was saved; the models already loaded keep working.")
    # timeouts, refused connections, a full disk
    return ModelLoadError(f"Could not download {where} from the Hugging Face Hub ({type(e).__name__}); try again later.")


def _from_cache(repo_id: str, required, optional, revision, cache_dir, token, where: str, why: str, then=None) -> Path:
    """The Hub is out of reach: the snapshot folder from the local cache only (no request is sent)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    def cached(filename: str) -> str:
        return hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token, local_files_only=True)

    try:
        paths = [cached(name) for name in required]
        # the snapshot folder: required[0] may sit in a subfolder ("vae/config.json")
        folder = Path(paths[0]).parents[len(Path(required[0]).parts) - 1]
        if then is not None:
            more_required, more_optional = then(folder)
            for name in more_required:
                cached(name)
            optional = (*optional, *more_optional)
    except EntryNotFoundError:  # LocalEntryNotFoundError is one
        raise ModelLoadError(
            f"Could not load {where}: {why}, and the model is not in the local cache. The models already loaded keep working."
        ) from None
    for name in optional:
        with contextlib.suppress(EntryNotFoundError):
            cached(name)
    return folder


def _fetch_file(filename: str, limit: int, *, repo_id: str, commit: str, storage: Path, token, deadline: _Deadline,
                meta=None) -> Path:
    """One file of `commit` into the cache (blobs/<etag>, snapshots/<commit>/<filename>) unless it is there already.

    Raises EntryNotFoundError when the repo has no such file; _TransferError / _Expired when the transfer fails.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    pointer = storage / "snapshots" / commit / filename
    if pointer.is_file():  # follows the link: only a complete blob is ever linked
        return pointer
    url = hf_hub_url(repo_id, filename, revision=commit)
    if meta is None:
        meta = get_hf_file_metadata(url, token=token, timeout=deadline.timeout())
    if meta.size is not None and meta.size > limit:
        raise ModelLoadError(
            f"{filename} of {repo_id} is {meta.size / 2**20:.0f} MB; this app loads files up to {limit / 2**20:.0f} MB."
        )
    # The transfer itself is huggingface_hub's: it writes blobs/<etag> through an .incomplete file and links the
    # snapshot only when the file is complete. The probe above (no retries) has already turned a missing file,
    # an error status or an oversized file into a fast answer, so its own retry rounds are not reached in practice.
    from huggingface_hub import hf_hub_download

    path = Path(hf_hub_download(repo_id, filename, revision=commit, cache_dir=str(storage.parent), token=token,
                                etag_timeout=deadline.timeout()))
    got = path.stat().st_size
    if got > limit or (meta.size is not None and got != meta.size):
        path.unlink(missing_ok=True)
        raise _TransferError(f"{filename} arrived with {got} bytes, not the {meta.size} the Hub announced.")
    deadline.check()
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- building the model -------------------------------------------------------------------------------
def _load_folder(folder: Path, source: str, device: torch.device = torch.device("cpu")) -> VAE:
    raw = _read_json(folder / CONFIG_NAME) if (folder / CONFIG_NAME).is_file() else None
    if isinstance(raw, dict) and "_class_name" in raw:  # a diffusers autoencoder: photo.py builds and checks it
        from .photo import PhotoModelError, load_photo_vae

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
        with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints "Loading weights from local directory"
            return VAE.from_pretrained(str(folder), strict=True, map_location="cpu")
    except Exception as e:  # safetensors errors, shape mismatches, missing or renamed tensors
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise ModelLoadError(f"The weights of {source!r} do not match its config or are damaged: {msg}") from None


def _check_size(c: VAEConfig, n_params: int, source: str) -> None:
    """Refuse configs that would make the server allocate or compute far more than a demo model needs."""
    counts = {"image_size": c.image_size, "latent_dim": c.latent_dim, "hidden_dim": c.hidden_dim, "block_convs": c.block_convs}
    counts.update({f"hidden_channels[{i}]": ch for i, ch in enumerate(c.hidden_channels)})
    for what, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if what == "block_convs" else 1):
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
        (features * (1 + c.block_convs), MAX_FEATURE_ELEMENTS, "the activations per image"),
        (n_params * 4, MAX_MODEL_BYTES, "the size of the weights in bytes"),
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
