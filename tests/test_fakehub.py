"""The fake Hub (tests/fakehub.py) against the real huggingface_hub client.

Also pins down how huggingface_hub 2.4.0 behaves when the Hub fails (retries, timeouts, offline mode),
which the app's loading code relies on.
"""

import hashlib
import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub import constants, is_offline_mode
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import _http

from fakehub import (  # noqa: F401 - fixtures
    FakeHub,
    _time_without_sleep,
    fail_fast,
    fake_hub,
    hub_fail_fast,
    set_offline,
    unused_port_url,
    use_endpoint,
)

REPO = "someone/tiny-vae"
FILES = {
    "config.json": b'{"latent_dim": 3}',
    "model.safetensors": bytes(range(256)) * 8,
    "vae/config.json": b'{"nested": true}',
}
# huggingface_hub's default backoff for the second metadata round: 5 retries, 1 s doubling, capped at 8 s.
DEFAULT_BACKOFF = [1, 2, 4, 8, 8]


def _blobs_and_pointers(cache_dir: Path, repo_id: str = REPO):
    folder = cache_dir / ("models--" + repo_id.replace("/", "--"))
    blobs = sorted(p.name for p in (folder / "blobs").glob("*")) if (folder / "blobs").exists() else []
    pointers = sorted(str(p.relative_to(folder)) for p in (folder / "snapshots").rglob("*") if not p.is_dir()) \
        if (folder / "snapshots").exists() else []
    return blobs, pointers


def _resolve_requests(hub, method=None):
    return [(m, p) for m, p in hub.requests if "/resolve/" in p and (method is None or m == method)]


# -- basics --------------------------------------------------------------------------------------------------
def test_download_content_and_headers_used(fake_hub):
    sha = fake_hub.add_repo(REPO, FILES)
    path = hf_hub_download(REPO, "model.safetensors")
    assert Path(path).read_bytes() == FILES["model.safetensors"]
    assert Path(path).is_relative_to(fake_hub.cache_dir)
    assert f"/snapshots/{sha}/" in path
    # blob named after the (unquoted) ETag = sha256 of the content
    blobs, _ = _blobs_and_pointers(fake_hub.cache_dir)
    assert blobs == [hashlib.sha256(FILES["model.safetensors"]).hexdigest()]
    assert fake_hub.requests == [("HEAD", f"/{REPO}/resolve/main/model.safetensors"),
                                 ("GET", f"/{REPO}/resolve/main/model.safetensors")]
    # second call: HEAD only, file served from the cache
    fake_hub.clear_requests()
    assert hf_hub_download(REPO, "model.safetensors") == path
    assert [m for m, _ in fake_hub.requests] == ["HEAD"]


def test_nested_files_subfolder_and_add_folder(fake_hub, tmp_path):
    src = tmp_path / "src"
    (src / "vae").mkdir(parents=True)
    (src / "config.json").write_bytes(b"top")
    (src / "vae" / "config.json").write_bytes(b"nested")
    sha = fake_hub.add_folder("o/folder", src)
    assert sha == fake_hub.commit_sha("o/folder")
    assert Path(hf_hub_download("o/folder", "vae/config.json")).read_bytes() == b"nested"
    assert Path(hf_hub_download("o/folder", "config.json", subfolder="vae")).read_bytes() == b"nested"
    assert Path(hf_hub_download("o/folder", "config.json")).read_bytes() == b"top"


def test_revision_by_branch_tag_pr_and_commit_sha(fake_hub):
    main_sha = fake_hub.add_repo(REPO, {"config.json": b"main"})
    v2_sha = fake_hub.add_repo(REPO, {"config.json": b"v2"}, revision="v2")
    pr_sha = fake_hub.add_repo(REPO, {"config.json": b"pr"}, revision="refs/pr/1")
    assert len({main_sha, v2_sha, pr_sha}) == 3 and all(len(s) == 40 for s in (main_sha, v2_sha, pr_sha))
    # deterministic
    assert FakeHub().add_repo(REPO, {"config.json": b"main"}) == main_sha

    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == b"main"
    assert Path(hf_hub_download(REPO, "config.json", revision="v2")).read_bytes() == b"v2"
    assert Path(hf_hub_download(REPO, "config.json", revision="refs/pr/1")).read_bytes() == b"pr"
    assert ("HEAD", f"/{REPO}/resolve/refs%2Fpr%2F1/config.json") in fake_hub.requests

    fake_hub.clear_requests()
    fresh = fake_hub.cache_dir.parent / "other-cache"
    p = hf_hub_download(REPO, "config.json", revision=v2_sha, cache_dir=fresh)
    assert Path(p).read_bytes() == b"v2" and f"/snapshots/{v2_sha}/" in p
    assert fake_hub.requests[0] == ("HEAD", f"/{REPO}/resolve/{v2_sha}/config.json")
    # a commit sha that is cached is returned without any request
    fake_hub.clear_requests()
    assert hf_hub_download(REPO, "config.json", revision=v2_sha, cache_dir=fresh) == p
    assert fake_hub.requests == []


