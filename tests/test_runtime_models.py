"""Run-time models (loaded by a visitor by repo id) belong to that visitor, are capped, and are evicted least recently
used first; the bundled models are everyone's. Repos come from the fake Hub on 127.0.0.1."""


import pytest
import torch

from vae_demo.hub.loading import ModelLoadError
from vae_demo.models.vae import VAE, VAEConfig
from vae_demo.serving.registry import Limits, ModelRegistry, as_owner, model_megabytes

from conftest import TINY, served


def publish(hub, tmp_path, repo: str, hidden_dim: int = 16) -> float:
    """a tiny VAE as a Hub repo -> its megabytes"""
    torch.manual_seed(0)
    vae = VAE(VAEConfig(**{**TINY, "hidden_dim": hidden_dim}))
    folder = tmp_path / repo.replace("/", "--")
    vae.save_pretrained(folder)
    hub.add_folder(repo, folder)
    return model_megabytes(vae)


@pytest.fixture
def registry(fake_hub, tmp_path):
    mb = publish(fake_hub, tmp_path, "someone/a")
    for repo in ("someone/b", "someone/c", "someone/d", "other/e"):
        publish(fake_hub, tmp_path, repo)
    reg = ModelRegistry(torch.device("cpu"), Limits(session_models=2, runtime_mb=2.5 * mb))
    reg.load("mnist")
    return reg


def test_a_second_visitor_does_not_see_the_first_visitors_model(registry):
    registry.load_for("someone/a", "alice")
    with as_owner("alice"):
        assert registry.names() == ["mnist", "someone/a"] and registry.get("someone/a").config.latent_dim == 3
        assert [m["name"] for m in registry.describe()] == ["mnist", "someone/a"]
    with as_owner("bob"):
        assert registry.names() == ["mnist"] and [m["name"] for m in registry.describe()] == ["mnist"]
        with pytest.raises(ModelLoadError, match="No model named 'someone/a'"):
            registry.get("someone/a")
        assert registry.get("mnist").config.dataset == "mnist"  # the bundled models are everyone's


def test_the_same_repo_loaded_by_two_visitors_is_held_once(registry):
    a = registry.load_for("someone/a", "alice")
    mb = registry.runtime_megabytes()
    b = registry.load_for("someone/a", "bob")
    assert a is b and registry.runtime_megabytes() == mb
    registry.unload_for("someone/a", "alice")  # still bob's
    with as_owner("bob"):
        assert "someone/a" in registry.names()
    registry.unload_for("someone/a", "bob")
    assert registry.runtime_megabytes() == 0


def test_the_per_visitor_cap_refuses_with_a_sentence(registry):
    registry.load_for("someone/a", "alice")
    registry.load_for("someone/b", "alice")
    with pytest.raises(ModelLoadError, match=r"You already hold 2 loaded models \(someone/a, someone/b\).*Unload one first"):
        registry.load_for("someone/c", "alice")
    registry.load_for("someone/a", "alice")  # one already held is no new load
    registry.load_for("someone/c", "bob")  # another visitor has their own allowance


def test_the_server_cap_evicts_the_least_recently_used_and_tells_its_owner(registry):
    registry.load_for("someone/a", "alice")
    registry.load_for("someone/b", "bob")
    with as_owner("alice"):
        registry.get("someone/a")  # alice used hers last: bob's is now the least recently used
    registry.load_for("someone/c", "carol")  # 2.5 models' worth: one must go
    with as_owner("bob"):
        assert registry.names() == ["mnist"]
        with pytest.raises(ModelLoadError, match="someone/b was unloaded to make room for other visitors' models.*"
                                                 "Press Load again"):
            registry.get("someone/b")
        assert registry.evicted() == {"someone/b": "someone/b"}
    with as_owner("alice"):
        assert registry.get("someone/a")  # kept
    assert registry.get("mnist")  # bundled models are never evicted
    assert registry.runtime_megabytes() <= registry.limits.runtime_mb
    registry.load_for("someone/b", "bob")  # one load brings it back (and evicts the next least recently used)
    assert registry.evicted("bob") == {}


def test_the_allow_list_refuses_other_repos(fake_hub, tmp_path):
    publish(fake_hub, tmp_path, "someone/a")
    publish(fake_hub, tmp_path, "other/e")
    reg = ModelRegistry(torch.device("cpu"), Limits(allowed=("someone/*",)))
    reg.load_for("someone/a", "alice")
    with pytest.raises(ModelLoadError, match=r"'other/e' is not among the models this server may load \(someone/\*\)"):
        reg.load_for("other/e", "alice")


