"""Train your own: the settings and uploads a visitor sends, the trainer, the server's line of runs in their own
processes, the trained model as its trainer's run-time model, the download, and the command line."""

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT
from vae_demo.imaging.image_sets import MAX_RATIO, TrainInputError, read_images, zip_of
from vae_demo.models.recipe import SettingsError, check_settings

GOOD = dict(source="shapes", latent_dim=8, beta=1.0, seconds=3, image_size=32, seed=0)


def png(arr, mode=None, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, fmt)
    return buf.getvalue()


def write_zip(path: Path, entries: dict) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def squares(n: int, side: int = 40, colour: bool = False, seed: int = 0) -> np.ndarray:
    """n pictures of a light square on dark ground at random places -> (n, side, side[, 3]) uint8"""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, side, side, 3) if colour else (n, side, side), np.uint8)
    for i in range(n):
        x, y = rng.integers(0, side // 2, 2)
        out[i, y : y + side // 2, x : x + side // 2] = (rng.integers(80, 255, 3) if colour else 255)
    return out


# --- settings -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,words", [
    ("beta", float("nan"), "finite"), ("beta", -1, "between 0"), ("beta", 1e9, "between 0"), ("beta", "lots", "number"),
    ("latent_dim", 0, "between 1"), ("latent_dim", 10**6, "between 1"), ("latent_dim", 2.5, "whole"),
    ("seconds", float("inf"), "finite"), ("seconds", -5, "between 1"), ("seconds", 10**7, "between 1"),
    ("image_size", 30, "one of"), ("source", "cats", "one of"), ("seed", -1, "between 0"), ("seconds", None, "number"),
])
def test_a_bad_setting_gets_a_sentence_that_names_it(field, value, words):
    with pytest.raises(SettingsError, match=words) as e:
        check_settings(**{**GOOD, field: value})
    assert field in str(e.value)


def test_good_settings_pass_as_numbers():
    s = check_settings(**{**GOOD, "latent_dim": "8", "seconds": 3.0})
    assert (s.latent_dim, s.seconds, s.source) == (8, 3.0, "shapes")


