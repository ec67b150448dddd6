import json
import time

import pytest
import torch

import vae_demo.hub.loading as loading
from vae_demo import ModelLoadError, VAE, bundled_models, load_vae
from vae_demo.imaging.uploads import prepare


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if anything tries to reach the Hub."""
    import huggingface_hub

    def boom(*a, **k):
        raise AssertionError("a bundled or local model must load without any network call")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", boom)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", boom)


def test_bundled_mnist_loads_strictly_without_network(no_network):
    assert "mnist" in bundled_models()
    vae = load_vae("mnist", device="cpu")
    assert isinstance(vae, VAE) and not vae.training
    c = vae.config
    assert (c.latent_dim, c.image_size, c.channels, c.likelihood) == (c.latent_dim, 28, 1, "bernoulli")
    assert vae.info.folder == loading.CHECKPOINTS_DIR / "mnist"
    assert len(vae.info.examples) >= 10


def test_bundled_mnist_reconstructs_test_digits_better_than_the_mean_image(examples):
    vae = load_vae("mnist")
    x = torch.cat([prepare(p, 28, 1) for p in examples])  # (10, 1, 28, 28), one test digit per class
    with torch.inference_mode():
        x_hat = vae.decode(vae.encode(x)[0])
    vae_mse = (x_hat - x).pow(2).flatten(1).mean(1)
    # Leave-one-out mean image: the best constant guess that has not seen the digit itself.
    loo_mean = (x.sum(0, keepdim=True) - x) / (len(x) - 1)
    mean_mse = (loo_mean - x).pow(2).flatten(1).mean(1)
    assert (vae_mse < mean_mse).all(), (vae_mse, mean_mse)
    assert vae_mse.mean() < 0.5 * mean_mse.mean()
    # Each reconstruction is closer to its own input than to any other digit.
    dists = torch.cdist(x_hat.flatten(1), x.flatten(1))
    assert torch.equal(dists.argmin(1), torch.arange(len(x)))


def test_local_folder_loads_and_matches(tiny_vae, tiny_folder, no_network):
    vae = load_vae(str(tiny_folder))
    z = torch.randn(2, 3)
    torch.testing.assert_close(vae.decode(z), tiny_vae.decode(z), rtol=0, atol=1e-6)  # channels-last convs: last-bit differences
    assert vae.info.name == "tiny"


def test_strict_loading_rejects_renamed_or_mismatched_weights(tiny_folder, no_network):
    cfg = json.loads((tiny_folder / "config.json").read_text())
    cfg["latent_dim"] = 5  # shapes no longer match the stored tensors
    (tiny_folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="do not match"):
        load_vae(str(tiny_folder))


def test_unknown_config_field_is_a_clear_error(tiny_folder, no_network):
    cfg = json.loads((tiny_folder / "config.json").read_text())
    cfg["architecture"] = "transformer"
    (tiny_folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="not a model this app knows"):
        load_vae(str(tiny_folder))


def test_pickle_only_folder_is_refused_and_never_unpickled(tmp_path, tiny_vae, no_network, monkeypatch):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"image_size": 8, "latent_dim": 3, "hidden_channels": [4], "hidden_dim": 16}))
    torch.save(tiny_vae.state_dict(), folder / "pytorch_model.bin")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must never be called"))
    with pytest.raises(ModelLoadError, match="pickled"):
        load_vae(str(folder))


def test_truncated_safetensors_is_a_clear_error(tiny_folder, no_network):
    data = (tiny_folder / "model.safetensors").read_bytes()
    (tiny_folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="damaged|do not match"):
        load_vae(str(tiny_folder))


@pytest.mark.parametrize("source, words", [("./no/such/folder", "no model folder"), ("/definitely/missing", "no model folder"),
                                           ("not a repo", "not a bundled model"), ("", "No model")])
def test_mistyped_sources_are_explained(source, words, no_network):
    with pytest.raises(ModelLoadError, match=words):
        load_vae(source)


def test_runtime_box_cannot_read_local_folders(tiny_folder, no_network):
    with pytest.raises(ModelLoadError):
        load_vae(str(tiny_folder), allow_local=False)
    with pytest.raises(ModelLoadError):
        load_vae("../checkpoints/mnist", allow_local=False)
    assert load_vae("mnist", allow_local=False).info.name == "mnist"  # bundled names stay allowed


def test_unreachable_hub_fails_fast_with_a_message(monkeypatch, tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connection refused
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(hc, "HUGGINGFACE_CO_URL_TEMPLATE", f"http://127.0.0.1:{port}" + "/{repo_id}/resolve/{revision}/{filename}")
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError, match="could not be reached.*not in the local cache"):
        load_vae("someone/some-vae", cache_dir=str(tmp_path))
    assert time.monotonic() - t0 < 5


def test_offline_mode_is_honoured(monkeypatch, tmp_path):
    import inspect

    import huggingface_hub

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; the CLI test checks the real variable.
    monkeypatch.setattr(inspect.getmodule(huggingface_hub.is_offline_mode), "HF_HUB_OFFLINE", True)
    calls = []
    real = huggingface_hub.get_hf_file_metadata
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda *a, **k: calls.append(a) or real(*a, **k))
    with pytest.raises(ModelLoadError, match="offline"):
        load_vae("someone/some-vae", cache_dir=str(tmp_path))
    assert calls == []


def test_loading_skips_random_init_but_leaves_torch_init_as_it_was(tiny_vae, tiny_folder, no_network):
    """The model is built without random init and then loaded strictly: every weight is the file's; afterwards a
    new layer is randomly initialised again."""
    before = torch.nn.init.kaiming_uniform_
    loaded = load_vae(str(tiny_folder))
    for (name, a), b in zip(tiny_vae.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b.to(a.dtype)), name
    assert torch.nn.init.kaiming_uniform_ is before
    fresh = torch.nn.Linear(64, 64)
    assert fresh.weight.abs().sum() > 0 and fresh.weight.std() > 0.01