def test_raw_http_headers_range_and_errors(fake_hub):
    sha = fake_hub.add_repo(REPO, FILES)
    content = FILES["model.safetensors"]
    host = urlsplit(fake_hub.url).netloc

    def req(method, path, headers=None):
        conn = http.client.HTTPConnection(host, timeout=5)
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return r, body

    r, body = req("HEAD", f"/{REPO}/resolve/main/model.safetensors")
    assert r.status == 200 and body == b""
    assert r.headers["X-Repo-Commit"] == sha
    assert r.headers["ETag"] == f'"{hashlib.sha256(content).hexdigest()}"'
    assert r.headers["Content-Length"] == str(len(content))
    assert r.headers["Content-Type"] == "application/octet-stream"

    r, body = req("GET", f"/{REPO}/resolve/{sha}/model.safetensors", {"Range": "bytes=100-"})
    assert r.status == 206 and body == content[100:]
    assert r.headers["Content-Range"] == f"bytes 100-{len(content) - 1}/{len(content)}"
    r, body = req("GET", f"/{REPO}/resolve/main/model.safetensors", {"Range": "bytes=10-19"})
    assert r.status == 206 and body == content[10:20]
    r, _ = req("GET", f"/{REPO}/resolve/main/model.safetensors", {"Range": f"bytes={len(content)}-"})
    assert r.status == 416

    for path, code in [("/nobody/nothing/resolve/main/x", "RepoNotFound"),
                       (f"/{REPO}/resolve/nope/config.json", "RevisionNotFound"),
                       (f"/{REPO}/resolve/main/missing.bin", "EntryNotFound")]:
        r, body = req("GET", path)
        assert r.status == 404 and r.headers["X-Error-Code"] == code and b'"error"' in body


@pytest.mark.parametrize(
    "repo_id, revision, filename, exc",
    [
        ("nobody/nothing", None, "config.json", RepositoryNotFoundError),
        (REPO, "no-such-branch", "config.json", RevisionNotFoundError),
        (REPO, None, "missing.bin", RemoteEntryNotFoundError),
    ],
)
def test_404_kinds_raise_the_right_exception(fake_hub, repo_id, revision, filename, exc):
    fake_hub.add_repo(REPO, FILES)
    t0 = time.monotonic()
    with pytest.raises(exc) as info:
        hf_hub_download(repo_id, filename, revision=revision)
    assert time.monotonic() - t0 < 2
    assert not isinstance(info.value, LocalEntryNotFoundError)
    if exc is RemoteEntryNotFoundError:
        assert isinstance(info.value, EntryNotFoundError)
    # 404s are not retried
    assert len(_resolve_requests(fake_hub)) == 1


# -- faults ----------------------------------------------------------------------------------------------------
def test_http500_default_retry_schedule(fake_hub, monkeypatch):
    """Without fail_fast, 2.4.0 re-tries the HEAD 5 more times, sleeping 1+2+4+8+8 = 23 s (not slept here)."""
    fake_hub.add_repo(REPO, FILES)
    fake_hub.set_fault(REPO, "http500")
    sleeps = []
    monkeypatch.setattr(_http, "time", _time_without_sleep(sleeps))
    with pytest.raises(LocalEntryNotFoundError) as info:
        hf_hub_download(REPO, "config.json")
    cause = info.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response.status_code == 500
    assert sleeps == DEFAULT_BACKOFF
    assert len(_resolve_requests(fake_hub, "HEAD")) == 1 + 1 + 5