# --- the visitor's images -------------------------------------------------------------------------------------
def test_a_zip_with_traversal_names_writes_nothing_outside_and_its_images_are_read(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    pic = png(squares(1)[0])
    z = write_zip(tmp_path / "evil.zip", {"../escaped.png": pic, "/tmp/vae-demo-abs-escape.png": pic,
                                          "a/../../up.png": pic, "ok/1.png": pic})
    before = sorted(p.name for p in tmp_path.iterdir())
    got = read_images([z], 32)
    assert len(got.images) == 4 and got.images.shape[1:] == (1, 32, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing beside the zip
    assert list(work.iterdir()) == [] and not Path("/tmp/vae-demo-abs-escape.png").exists()


def test_a_zip_bomb_is_refused_by_what_it_inflates_to(tmp_path):
    z = write_zip(tmp_path / "bomb.zip", {"zeros.png": b"\0" * (30 * 2**20)})  # 30 MB of zeros: ~30 KB packed
    assert zipfile.ZipFile(z).infolist()[0].compress_size * MAX_RATIO < 30 * 2**20
    with pytest.raises(TrainInputError, match="zip bomb"):
        read_images([z], 32)


def test_non_images_are_skipped_and_counted_and_nothing_usable_is_a_sentence(tmp_path):
    z = write_zip(tmp_path / "mixed.zip", {"notes.txt": b"hello", "data.csv": b"1,2,3", "1.png": png(squares(1)[0]),
                                           "tiny.png": png(np.zeros((1, 1), np.uint8))})
    got = read_images([z], 16)
    assert len(got.images) == 1 and got.skipped == {"not images": 2, "under 8 px": 1}
    assert "2 not images" in got.summary()
    junk = write_zip(tmp_path / "junk.zip", {"a.txt": b"x", "b.png": png(np.zeros((1, 1), np.uint8))})
    with pytest.raises(TrainInputError, match="No usable images"):
        read_images([junk], 16)
    with pytest.raises(TrainInputError, match="No images were sent"):
        read_images([], 16)


def test_mixed_sizes_modes_and_an_animation_become_one_set(tmp_path):
    grey = squares(3)
    frames = [Image.fromarray(grey[0]), Image.fromarray(255 - grey[0])]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    files = {"a.png": png(grey[1]), "b.jpg": png(np.stack([grey[2]] * 3, -1), fmt="JPEG"),
             "c.png": png(np.asarray(Image.fromarray(grey[1]).convert("LA"))), "anim.gif": gif.getvalue(),
             "wide.png": png(np.zeros((20, 90), np.uint8))}
    paths = []
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    got = read_images(paths, 28)
    assert got.images.shape == (5, 1, 28, 28)  # all grey (the JPEG's equal channels too): one channel
    first = got.images[list(files).index("anim.gif"), 0]
    assert first[14, 14] > 200 or first.mean() < 128  # the first frame (a light square on black), not the negative
    colour = read_images(paths + [_write(tmp_path / "red.png", png(squares(1, colour=True)[0]))], 28)
    assert colour.channels == 3  # one colour image makes it a colour set


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- the trainer ----------------------------------------------------------------------------------------------
def test_a_few_seconds_on_shapes_lower_the_loss(tmp_path):
    from vae_demo.datasets.sources import open_source
    from vae_demo.training.in_app import train

    s = check_settings(**{**GOOD, "seconds": 6})
    events = []
    outcome = train(s, open_source("shapes", 32, 0), tmp_path / "model", tmp_path, events.append)
    rows = [e for e in events if e["kind"] == "loss"]
    first, last = rows[0]["rec"] + rows[0]["kl"], rows[-1]["rec"] + rows[-1]["kl"]
    assert last < 0.6 * first, (first, last)
    assert any(e["kind"] == "preview" for e in events) and outcome["images_seen"] > 0
    assert json.loads((tmp_path / "model" / "training.json").read_text())["source"] == "shapes"


def test_the_faces_source_draws_the_generators_faces_in_order_and_more_after_each_step():
    """The Train tab's faces: the generator's faces 0, 1, 2, ... of the run's seed, 64 before the first step and more
    after each, as the generator draws them (here at their own 64 px)"""
    pytest.importorskip("python_avatars", reason="faces need python-avatars and resvg-py (requirements.txt)")
    from vae_demo.datasets import faces
    from vae_demo.datasets.sources import open_source

    source = open_source("faces", 64, 3)
    first = source.n
    source.after_step()
    assert first == 64 and source.n > first
    drawn, _ = faces.render_faces(source.n, seed=3)
    assert torch.equal(source.pool[: source.n], faces.to_tensor(drawn, torch.uint8))


def test_twenty_seconds_on_digits_reconstruct_most_digits_closer_to_themselves_than_to_the_others(tmp_path, examples):
    from vae_demo.datasets.sources import open_source
    from vae_demo.hub.loading import load_vae
    from vae_demo.training.in_app import train

    s = check_settings(**{**GOOD, "source": "digits", "image_size": 28, "latent_dim": 16, "seconds": 20})
    train(s, open_source("digits", 28, 0), tmp_path / "model", tmp_path)
    vae = load_vae(str(tmp_path / "model"))
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("L"), np.float32) / 255)[None] for p in examples])
    with torch.inference_mode():
        rec = vae.decode(vae.encode(x)[0])
    dist = ((rec[:, None] - x[None]) ** 2).flatten(2).mean(2)  # (reconstruction, digit)
    assert (dist.argmin(1) == torch.arange(len(x))).float().mean() >= 0.8, dist.argmin(1)


# --- the server's runs ----------------------------------------------------------------------------------------
@pytest.fixture
def service():
    from vae_demo.serving.service import DemoService

    s = DemoService.from_sources(["mnist"], torch.device("cpu"))
    yield s
    s.jobs.close()


def wait(job, timeout=90):
    end = time.monotonic() + timeout
    while not job.finished and time.monotonic() < end:
        time.sleep(0.2)
    assert job.finished, job.state
    return job


def test_a_run_trains_in_its_own_process_and_its_model_is_its_trainers(service, tmp_path):
    from vae_demo.hub.loading import load_vae
    from vae_demo.serving.registry import as_owner

    job = wait(service.start_training(None, owner="alice", **GOOD))
    assert job.state == "done" and job.proc.pid != os.getpid() and job.rows and job.preview
    with as_owner("alice"):
        assert job.model_name in service.model_names()
        listed = {m["name"]: m for m in service.models()}[job.model_name]
        assert listed["trained_in_app"] is True and listed["training"]["latent_dim"] == 8
        assert listed["training"]["images_seen"] > 0 and listed["training"]["source"] == "shapes"
        assert {m["name"]: m for m in service.models()}["mnist"]["trained_in_app"] is False
        in_app = service.registry.get(job.model_name)
    with as_owner("bob"):
        assert job.model_name not in service.model_names()
        with pytest.raises(Exception, match="not a model you trained"):
            service.load_model("trained:" + job.model_name)
    # the download: unzipped, a folder load_vae takes, decoding as the app's copy does
    with zipfile.ZipFile(job.zip_path) as z:
        assert all(n.startswith(job.model_name + "/") for n in z.namelist())
        z.extractall(tmp_path)
    loaded = load_vae(str(tmp_path / job.model_name))
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(loaded.decode(z), in_app.decode(z))
    card = (tmp_path / job.model_name / "README.md").read_text()
    assert "| latent size | 8 |" in card and "push_to_hub" in card and "training_curves.png" in card


