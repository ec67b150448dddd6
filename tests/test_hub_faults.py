"""Loading from a failing Hub (tests/fakehub.py), with huggingface_hub's real retry behaviour.

No test here uses `hub_fail_fast`: the wall-clock bounds are those of the production code.
"""

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import torch

import fakehub
import vae_demo.hub.download as vae_hub  # the limits and the deadline live where the downloads are made
import vae_demo.hub.loading as loading
from fakehub import set_offline, unused_port_url, use_endpoint
from vae_demo import ModelLoadError, load_vae
from vae_demo.serving.registry import ModelRegistry

REPO = "someone/tiny-vae"


@pytest.fixture
def repo_files(tiny_folder) -> dict:
    return {p.name: p.read_bytes() for p in tiny_folder.iterdir() if p.is_file()}


def cache_files(hub) -> list:
    """Every file and link in the fake Hub's cache, relative to it (no directories)."""
    root = Path(hub.cache_dir)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def assert_no_partial_files(hub, filename=loading.WEIGHTS_NAME):
    files = cache_files(hub)
    assert not [f for f in files if f.endswith((".incomplete", ".tmp"))], files
    assert not [f for f in files if f.endswith("/" + filename)], files  # no snapshot entry for the failed file
    blobs = [f for f in files if "/blobs/" in f]
    for b in blobs:  # whatever blob is there is complete (the config): its name is its sha256
        assert hashlib.sha256((Path(hub.cache_dir) / b).read_bytes()).hexdigest() == Path(b).name


def fail_path(monkeypatch, part: str, status: int = 500, seconds: float = 0.0):
    """Make the fake Hub answer `status` (after `seconds`) to every request whose path contains `part`."""
    real = fakehub._Handler._faults_before_answer

    def faults(self, repo_id):
        if part in self.path:
            if seconds:
                self.server.hub._stopping.wait(seconds)
            self._json(status, {"error": "injected by the test"})
            return False
        return real(self, repo_id)

    monkeypatch.setattr(fakehub._Handler, "_faults_before_answer", faults)


def timed_failure(match: str, **kwargs):
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match=match) as info:
        load_vae(REPO, **kwargs)
    return info.value, time.monotonic() - t0


# --- success and cache ------------------------------------------------------------------------------------
def test_hub_model_loads_into_the_standard_cache_and_then_works_offline(fake_hub, repo_files, tiny_vae, monkeypatch):
    sha = fake_hub.add_repo(REPO, repo_files)
    vae = load_vae(REPO)
    z = torch.randn(2, 3)
    torch.testing.assert_close(vae.decode(z), tiny_vae.decode(z), rtol=0, atol=1e-6)  # channels-last convs: last-bit differences
    assert vae.info.folder == Path(fake_hub.cache_dir) / "models--someone--tiny-vae" / "snapshots" / sha
    # huggingface_hub's own cache lookup finds what we wrote (ref, pointer, blob named by its sha256)
    from huggingface_hub import hf_hub_download

    cached = hf_hub_download(REPO, loading.WEIGHTS_NAME, local_files_only=True)
    assert Path(cached).read_bytes() == repo_files[loading.WEIGHTS_NAME]
    fake_hub.clear_requests()
    set_offline(monkeypatch, True)
    torch.testing.assert_close(load_vae(REPO).decode(z), tiny_vae.decode(z), rtol=0, atol=1e-6)  # channels-last convs: last-bit differences
    assert fake_hub.requests == []


def test_a_hub_load_probes_the_config_once(fake_hub, repo_files):
    """One metadata request for config.json at the branch names the commit; everything else, the weights the config
    calls for included, is fetched from that commit (huggingface_hub's own per-file requests go to the commit's URL)."""
    fake_hub.add_repo(REPO, repo_files)

    def config_probes() -> int:
        return len([p for m, p in fake_hub.requests if m == "HEAD" and p.endswith("/resolve/main/" + loading.CONFIG_NAME)])

    load_vae(REPO)
    assert config_probes() == 1
    assert [p for m, p in fake_hub.requests if m == "GET" and p.endswith("/" + loading.WEIGHTS_NAME)]
    fake_hub.clear_requests()
    load_vae(REPO)  # all cached: the probe again (is there a newer commit?), and no transfer
    assert config_probes() == 1 and not [p for m, p in fake_hub.requests if m == "GET"]