def test_http500_fails_fast(fake_hub, hub_fail_fast):
    fake_hub.add_repo(REPO, FILES)
    fake_hub.set_fault(REPO, "http500")
    t0 = time.monotonic()
    # hf_hub_download reports "Hub failed and file not cached" as LocalEntryNotFoundError from the HTTP error
    with pytest.raises(LocalEntryNotFoundError) as info:
        hf_hub_download(REPO, "config.json")
    assert isinstance(info.value.__cause__, HfHubHTTPError)
    assert info.value.__cause__.response.status_code == 500
    assert time.monotonic() - t0 < 2
    assert _resolve_requests(fake_hub) == [("HEAD", f"/{REPO}/resolve/main/config.json")]
    # get_hf_file_metadata never retries by default and raises the HfHubHTTPError itself
    with pytest.raises(HfHubHTTPError) as info:
        get_hf_file_metadata(hf_hub_url(REPO, "config.json"), timeout=1)
    assert info.value.response.status_code == 500
    # the api endpoints fail too
    with pytest.raises(HfHubHTTPError):
        HfApi().model_info(REPO)


def test_http500_falls_back_to_cached_file(fake_hub):
    fake_hub.add_repo(REPO, FILES)
    path = hf_hub_download(REPO, "config.json")
    fake_hub.set_fault(REPO, "http500")
    fake_hub.clear_requests()
    t0 = time.monotonic()
    assert hf_hub_download(REPO, "config.json") == path  # no retries when the file is cached
    assert time.monotonic() - t0 < 2
    assert len(fake_hub.requests) == 1


def test_fault_times_and_clear(fake_hub, hub_fail_fast):
    fake_hub.add_repo(REPO, FILES)
    fake_hub.set_fault(REPO, "http500", times=1)
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "config.json")
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == FILES["config.json"]
    fake_hub.set_fault("*", "http500")
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "model.safetensors")
    fake_hub.clear_faults()
    assert Path(hf_hub_download(REPO, "model.safetensors")).read_bytes() == FILES["model.safetensors"]
    with pytest.raises(ValueError):
        fake_hub.set_fault(REPO, "explode")


def test_slow_server_with_small_timeout_fails_fast(fake_hub, monkeypatch):
    fake_hub.add_repo(REPO, FILES)
    fake_hub.set_fault(REPO, "slow", seconds=10)
    fail_fast(monkeypatch, timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(LocalEntryNotFoundError) as info:
        hf_hub_download(REPO, "config.json")
    elapsed = time.monotonic() - t0
    assert isinstance(info.value.__cause__, httpx2.TimeoutException)
    assert 0.4 < elapsed < 2, elapsed
    t0 = time.monotonic()
    with pytest.raises(httpx2.TimeoutException):
        get_hf_file_metadata(hf_hub_url(REPO, "config.json"), timeout=0.3)
    assert time.monotonic() - t0 < 1.5


def test_slow_server_default_retry_round_outlasts_etag_timeout(fake_hub, monkeypatch):
    """etag_timeout only bounds the first HEAD: the retry round uses a 60 s timeout, so a slow Hub still wins."""
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", constants.DEFAULT_ETAG_TIMEOUT)  # let the argument count
    fake_hub.add_repo(REPO, FILES)
    fake_hub.set_fault(REPO, "slow", seconds=0.4)
    t0 = time.monotonic()
    path = hf_hub_download(REPO, "config.json", etag_timeout=0.1)
    assert Path(path).read_bytes() == FILES["config.json"]
    assert time.monotonic() - t0 < 3
    assert [m for m, _ in _resolve_requests(fake_hub)] == ["HEAD", "HEAD", "GET"]


def test_truncated_download_errors_and_leaves_no_complete_file(fake_hub, hub_fail_fast):
    fake_hub.add_repo(REPO, FILES)
    fake_hub.set_fault(REPO, "truncate", nbytes=100)
    t0 = time.monotonic()
    # 2.4.0 lets the raw httpx2 error escape (after 5 resume attempts, sleeping 1 s each without fail_fast)
    with pytest.raises(httpx2.RemoteProtocolError):
        hf_hub_download(REPO, "model.safetensors")
    assert time.monotonic() - t0 < 2
    assert hub_fail_fast == [1] * 5
    assert len(_resolve_requests(fake_hub, "GET")) == 6
    blobs, pointers = _blobs_and_pointers(fake_hub.cache_dir)
    assert blobs == [] and pointers == []  # no blob, no *.incomplete, no snapshot entry
    # the file is not reported as cached either
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "model.safetensors", local_files_only=True)
    fake_hub.clear_faults()
    path = hf_hub_download(REPO, "model.safetensors")
    assert Path(path).read_bytes() == FILES["model.safetensors"]