def test_without_the_load_box_nothing_loads(fake_hub, tmp_path):
    publish(fake_hub, tmp_path, "someone/a")
    reg = ModelRegistry(torch.device("cpu"), Limits(load_box=False))
    reg.load("mnist")
    assert reg.load_for("mnist", "alice").config.dataset == "mnist"  # picking a bundled model by name still works
    with pytest.raises(ModelLoadError, match="switched off"):
        reg.load_for("someone/a", "alice")


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("VAE_DEMO_MAX_SESSION_MODELS", "5")
    monkeypatch.setenv("VAE_DEMO_MAX_RUNTIME_MB", "300")
    monkeypatch.setenv("VAE_DEMO_ALLOWED_REPOS", "madebyollin/*, stabilityai/sd-vae-*")
    lim = Limits.from_env()
    assert (lim.session_models, lim.runtime_mb, lim.allowed) == (5, 300.0, ("madebyollin/*", "stabilityai/sd-vae-*"))
    monkeypatch.setenv("VAE_DEMO_MAX_RUNTIME_MB", "lots")
    with pytest.raises(SystemExit, match="VAE_DEMO_MAX_RUNTIME_MB must be a number"):
        Limits.from_env()


def test_through_the_api_each_client_sees_its_own_models(fake_hub, tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    publish(fake_hub, tmp_path, "someone/a")
    with served(["mnist"]) as url:
        alice, bob = (Client(url + "/", verbose=False) for _ in range(2))
        alice.predict("someone/a", api_name="/load_model")
        assert [m["name"] for m in alice.predict(api_name="/models")] == ["mnist", "someone/a"]
        assert [m["name"] for m in bob.predict(api_name="/models")] == ["mnist"]
        sheet, z = alice.predict("someone/a", 4, 0, 1.0, api_name="/sample")
        assert len(z) == 4 and len(z[0]) == 3
        with pytest.raises(AppError, match="No model named 'someone/a'"):
            bob.predict("someone/a", 4, 0, 1.0, api_name="/sample")


def test_a_flood_of_loads_keeps_within_the_caps(fake_hub, tmp_path):
    """The issue's flood: 30 different repos, three per visitor, ten visitors. Before the caps every load stayed in
    memory and every picker listed all of them; now each picker lists at most its own three and the server holds at
    most its budget (the oldest evicted)."""
    mb = max(publish(fake_hub, tmp_path, f"flood/m{i}", hidden_dim=16 + i) for i in range(30))
    reg = ModelRegistry(torch.device("cpu"), Limits(session_models=3, runtime_mb=8 * mb))
    reg.load("mnist")
    for i in range(30):
        reg.load_for(f"flood/m{i}", f"visitor{i // 3}")
        assert reg.runtime_megabytes() <= 8 * mb
    for v in range(10):
        names = reg.names(f"visitor{v}")
        assert names[0] == "mnist" and len(names) <= 4
    held = [n for v in range(10) for n in reg.names(f"visitor{v}")[1:]]
    assert len(held) <= 8
    assert sum(len(reg.evicted(f"visitor{v}")) for v in range(10)) == 30 - len(held)  # every other one was evicted


def test_an_evicted_model_is_listed_to_be_loaded_again_with_one_pick(fake_hub, tmp_path):
    from vae_demo.serving.model_endpoints import RELOAD
    from vae_demo.serving.service import DemoService

    mb = publish(fake_hub, tmp_path, "someone/a")
    publish(fake_hub, tmp_path, "someone/b")
    service = DemoService.from_sources(["mnist"], torch.device("cpu"), limits=Limits(runtime_mb=1.5 * mb))
    with as_owner("alice"):
        service.load_model("someone/a")
    with as_owner("bob"):
        service.load_model("someone/b")  # evicts alice's
    with as_owner("alice"):
        choices = service.picker_choices()
        assert ("someone/a — unloaded, pick to load again", RELOAD + "someone/a") in choices
        assert ("someone/a", "someone/a") not in choices
        assert service.load_model(choices[-1][1][len(RELOAD):]) == "someone/a"  # what picking it does (app.py)
        assert ("someone/a", "someone/a") in service.picker_choices()