def test_one_run_at_a_time_the_next_waits_and_stop_keeps_what_was_learned(service):
    first = service.start_training(None, owner="alice", **{**GOOD, "seconds": 60})
    second = service.start_training(None, owner="bob", **GOOD)
    with pytest.raises(SettingsError, match="already"):
        service.start_training(None, owner="alice", **GOOD)
    end = time.monotonic() + 60
    while len(first.rows) < 3 and time.monotonic() < end:
        time.sleep(0.2)
    assert first.state == "training" and second.state == "waiting" and service.jobs.place(second) == 1
    assert service.stop_training(owner="alice")
    wait(first)
    assert first.state == "stopped" and first.model_name and first.outcome["stopped"]
    assert first.outcome["seconds_trained"] < 30
    wait(second)
    assert second.state == "done"


def test_a_killed_run_fails_with_a_sentence_and_the_next_one_trains(service):
    job = service.start_training(None, owner="alice", **{**GOOD, "seconds": 60})
    end = time.monotonic() + 60
    while not job.rows and time.monotonic() < end:
        time.sleep(0.2)
    assert service.jobs.kill_current()
    wait(job)
    assert job.state == "failed" and "server is fine" in job.message and job.model_name is None
    assert wait(service.start_training(None, owner="alice", **GOOD)).state == "done"


def test_a_visitor_at_their_model_cap_cannot_start_a_run(service, monkeypatch):
    monkeypatch.setattr(service.registry.limits, "session_models", 0)
    with pytest.raises(Exception, match="Unload one first"):
        service.start_training(None, owner="carol", **GOOD)


def test_the_visitors_images_train_a_colour_model(service, tmp_path):
    z = tmp_path / "mine.zip"
    z.write_bytes(zip_of(squares(40, colour=True).transpose(0, 3, 1, 2)))
    job = wait(service.start_training([str(z)], owner="dana", **{**GOOD, "source": "images"}))
    assert job.state == "done" and "40 colour images" in job.message
    from vae_demo.serving.registry import as_owner

    with as_owner("dana"):
        vae = service.registry.get(job.model_name)
    assert vae.config.channels == 3 and vae.config.likelihood == "gaussian"


