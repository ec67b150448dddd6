"""Fetching a model's files from the Hugging Face Hub, bounded: the network half of hub/loading.py.

Each load probes the Hub once without retries (HUB_TIMEOUT), so an unreachable or failing Hub answers in seconds
instead of after hf_hub_download's retry rounds; files are pinned to the probed commit and checked against a size
limit before any byte is fetched; all requests of one load share a deadline (HUB_DEADLINE); an unreachable Hub
falls back to the local cache.
"""

import contextlib
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

from vae_demo.errors import DemoError

log = logging.getLogger("vae_demo.loading")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,199}$")  # branch, tag, refs/pr/N or commit sha
HUB_TIMEOUT = float(os.environ.get("VAE_DEMO_HUB_TIMEOUT", "5"))  # seconds per request: connect, and each read
HUB_DEADLINE = float(os.environ.get("VAE_DEMO_HUB_DEADLINE", "60"))  # seconds for all requests of one load
MAX_MODEL_BYTES = int(float(os.environ.get("VAE_DEMO_MAX_MODEL_MB", "400")) * 2**20)  # the SD VAE's weights: 335 MB  # weights, and params * 4
MAX_JSON_BYTES = 2**20  # config.json, latent_stats.json
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


class ModelLoadError(DemoError, RuntimeError):
    """A model that cannot be loaded, with a message that names it and says why."""


def is_repo_id(source: str) -> bool:
    return bool(REPO_ID_RE.match(source)) and ".." not in source and "--" not in source and not source.endswith(".git")



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


_HUB_STATE: dict = {}  # {"at": monotonic time of the last answer, "ok": bool, "probing": bool, "thread": Thread}
_HUB_LOCK = threading.Lock()
PHOTO_REPOS = ("madebyollin/taesd", "stabilityai/sd-vae-ft-mse", "stabilityai/sdxl-vae")  # photo VAEs this app loads


def hub_reachable(max_age: float = 600.0, timeout: float = 3.0, wait: bool = False) -> Optional[bool]:
    """Can this server reach the Hub now? One metadata request for a photo VAE's config, made in the background and
    remembered for max_age s; None until the first answer (wait=True blocks for it). Never on a request's path."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url, is_offline_mode

    if is_offline_mode():
        return False
    with _HUB_LOCK:
        fresh = _HUB_STATE.get("at") is not None and time.monotonic() - _HUB_STATE["at"] < max_age
        if not fresh and not _HUB_STATE.get("probing"):
            _HUB_STATE["probing"] = True

            def probe():
                try:
                    get_hf_file_metadata(hf_hub_url(PHOTO_REPOS[0], CONFIG_NAME), timeout=timeout)
                    ok = True
                except Exception:  # refused, DNS failure, timeout, 4xx/5xx: all mean "not now" to a visitor
                    ok = False
                with _HUB_LOCK:
                    _HUB_STATE.update(at=time.monotonic(), ok=ok, probing=False)

            _HUB_STATE["thread"] = threading.Thread(target=probe, name="hub-probe", daemon=True)
            _HUB_STATE["thread"].start()
        thread = _HUB_STATE.get("thread")
    if wait and thread is not None:
        thread.join(timeout + 1)
    with _HUB_LOCK:
        return _HUB_STATE.get("ok")


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