def test_a_down_hub_falls_back_to_the_cache(fake_hub, repo_files):
    fake_hub.add_repo(REPO, repo_files)
    load_vae(REPO)
    fake_hub.set_fault(REPO, "http500")
    t0 = time.monotonic()
    assert load_vae(REPO).config.latent_dim == 3
    assert time.monotonic() - t0 < 5


# --- the repo is wrong --------------------------------------------------------------------------------------
def test_repo_not_found(fake_hub):
    err, elapsed = timed_failure(f"{REPO}.*not found")
    assert elapsed < 5


def test_config_not_found(fake_hub, repo_files):
    fake_hub.add_repo(REPO, {loading.WEIGHTS_NAME: repo_files[loading.WEIGHTS_NAME]})
    timed_failure(f"{REPO} has no config.json")


def test_revision_not_found(fake_hub, repo_files):
    fake_hub.add_repo(REPO, repo_files)
    timed_failure("has no revision 'v9'", revision="v9")


def test_pickle_only_repo_is_refused_and_the_pickle_never_fetched(fake_hub, repo_files, tiny_vae, monkeypatch, tmp_path):
    torch.save(tiny_vae.state_dict(), tmp_path / "w.bin")
    fake_hub.add_repo(REPO, {"config.json": repo_files["config.json"], "pytorch_model.bin": (tmp_path / "w.bin").read_bytes()})
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    timed_failure(f"{REPO} has no model.safetensors.*never unpickles")
    assert not [p for _, p in fake_hub.requests if "pytorch_model.bin" in p]
    assert not [f for f in cache_files(fake_hub) if "pytorch_model" in f]


def test_unknown_architecture(fake_hub, repo_files):
    cfg = json.loads(repo_files["config.json"])
    cfg["architecture"] = "transformer"
    fake_hub.add_repo(REPO, dict(repo_files, **{"config.json": json.dumps(cfg)}))
    timed_failure(f"'{REPO}' is not a model this app knows how to build")


def test_config_whose_shapes_do_not_match_the_weights(fake_hub, repo_files):
    cfg = json.loads(repo_files["config.json"])
    cfg["latent_dim"] = 5
    fake_hub.add_repo(REPO, dict(repo_files, **{"config.json": json.dumps(cfg)}))
    timed_failure(f"weights of '{REPO}' do not match its config")