# --- the command line -----------------------------------------------------------------------------------------
def test_the_command_line_trains_on_a_zip_and_writes_a_folder_load_vae_takes(tmp_path):
    from vae_demo.hub.loading import load_vae

    z = tmp_path / "mine.zip"
    z.write_bytes(zip_of(squares(30)[:, None]))
    out = subprocess.run([sys.executable, "-m", "vae_demo.train", "--images", str(z), "--seconds", "2",
                          "--latent-dim", "4", "--image-size", "16", "--threads", "1", "--out", str(tmp_path / "mine")],
                         cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "read 30 grey images" in out.stdout
    vae = load_vae(str(tmp_path / "mine"))
    assert vae.config.latent_dim == 4 and vae.config.image_size == 16
    assert "--images YOUR_IMAGES" in (tmp_path / "mine" / "train_commands.txt").read_text()
    bad = subprocess.run([sys.executable, "-m", "vae_demo.train", "--source", "shapes", "--beta", "nan", "--out",
                          str(tmp_path / "x")], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "beta must be a finite number" in bad.stderr


# --- through the API of a running app -------------------------------------------------------------------------
def test_through_the_api_a_run_trains_while_reconstruct_answers_and_a_killed_run_leaves_the_server_serving(tmp_path, examples):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    from conftest import served_demo

    with served_demo(["mnist"]) as (url, demo):
        client = Client(url + "/", verbose=False)
        bad = tmp_path / "junk.zip"
        write_zip(bad, {"a.txt": b"not a picture"})
        with pytest.raises(AppError, match="No usable images"):
            client.predict(images=[handle_file(str(bad))], source="images", latent_dim=4, beta=1, seconds=2,
                           image_size=16, seed=0, api_name="/train")
        job = client.submit(images=[], source="digits", latent_dim=8, beta=1, seconds=6, image_size=28, seed=0,
                            api_name="/train")
        answered, end = 0, time.monotonic() + 60
        while not job.done() and time.monotonic() < end:
            rec = client.predict(image=handle_file(str(examples[3])), api_name="/reconstruct")
            answered += rec[0] is not None
        result = job.result()
        info = result[-1]
        assert info["state"] == "done" and info["model"].startswith("trained-digits-") and answered >= 3
        listed = {m["name"]: m for m in client.predict(api_name="/models")}
        assert listed[info["model"]]["trained_in_app"] is True
        assert listed[info["model"]]["training"]["image_size"] == 28
        sheet, _ = client.predict(model=info["model"], n=4, seed=0, temperature=1.0, api_name="/sample")
        assert Image.open(sheet).size[0] > 28  # the trained model samples by its name
        rec = client.predict(image=handle_file(str(examples[3])), model=info["model"], api_name="/reconstruct")
        assert "pca_mse" in rec[1]  # the PCA baseline was fitted beside the model
        other = Client(url + "/", verbose=False)
        assert info["model"] not in {m["name"] for m in other.predict(api_name="/models")}
        # a run whose process is killed: a sentence, and the server goes on answering
        long = client.submit(images=[], source="shapes", latent_dim=8, beta=1, seconds=60, image_size=32, seed=0,
                             api_name="/train")
        jobs = demo.vae_service.jobs
        end = time.monotonic() + 60
        while jobs.training() is None and time.monotonic() < end:
            time.sleep(0.2)
        time.sleep(1.0)
        assert jobs.kill_current()
        info = long.result()[-1]
        assert info["state"] == "failed" and "server is fine" in info["message"]
        assert client.predict(image=handle_file(str(examples[3])), api_name="/reconstruct")[0] is not None



def test_a_run_that_outgrows_its_memory_cap_is_ended_with_a_sentence(service):
    service.jobs.max_rss_mb = 50  # any torch process is larger: the cap trips as soon as the child has imported
    job = wait(service.start_training(None, owner="erin", **{**GOOD, "seconds": 30}))
    assert job.state == "failed" and "VAE_DEMO_TRAIN_MAX_RSS_MB" in job.message
    service.jobs.max_rss_mb = 3072
    assert wait(service.start_training(None, owner="erin", **GOOD)).state == "done"


def test_a_trained_model_is_evicted_like_any_run_time_model_and_one_pick_brings_it_back(tiny_folder):
    from vae_demo.hub.loading import ModelLoadError
    from vae_demo.serving.registry import Limits, ModelRegistry, as_owner

    from vae_demo.serving.registry import model_megabytes

    registry = ModelRegistry(torch.device("cpu"), Limits(session_models=3))
    registry.load("mnist")
    one = model_megabytes(registry.add_trained(tiny_folder, "trained-shapes-1", "alice", {"source": "shapes", "latent_dim": 3}))
    registry.limits.runtime_mb = 1.5 * one  # room for one
    registry.add_trained(tiny_folder, "trained-shapes-2", "bob", {"source": "shapes", "latent_dim": 3})  # no room for both
    with as_owner("alice"):
        assert registry.names() == ["mnist"] and registry.evicted() == {"trained-shapes-1": "trained:trained-shapes-1"}
        with pytest.raises(ModelLoadError, match="unloaded to make room"):
            registry.get("trained-shapes-1")
    with pytest.raises(ModelLoadError, match="not a model you trained"):
        registry.load_for("trained:trained-shapes-1", "bob")
    assert registry.load_for("trained:trained-shapes-1", "alice").info.name == "trained-shapes-1"
    with as_owner("alice"):
        assert "trained-shapes-1" in registry.names() and registry.describe()[-1]["trained_in_app"] is True
    registry.forget_trained("trained-shapes-2")
    with pytest.raises(ModelLoadError):
        registry.load_for("trained:trained-shapes-2", "bob")


def test_the_train_tab_shows_a_recorded_run_of_the_same_trainer_before_a_visitor_trains():
    """checkpoints/recorded-run: the loss rows and last picture of `python -m vae_demo.train --source digits` (its README
    says how); the reconstruction term fell over the run and the picture is the trainer's preview (three rows)"""
    from ui.train import recorded_line
    from vae_demo.serving.train_endpoints import TrainEndpoints

    rec = TrainEndpoints().recorded_run()
    assert rec is not None and rec["run"]["source"] == "digits" and rec["run"]["images_seen"] > 0
    rows = rec["rows"]
    assert len(rows) >= 10 and rows[-1]["rec"] < rows[0]["rec"] and rows[-1]["t"] > rows[0]["t"]
    picture = Image.open(rec["preview"])
    assert picture.mode == "RGB" and picture.height > 3 * 28 and picture.width > picture.height
    assert "A recorded run" in recorded_line(rec) and f"{rec['run']['images_seen']:,} images seen" in recorded_line(rec)