def test_transient_truncation_is_retried(fake_hub, hub_fail_fast):
    fake_hub.add_repo(REPO, FILES)
    fake_hub.set_fault(REPO, "truncate", nbytes=100, times=1)
    path = hf_hub_download(REPO, "model.safetensors")
    assert Path(path).read_bytes() == FILES["model.safetensors"]
    assert len(_resolve_requests(fake_hub, "GET")) == 2


def test_connection_refused(fake_hub, monkeypatch):
    use_endpoint(monkeypatch, unused_port_url())
    sleeps = []
    monkeypatch.setattr(_http, "time", _time_without_sleep(sleeps))
    # default: the retry round would sleep 23 s
    with pytest.raises(LocalEntryNotFoundError) as info:
        hf_hub_download(REPO, "config.json")
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    assert sleeps == DEFAULT_BACKOFF
    # fail fast
    fail_fast(monkeypatch)
    t0 = time.monotonic()
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "config.json")
    assert time.monotonic() - t0 < 0.5
    t0 = time.monotonic()
    with pytest.raises(httpx2.ConnectError):  # not an OSError: catch httpx2 errors (or Exception) explicitly
        get_hf_file_metadata(hf_hub_url(REPO, "config.json"), timeout=1)
    assert time.monotonic() - t0 < 0.5


def test_offline_mode_sends_nothing(fake_hub, monkeypatch):
    fake_hub.add_repo(REPO, FILES)
    cached = hf_hub_download(REPO, "config.json")
    fake_hub.clear_requests()
    set_offline(monkeypatch, True)
    assert is_offline_mode()
    assert hf_hub_download(REPO, "config.json") == cached
    with pytest.raises(LocalEntryNotFoundError) as info:
        hf_hub_download(REPO, "model.safetensors")
    assert isinstance(info.value.__cause__, OfflineModeIsEnabled)
    with pytest.raises(OfflineModeIsEnabled):
        get_hf_file_metadata(hf_hub_url(REPO, "config.json"))
    with pytest.raises(OfflineModeIsEnabled):
        HfApi().model_info(REPO)
    assert fake_hub.requests == []
    set_offline(monkeypatch, False)
    assert Path(hf_hub_download(REPO, "model.safetensors")).read_bytes() == FILES["model.safetensors"]


# -- api / snapshot_download -------------------------------------------------------------------------------
def test_model_info_and_snapshot_download(fake_hub):
    import huggingface_hub

    sha = fake_hub.add_repo(REPO, FILES)
    info = HfApi().model_info(REPO)
    assert info.id == REPO and info.sha == sha
    assert sorted(s.rfilename for s in info.siblings) == sorted(FILES)
    assert huggingface_hub.model_info(REPO).sha == sha  # module-level HfApi uses the fake endpoint too
    v2 = fake_hub.add_repo(REPO, {"a.txt": b"a"}, revision="v2")
    assert HfApi().model_info(REPO, revision="v2").sha == v2
    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("nobody/nothing")
    with pytest.raises(RevisionNotFoundError):
        HfApi().model_info(REPO, revision="nope")

    folder = Path(snapshot_download(REPO))
    assert folder.name == sha
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == FILES
    assert ("GET", f"/api/models/{REPO}/revision/main") in fake_hub.requests
    assert any(p.startswith(f"/api/models/{REPO}/tree/{sha}") for _, p in fake_hub.requests)

    tree = {f.path: type(f).__name__ for f in HfApi().list_repo_tree(REPO)}
    assert tree == {"config.json": "RepoFile", "model.safetensors": "RepoFile", "vae": "RepoFolder"}
    assert [f.path for f in HfApi().list_repo_tree(REPO, path_in_repo="vae")] == ["vae/config.json"]


def test_use_endpoint_patches_constants(fake_hub):
    assert constants.ENDPOINT == fake_hub.url
    assert hf_hub_url(REPO, "config.json").startswith(fake_hub.url + "/")
    assert constants.HF_HUB_CACHE == str(fake_hub.cache_dir)
    assert not is_offline_mode()