def test_truncated_safetensors_file(fake_hub, repo_files):
    w = repo_files[loading.WEIGHTS_NAME]
    fake_hub.add_repo(REPO, dict(repo_files, **{loading.WEIGHTS_NAME: w[: len(w) // 2]}))
    timed_failure(f"weights of '{REPO}' do not match its config or are damaged")


@pytest.mark.parametrize("change, words", [
    ({"hidden_dim": 10**9}, "too large.*weights"),
    ({"image_size": 2**20, "hidden_channels": [1] * 20}, "too large.*image_size"),
    ({"hidden_channels": [100000, 1], "block_convs": 0}, "too large"),
    ({"latent_dim": -3}, "not a model this app knows"),
    ({"image_size": 28.5}, "not a model this app knows"),
])
def test_configs_that_would_exhaust_the_server_are_refused_before_allocating(fake_hub, repo_files, change, words):
    cfg = dict(json.loads(repo_files["config.json"]), **change)
    fake_hub.add_repo(REPO, dict(repo_files, **{"config.json": json.dumps(cfg)}))
    _, elapsed = timed_failure(words)
    assert elapsed < 5


def test_weights_over_the_size_limit_are_not_downloaded(fake_hub, repo_files, monkeypatch):
    monkeypatch.setattr(vae_hub, "MAX_MODEL_BYTES", 1000)
    fake_hub.add_repo(REPO, repo_files)
    timed_failure("model.safetensors of .* MB; this app loads files up to")
    assert not [p for m, p in fake_hub.requests if m == "GET" and loading.WEIGHTS_NAME in p]


def test_a_hub_sending_a_bad_commit_id_cannot_write_outside_the_cache(fake_hub, repo_files, monkeypatch):
    monkeypatch.setattr(fakehub, "_commit_sha", lambda *a: "../../../../escaped")
    fake_hub.add_repo(REPO, repo_files)
    timed_failure("no valid commit id")
    assert not (Path(fake_hub.cache_dir).parent.parent / "escaped").exists()
    assert cache_files(fake_hub) == []


# --- the Hub fails ------------------------------------------------------------------------------------------
def test_http_500_everywhere_fails_fast_and_names_the_repo(fake_hub, repo_files):
    fake_hub.add_repo(REPO, repo_files)
    fake_hub.set_fault(REPO, "http500")
    _, elapsed = timed_failure(f"Could not load {REPO}: the Hub answered HTTP 500, and the model is not in the local cache")
    assert elapsed < 5
    assert len(fake_hub.requests) == 1  # no retry round


def test_http_500_on_the_weights_after_a_good_probe_fails_fast(fake_hub, repo_files, monkeypatch):
    """hf_hub_download alone would retry this for ~23 s (1+2+4+8+8); the probe before it answers at once."""
    fake_hub.add_repo(REPO, repo_files)
    fail_path(monkeypatch, loading.WEIGHTS_NAME, 500)
    _, elapsed = timed_failure(f"Could not download {REPO}: the Hub answered HTTP 500")
    assert elapsed < 5
    assert_no_partial_files(fake_hub)


def test_http_500_on_the_weights_download_only(fake_hub, repo_files, monkeypatch):
    fake_hub.add_repo(REPO, repo_files)
    real = fakehub._Handler._faults_before_answer

    def faults(self, repo_id):  # HEAD answers; the GET of the weights gets a 503
        if self.command == "GET" and loading.WEIGHTS_NAME in self.path:
            self._json(503, {"error": "injected by the test"})
            return False
        return real(self, repo_id)

    monkeypatch.setattr(fakehub._Handler, "_faults_before_answer", faults)
    _, elapsed = timed_failure(f"Could not download {REPO}: the Hub answered HTTP 503")
    assert elapsed < 5
    assert_no_partial_files(fake_hub)


def test_connection_refused(fake_hub, monkeypatch):
    use_endpoint(monkeypatch, unused_port_url())
    _, elapsed = timed_failure(f"Could not load {REPO}: the Hub could not be reached .*not in the local cache")
    assert elapsed < 5


def test_truncated_transfer_is_a_clear_error_and_leaves_no_half_file(fake_hub, repo_files):
    """hf_hub_download resumes a cut transfer a few times (about 1 s apart), then raises httpx2's error: a clear message."""
    fake_hub.add_repo(REPO, repo_files)
    fake_hub.set_fault(REPO, "truncate", nbytes=len(repo_files["config.json"]) + 10)
    err, elapsed = timed_failure(f"Could not download {REPO}: the transfer was cut off")
    assert elapsed < 10 and "Nothing was saved" in str(err)
    assert_no_partial_files(fake_hub)
    fake_hub.clear_faults()
    assert load_vae(REPO).config.latent_dim == 3  # nothing damaged was picked up


def test_a_dropped_transfer_is_resumed(fake_hub, repo_files, tiny_vae):
    fake_hub.add_repo(REPO, repo_files)
    fake_hub.set_fault(REPO, "truncate", nbytes=len(repo_files["config.json"]) + 10, times=2)  # config GET, weights GET
    z = torch.randn(1, 3)
    torch.testing.assert_close(load_vae(REPO).decode(z), tiny_vae.decode(z), rtol=0, atol=1e-6)  # channels-last convs: last-bit differences
    gets = [p for m, p in fake_hub.requests if m == "GET" and loading.WEIGHTS_NAME in p]
    assert len(gets) == 2


def test_slow_hub_with_the_default_timeouts(fake_hub, repo_files):
    fake_hub.add_repo(REPO, repo_files)
    fake_hub.set_fault(REPO, "slow", seconds=30)
    _, elapsed = timed_failure(f"Could not load {REPO}: the Hub could not be reached \\(ReadTimeout\\)")
    assert loading.HUB_TIMEOUT - 0.5 < elapsed < 10


def test_slow_hub_is_bounded_by_the_deadline(fake_hub, repo_files, monkeypatch):
    """Each answer comes within the per-request timeout, but together they would take too long."""
    monkeypatch.setattr(vae_hub, "HUB_DEADLINE", 2.0)
    fake_hub.add_repo(REPO, repo_files)
    fake_hub.set_fault(REPO, "slow", seconds=0.8)
    err, elapsed = timed_failure(f"Downloading {REPO} from the Hugging Face Hub took longer than 2 s")
    assert elapsed < 4
    assert_no_partial_files(fake_hub)


def test_a_failed_load_leaves_the_loaded_models_serving(fake_hub, repo_files):
    reg = ModelRegistry(torch.device("cpu"))
    reg.load("mnist")
    fake_hub.add_repo(REPO, repo_files)
    fake_hub.set_fault(REPO, "truncate", nbytes=10)
    with pytest.raises(ModelLoadError, match=REPO):
        reg.load(REPO, allow_local=False)
    assert reg.names() == ["mnist"]
    with torch.inference_mode():
        assert reg.get("mnist").decode(torch.zeros(1, reg.get().config.latent_dim)).shape == (1, 1, 28, 28)


# --- what the run-time model box may name -------------------------------------------------------------------
@pytest.mark.parametrize("source", [
    "../checkpoints/mnist", "/etc", "/etc/passwd", "~", "~/.ssh", "./mnist", "mnist/../../etc", "a/b/c", "..\\..\\etc",
    "file:///etc/passwd", "http://127.0.0.1/x", "%2e%2e/etc", "owner/..", "../x", "a--b/c", "owner/.hidden", "owner/name.git",
    "owner/na me", "owner/name\x00", "x" * 300 + "/y",
])
def test_the_model_box_cannot_reach_local_paths(fake_hub, source):
    with pytest.raises(ModelLoadError):
        load_vae(source, allow_local=False)
    assert fake_hub.requests == []  # refused before asking the Hub


def test_the_model_box_accepts_bundled_names_without_the_network(fake_hub):
    assert load_vae("mnist", allow_local=False).info.folder == loading.CHECKPOINTS_DIR / "mnist"
    assert fake_hub.requests == []


@pytest.mark.parametrize("revision", ["../../etc", "/abs", "a/../../b", "-rf"])
def test_revisions_cannot_escape_the_cache(fake_hub, revision):
    with pytest.raises(ModelLoadError, match="not a valid revision"):
        load_vae(REPO, revision=revision)
    assert fake_hub.requests == []


def test_cache_lookups_stay_in_the_cache(fake_hub, monkeypatch):
    set_offline(monkeypatch, True)
    with pytest.raises(ModelLoadError, match="offline"):
        load_vae("etc/passwd")
    assert os.listdir(fake_hub.cache_dir) == []


def test_download_snapshot_fetches_other_file_sets_and_reads_them_back_offline(fake_hub, monkeypatch):
    """The same bounded downloader for a diffusers-style repo: files in a subfolder, the snapshot root returned."""
    files = {"vae/config.json": b'{"_class_name": "AutoencoderTiny"}', "vae/diffusion_pytorch_model.safetensors": b"x" * 5000}
    sha = fake_hub.add_repo(REPO, files)
    wanted = tuple(files)
    folder = loading.download_snapshot(REPO, wanted, ("vae/latent_stats.json",))
    assert folder.name == sha and {k: (folder / k).read_bytes() for k in wanted} == files
    set_offline(monkeypatch, True)
    assert loading.download_snapshot(REPO, wanted) == folder
    with pytest.raises(ModelLoadError, match="not a Hub repo id"):
        loading.download_snapshot("../etc", wanted)
