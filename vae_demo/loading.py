"""The one way to load a model: a bundled name, a local folder, or a Hugging Face Hub repo id.

Weights are read from `model.safetensors` only. A repo that offers only a pickled
`pytorch_model.bin` is refused: unpickling a download can run arbitrary code.
"""

import contextlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import torch

from .model import VAE, VAEConfig

CHECKPOINTS_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
OPTIONAL_FILES = ("latent_stats.json",)  # fetched when a repo has them; nothing breaks when it does not
# owner/name as the Hub allows them: letters, digits, '-', '_', '.'; no '..', no leading '.'.
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
# Seconds to wait for the Hub before giving up; huggingface_hub's default is 10 s per request.
HUB_TIMEOUT = float(os.environ.get("VAE_DEMO_HUB_TIMEOUT", "5"))


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
    return bool(REPO_ID_RE.match(source)) and ".." not in source


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
    vae = _load_folder(folder, source)
    vae.info = ModelInfo(
        name=Path(source).name if allow_local and Path(source).is_dir() and source not in bundled_models() else source,
        source=source,
        folder=folder,
        revision=revision,
        stats=_read_json(folder / "latent_stats.json"),
        examples=sorted((folder / "examples").glob("*.png")) if (folder / "examples").is_dir() else [],
    )
    return vae.to(torch.device(device)).eval()


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
    """Fetch config.json + model.safetensors (and optional extras) into the Hub cache; return the snapshot folder.

    huggingface_hub retries an unreachable Hub with backoff for ~20 s when the file is not cached. We
    first probe once, without retries and with a short timeout; if the Hub does not answer we use the
    local cache only, so an offline machine fails (or succeeds from cache) within seconds.
    """
    # Imported here so that HF_ENDPOINT / HF_HUB_OFFLINE set by the caller before the first load apply.
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url, is_offline_mode
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    unreachable = "offline mode (HF_HUB_OFFLINE=1)" if is_offline_mode() else None
    try:
        if unreachable is None:
            try:
                get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_NAME, revision=revision), token=token, timeout=HUB_TIMEOUT)
            except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
                raise
            except HfHubHTTPError as e:
                unreachable = f"the Hub answered HTTP {getattr(e.response, 'status_code', '?')}"
            except Exception as e:  # refused, DNS failure, timeout: httpx errors share no base with OSError
                unreachable = f"the Hub could not be reached ({type(e).__name__})"

        def fetch(filename: str) -> str:
            return hf_hub_download(
                repo_id, filename, revision=revision, cache_dir=cache_dir, token=token,
                etag_timeout=HUB_TIMEOUT, local_files_only=unreachable is not None,
            )

        config_path = fetch(CONFIG_NAME)
        try:
            fetch(WEIGHTS_NAME)
        except LocalEntryNotFoundError:
            raise
        except EntryNotFoundError:
            raise ModelLoadError(
                f"The Hub repo {where} has no {WEIGHTS_NAME}. This app loads safetensors weights only and never "
                "unpickles pytorch_model.bin files; convert the weights with safetensors first."
            ) from None
        for extra in OPTIONAL_FILES:
            with contextlib.suppress(EntryNotFoundError):
                fetch(extra)
    except ModelLoadError:
        raise
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise ModelLoadError(
            f"Could not load {where}: {unreachable or 'the Hub could not be reached'}, and the model is not in the "
            "local cache. The models already loaded keep working."
        ) from None
    except RepositoryNotFoundError:
        raise ModelLoadError(f"The Hub repo {repo_id!r} was not found (or it is private and no token was given).") from None
    except RevisionNotFoundError:
        raise ModelLoadError(f"The Hub repo {repo_id!r} has no revision {revision!r}.") from None
    except EntryNotFoundError:
        raise ModelLoadError(f"The Hub repo {where} has no {CONFIG_NAME}; it is not a vae-demo model.") from None
    except HfHubHTTPError as e:
        status = getattr(getattr(e, "response", None), "status_code", "an error")
        raise ModelLoadError(f"The Hugging Face Hub answered {status} while fetching {where}; try again later.") from None
    except Exception as e:  # timeouts, refused connections, broken or truncated transfers
        raise ModelLoadError(f"Could not download {where} from the Hugging Face Hub ({type(e).__name__}); try again later.") from None
    return Path(config_path).parent


def _load_folder(folder: Path, source: str) -> VAE:
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
        VAEConfig(**raw)
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{source!r} is not a model this app knows how to build: {e}") from None
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the mixin prints "Loading weights from local directory"
            return VAE.from_pretrained(str(folder), strict=True, map_location="cpu")
    except Exception as e:  # safetensors errors, shape mismatches, missing or renamed tensors
        msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise ModelLoadError(f"The weights of {source!r} do not match its config or are damaged: {msg}") from None


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        raise ModelLoadError(f"{path.name} in {path.parent} is not valid JSON.") from None
