"""A small fake Hugging Face Hub HTTP server for the test suite (standard library only).

Usage (plain)::

    with FakeHub() as hub:
        hub.add_repo("owner/name", {"config.json": b"{}", "vae/model.safetensors": b"..."})
        ...  # point huggingface_hub at hub.url, see use_endpoint()

Usage (pytest)::

    def test_download(fake_hub):            # fixture defined below
        fake_hub.add_repo("owner/name", {"config.json": b"{}"})
        path = hf_hub_download("owner/name", "config.json")

The ``fake_hub`` fixture starts a server, points huggingface_hub at it (``use_endpoint``), gives the test its
own HF_HOME / HF_HUB_CACHE under ``tmp_path`` and no token (``isolate_hf_home``), turns offline mode off
(``set_offline``), and stops the server afterwards. It does *not* shorten huggingface_hub's retries: add the
``hub_fail_fast`` fixture (or call ``fail_fast(monkeypatch)``) for that.

What is served (model repos only; ``/datasets/...`` and ``/spaces/...`` URLs get 404):

* ``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{path/in/repo}`` -- revision may be a branch name
  registered with ``add_repo`` (url-encoded, e.g. ``refs%2Fpr%2F1``) or the 40-hex commit sha of one.
  Success headers: ``X-Repo-Commit``, ``ETag: "<sha256 of content>"``, ``Content-Length``,
  ``Content-Type: application/octet-stream``, ``Accept-Ranges: bytes``. ``Range: bytes=a-`` / ``bytes=a-b``
  is honoured (206 + ``Content-Range``; 416 when out of range). No redirect is ever sent, so
  ``X-Linked-Etag`` / ``X-Linked-Size`` / ``Location`` are not needed: huggingface_hub 2.4.0 takes the etag
  from ``ETag``, the size from ``Content-Length`` and the download location from the request url.
  ``X-Repo-Commit`` and ``ETag`` are mandatory for it (without them hf_hub_download raises
  LocalEntryNotFoundError caused by a FileMetadataError).
* ``GET /api/models/{owner}/{name}`` and ``.../revision/{revision}`` -- ``{"id", "sha", "siblings":
  [{"rfilename", "size", "blobId"}], ...}`` (enough for ``HfApi().model_info`` / ``repo_info``).
* ``GET /api/models/{owner}/{name}/tree/{revision}[/{path}]?recursive=...`` -- tree listing (files and
  directories, no pagination), which ``snapshot_download`` needs after ``repo_info``.
  Not implemented: ``paths-info``, commits, refs, uploads, xet, datasets/spaces (all answer 404/405).
* Errors: 404 with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound`` (+ ``X-Repo-Commit``
  for EntryNotFound, like the real Hub) and a JSON body ``{"error": "..."}``; huggingface_hub turns those into
  RepositoryNotFoundError / RevisionNotFoundError / RemoteEntryNotFoundError (an EntryNotFoundError).

Fault injection (``set_fault(repo_id, kind, ...)``; ``repo_id="*"`` means every repo; ``times=n`` limits a
fault to the next n matching requests, default: forever):

* ``"http500"``: every request for the repo (resolve and api) gets a 500.
* ``"slow"``: sleep ``seconds`` (capped at ``MAX_SLOW_SECONDS``; ``stop()`` wakes sleepers) before answering.
* ``"truncate"``: GET /resolve bodies behave as if the file were cut at byte ``nbytes``: headers claim the full
  size (Content-Length / Content-Range), no byte past offset ``nbytes`` is ever sent, then the connection is
  closed. A resumed ``Range`` request from beyond ``nbytes`` therefore gets headers and no body.

Every request is appended to ``hub.requests`` as ``(method, raw_path)`` (raw path as sent, query included),
e.g. ``("HEAD", "/owner/name/resolve/main/config.json")``.

huggingface_hub 2.4.0 notes (see also the helpers below):

* ``constants.ENDPOINT`` / ``HUGGINGFACE_CO_URL_TEMPLATE`` are computed from ``HF_ENDPOINT`` at import, the
  module-level ``huggingface_hub.hf_api.api`` (behind ``huggingface_hub.model_info`` etc.) copies the endpoint
  when created; cache paths, ``HF_HUB_OFFLINE``, ``HF_HUB_ETAG_TIMEOUT``, ``HF_HUB_DOWNLOAD_TIMEOUT`` are also
  read once at import. Setting environment variables in a test is therefore not enough; the helpers patch
  the module attributes too (and set the env vars for subprocesses / late imports).
* ``is_offline_mode()`` just returns ``constants.HF_HUB_OFFLINE``, checked on every call and in the httpx
  request hook (raising OfflineModeIsEnabled before anything is sent).
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
import types
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Mapping, Optional, Union
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

MAX_SLOW_SECONDS = 30.0
FAULT_KINDS = ("http500", "slow", "truncate")
_COMMIT_SHA_LEN = 40


@dataclass
class _Snapshot:
    sha: str
    files: dict  # path -> bytes


@dataclass
class _Fault:
    kind: str
    seconds: float = 0.0
    nbytes: int = 0
    times: Optional[int] = None  # None: forever


@dataclass
class _Repo:
    revisions: dict = field(default_factory=dict)  # revision name -> _Snapshot

    def lookup(self, revision: str) -> Optional[_Snapshot]:
        if revision in self.revisions:
            return self.revisions[revision]
        if len(revision) == _COMMIT_SHA_LEN:
            for snap in self.revisions.values():
                if snap.sha == revision:
                    return snap
        return None


def _commit_sha(repo_id: str, revision: str, files: Mapping[str, bytes]) -> str:
    h = hashlib.sha1()
    h.update(f"{repo_id}\0{revision}\0".encode())
    for path in sorted(files):
        h.update(f"{path}\0{hashlib.sha256(files[path]).hexdigest()}\0".encode())
    return h.hexdigest()


def _git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FakeHub:
    """In-memory Hub serving model repos over HTTP on 127.0.0.1 (a free port)."""

    def __init__(self) -> None:
        self._repos: dict = {}
        self._faults: dict = {}  # (repo_id, kind) -> _Fault
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self.requests: list = []  # (method, raw path)
        self.server_errors: list = []  # unexpected exceptions raised in handlers (should stay empty)

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.hub = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakehub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes "slow" handlers
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- content -------------------------------------------------------------------------------------
    def add_repo(self, repo_id: str, files: Mapping[str, Union[bytes, str]], revision: str = "main") -> str:
        """Register (or replace) `revision` of `repo_id` holding `files` (str values are utf-8 encoded).

        Returns the commit sha, which also works as a revision.
        """
        _check_repo_id(repo_id)
        data = {}
        for path, content in files.items():
            path = path.replace("\\", "/").strip("/")
            if not path or ".." in path.split("/"):
                raise ValueError(f"bad file path {path!r}")
            data[path] = content.encode() if isinstance(content, str) else bytes(content)
        snap = _Snapshot(sha=_commit_sha(repo_id, revision, data), files=data)
        with self._lock:
            self._repos.setdefault(repo_id, _Repo()).revisions[revision] = snap
        return snap.sha

    def add_folder(self, repo_id: str, path: Union[str, Path], revision: str = "main") -> str:
        """Register every file under the local folder `path` (recursively, relative paths kept)."""
        root = Path(path)
        if not root.is_dir():
            raise NotADirectoryError(root)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return self.add_repo(repo_id, files, revision=revision)

    def commit_sha(self, repo_id: str, revision: str = "main") -> str:
        with self._lock:
            snap = self._repos[repo_id].lookup(revision)
        if snap is None:
            raise KeyError(f"{repo_id}@{revision}")
        return snap.sha

    # -- faults / request log ------------------------------------------------------------------------
    def set_fault(self, repo_id: str, kind: str, *, seconds: float = 0.0, nbytes: int = 0,
                  times: Optional[int] = None) -> None:
        """Inject a fault for `repo_id` ("*" = all repos). kind: "http500" | "slow" | "truncate"."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if kind == "slow" and not seconds >= 0:
            raise ValueError("slow needs seconds >= 0")
        if kind == "truncate" and nbytes < 0:
            raise ValueError("truncate needs nbytes >= 0")
        with self._lock:
            self._faults[(repo_id, kind)] = _Fault(kind, min(float(seconds), MAX_SLOW_SECONDS), int(nbytes), times)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- internals used by the handler ---------------------------------------------------------------
    def _take_fault(self, repo_id: str, kind: str) -> Optional[_Fault]:
        with self._lock:
            for key in ((repo_id, kind), ("*", kind)):
                fault = self._faults.get(key)
                if fault is None:
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                return fault
        return None

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _repo(self, repo_id: str) -> Optional[_Repo]:
        with self._lock:
            return self._repos.get(repo_id)


def _check_repo_id(repo_id: str) -> None:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"repo_id must be 'owner/name', got {repo_id!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub

    def handle_error(self, request, client_address) -> None:  # quiet: clients hang up on purpose in tests
        exc = sys.exc_info()[1]
        if not isinstance(exc, (ConnectionError, TimeoutError, OSError)):
            self.hub.server_errors.append(exc)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so a truncated body is followed by a close.
    protocol_version = "HTTP/1.0"
    server: _Server

    def log_message(self, format, *args) -> None:  # noqa: A002 - quiet
        pass

    # -- dispatch ------------------------------------------------------------------------------------
    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def _unsupported(self) -> None:
        self.server.hub._record(self.command, self.path)
        self._json(405, {"error": f"{self.command} is not supported by FakeHub"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _unsupported

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        hub._record(method, self.path)
        split = urlsplit(self.path)
        # Split on raw "/" first, then unquote: "refs%2Fpr%2F1" stays one segment.
        segs = [unquote(s) for s in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        if len(segs) >= 3 and segs[0] == "api" and segs[1] == "models":
            repo_id = "/".join(segs[2:4])
            if not self._faults_before_answer(repo_id):
                return
            if method != "GET":
                return self._json(405, {"error": "api endpoints answer GET only"})
            return self._api(repo_id, segs[4:], query)
        if len(segs) >= 5 and segs[2] == "resolve":
            repo_id = f"{segs[0]}/{segs[1]}"
            if not self._faults_before_answer(repo_id):
                return
            return self._resolve(method, repo_id, segs[3], "/".join(segs[4:]))
        self._json(404, {"error": "Not Found"})

    def _faults_before_answer(self, repo_id: str) -> bool:
        hub = self.server.hub
        slow = hub._take_fault(repo_id, "slow")
        if slow is not None and slow.seconds > 0:
            hub._stopping.wait(slow.seconds)
        if hub._take_fault(repo_id, "http500") is not None:
            self._json(500, {"error": "Internal Error (injected by FakeHub)"})
            return False
        return True

    # -- endpoints -----------------------------------------------------------------------------------
    def _find(self, repo_id: str, revision: str) -> Optional[_Snapshot]:
        """Snapshot for repo_id@revision, or None after sending the right 404."""
        repo = self.server.hub._repo(repo_id)
        if repo is None:
            self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound",
                                                               "X-Error-Message": "Repository not found"})
            return None
        snap = repo.lookup(revision)
        if snap is None:
            self._json(404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound",
                                                                      "X-Error-Message": f"Invalid rev id: {revision}"})
            return None
        return snap

    def _resolve(self, method: str, repo_id: str, revision: str, filename: str) -> None:
        snap = self._find(repo_id, revision)
        if snap is None:
            return
        content = snap.files.get(filename)
        if content is None:
            self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound",
                                                           "X-Error-Message": "Entry not found",
                                                           "X-Repo-Commit": snap.sha})
            return
        size = len(content)
        start, end = 0, size - 1
        status = 200
        headers = {
            "X-Repo-Commit": snap.sha,
            "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        rng = self.headers.get("Range")
        if rng:
            parsed = _parse_range(rng, size)
            if parsed is None:
                self._json(416, {"error": "Requested range not satisfiable"}, {"Content-Range": f"bytes */{size}"})
                return
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        body = content[start:end + 1]
        headers["Content-Length"] = str(len(body))
        sent = body
        if method == "GET":
            trunc = self.server.hub._take_fault(repo_id, "truncate")
            if trunc is not None:
                sent = body[:max(0, trunc.nbytes - start)]
        self._send(status, headers, sent if method == "GET" else b"")
        if sent is not body:
            self.close_connection = True

    def _api(self, repo_id: str, rest: list, query: dict) -> None:
        revision = "main"
        if rest[:1] == ["revision"] and len(rest) == 2:
            revision = rest[1]
        elif rest[:1] == ["tree"] and len(rest) >= 2:
            return self._tree(repo_id, rest[1], "/".join(rest[2:]).strip("/"), query)
        elif rest:
            return self._json(404, {"error": "Not Found"})
        snap = self._find(repo_id, revision)
        if snap is None:
            return
        self._json(200, {
            "_id": snap.sha[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": snap.sha,
            "private": False,
            "gated": False,
            "disabled": False,
            "tags": [],
            "siblings": [{"rfilename": p, "size": len(c), "blobId": _git_blob_sha(c)}
                         for p, c in sorted(snap.files.items())],
        })

    def _tree(self, repo_id: str, revision: str, path: str, query: dict) -> None:
        snap = self._find(repo_id, revision)
        if snap is None:
            return
        recursive = query.get("recursive", ["false"])[-1].lower() in ("1", "true")
        prefix = f"{path}/" if path else ""
        if path and path in snap.files:
            entries = {path: snap.files[path]}  # the real Hub lists a file path as itself
        else:
            entries = {p: c for p, c in snap.files.items() if p.startswith(prefix)}
            if path and not entries:
                self._json(404, {"error": f"{path} does not exist"}, {"X-Error-Code": "EntryNotFound",
                                                                     "X-Repo-Commit": snap.sha})
                return
        out, dirs = [], set()
        for p, c in sorted(entries.items()):
            rel = p[len(prefix):] if p != path else p
            parts = rel.split("/")
            if not recursive and len(parts) > 1 and p != path:
                dirs.add(prefix + parts[0])
                continue
            for i in range(1, len(parts)):
                dirs.add(prefix + "/".join(parts[:i]))
            out.append({"type": "file", "oid": _git_blob_sha(c), "size": len(c), "path": p})
        out += [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0, "path": d}
                for d in sorted(dirs)]
        self._json(200, sorted(out, key=lambda e: e["path"]))

    # -- low level -----------------------------------------------------------------------------------
    def _json(self, status: int, payload, extra_headers: Optional[dict] = None) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        headers.update(extra_headers or {})
        self._send(status, headers, body if self.command != "HEAD" else b"")

    def _send(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()


def _parse_range(value: str, size: int):
    """(start, end) inclusive for a single 'bytes=a-b' / 'bytes=a-' / 'bytes=-n' range, None if unsatisfiable."""
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    a, _, b = spec.strip().partition("-")
    try:
        if a == "":
            n = int(b)
            start, end = max(0, size - n), size - 1
        else:
            start = int(a)
            end = min(int(b), size - 1) if b else size - 1
    except ValueError:
        return None
    if start >= size or start > end:
        return None
    return start, end


def unused_port_url() -> str:
    """http://127.0.0.1:PORT where nothing listens (connection refused), for 'Hub unreachable' tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- huggingface_hub patching helpers (all take pytest's monkeypatch, so everything is undone) ---------
def use_endpoint(monkeypatch, url: str) -> None:
    """Point huggingface_hub (already imported or not) at `url`."""
    import huggingface_hub.constants as constants
    import huggingface_hub.hf_api as hf_api
    from huggingface_hub.utils import _http

    url = url.rstrip("/")
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    # The module-level HfApi behind huggingface_hub.model_info / list_repo_tree / ... copied the endpoint.
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    # Pooled connections and proxy settings belong to the shared client: start a fresh one.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    _http.close_session()


def isolate_hf_home(monkeypatch, path: Union[str, Path]) -> Path:
    """Give huggingface_hub its own HF_HOME / HF_HUB_CACHE under `path`, and no token. Returns the hub cache."""
    import huggingface_hub.constants as constants

    home = Path(path)
    cache = home / "hub"
    cache.mkdir(parents=True, exist_ok=True)
    for var, value in {"HF_HOME": home, "HF_HUB_CACHE": cache, "HF_ASSETS_CACHE": home / "assets",
                       "HF_XET_CACHE": home / "xet", "HF_TOKEN_PATH": home / "token"}.items():
        monkeypatch.setenv(var, str(value))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    for attr, value in {"HF_HOME": home, "HF_HUB_CACHE": cache, "HUGGINGFACE_HUB_CACHE": cache,
                        "default_cache_path": cache, "HF_ASSETS_CACHE": home / "assets",
                        "HUGGINGFACE_ASSETS_CACHE": home / "assets", "default_assets_cache_path": home / "assets",
                        "HF_TOKEN_PATH": home / "token", "HF_STORED_TOKENS_PATH": home / "stored_tokens"}.items():
        if hasattr(constants, attr):
            monkeypatch.setattr(constants, attr, str(value))
    return cache


def set_offline(monkeypatch, offline: bool = True) -> None:
    """Turn huggingface_hub's offline mode on/off (HF_HUB_OFFLINE is read once, at import)."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


def _time_without_sleep(record: Optional[list] = None):
    """A stand-in for the `time` module whose sleep() returns at once (optionally recording the delays)."""
    shim = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("__")})
    shim.sleep = (lambda s: record.append(s)) if record is not None else (lambda s: None)
    return shim


def fail_fast(monkeypatch, timeout: float = 1.0, record_sleeps: Optional[list] = None) -> None:
    """Make huggingface_hub 2.4.0 give up on an unreachable / failing Hub within about `timeout` seconds.

    * HF_HUB_ETAG_TIMEOUT / HF_HUB_DOWNLOAD_TIMEOUT constants -> `timeout` (hf_hub_download prefers the former
      over its etag_timeout argument whenever it differs from the default 10).
    * No second "retry" metadata round in hf_hub_download (it normally re-tries HEAD with a 60 s timeout and
      5 retries backing off 1+2+4+8+8 s on 5xx/429/timeouts/connection errors when the file is not cached).
    * The remaining retry loops (http_get's 5 resume attempts, http_backoff for api calls) do not sleep;
      pass a list as `record_sleeps` to collect the delays they would have slept.
    """
    import huggingface_hub.constants as constants
    import huggingface_hub.file_download as file_download
    from huggingface_hub.utils import _http

    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", str(max(1, round(timeout))))
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", str(max(1, round(timeout))))
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", timeout)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", timeout)
    monkeypatch.setattr(file_download, "_ETAG_RETRY_TIMEOUT", timeout)
    monkeypatch.setattr(file_download, "_DEFAULT_RETRY_ON_EXCEPTIONS", ())
    monkeypatch.setattr(file_download, "_DEFAULT_RETRY_ON_STATUS_CODES", ())
    monkeypatch.setattr(file_download, "time", _time_without_sleep(record_sleeps))
    monkeypatch.setattr(_http, "time", _time_without_sleep(record_sleeps))


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A running FakeHub that huggingface_hub talks to, with an isolated cache (tmp_path/'hf/hub'), online."""
    hub = FakeHub().start()
    use_endpoint(monkeypatch, hub.url)
    hub.cache_dir = isolate_hf_home(monkeypatch, tmp_path / "hf")
    set_offline(monkeypatch, False)
    try:
        yield hub
    finally:
        hub.stop()
        from huggingface_hub.utils import _http

        _http.close_session()
        assert not hub.server_errors, f"FakeHub handler errors: {hub.server_errors!r}"


@pytest.fixture
def hub_fail_fast(monkeypatch):
    """huggingface_hub gives up within ~1 s (see fail_fast()); returns the list of skipped sleeps."""
    sleeps: list = []
    fail_fast(monkeypatch, timeout=1.0, record_sleeps=sleeps)
    return sleeps
