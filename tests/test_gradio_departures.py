"""ui/gradio_departures.py: every departure from stock Gradio is guarded by the source it replaces and turned off,
all at once, by VAE_DEMO_STOCK_GRADIO=1. Each departure's own behaviour is tested beside it: test_gradio_queue,
test_gradio_traverse, test_sessions, test_postprocessed, test_sketchpad."""

import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from ui import gradio_departures as departures


@pytest.fixture
def stock(monkeypatch):
    monkeypatch.setenv(departures.SWITCH, "1")


@pytest.mark.parametrize("name", sorted(departures.FINGERPRINTS))
def test_the_installed_gradio_has_the_source_each_departure_was_written_for(name):
    """If this fails after a Gradio upgrade, that departure is off: compare the new source with the one it replaces
    (ui/gradio_departures.py says which), then update the copy and its fingerprint, or delete the departure."""
    assert departures.fingerprint_of(name) == departures.FINGERPRINTS[name]
    assert departures.active(name)


def test_the_switch_turns_every_departure_off(stock):
    assert not any(departures.active(name) for name in departures.FINGERPRINTS)
    img = Image.new("L", (4, 4))
    assert departures.png_file(img) is img  # Gradio saves it itself
    with gr.Blocks() as demo:
        pad = gr.ImageEditor(type="pil", image_mode="RGBA")
        button, out = gr.Button(), gr.JSON()
        departures.answered(button.click, lambda: [1.0], None, [out])
    assert departures.sketch_picture(pad, b"not read") is None
    assert [fn.postprocess for fn in demo.fns.values()] == [True]  # Gradio's own output processing


def test_the_switch_can_name_departures_to_turn_off_one_by_one(monkeypatch):
    monkeypatch.setenv(departures.SWITCH, "pngs-into-cache,queue-wake-ups")
    off = {name for name in departures.FINGERPRINTS if not departures.active(name)}
    assert off == {"PNGs into cache", "queue wake-ups"}


def test_a_changed_gradio_source_turns_that_departure_off_alone(monkeypatch):
    monkeypatch.setitem(departures.FINGERPRINTS, "PNGs into cache", "0" * 16)
    departures._matches.cache_clear()
    try:
        assert not departures.active("PNGs into cache") and departures.active("sketch decode")
    finally:
        departures._matches.cache_clear()


def test_png_file_writes_the_same_pixels_where_gradio_finds_its_own_copy():
    from gradio import processing_utils
    from gradio.utils import get_upload_folder

    img = Image.fromarray((np.arange(300 * 200) % 251).astype(np.uint8).reshape(200, 300), "L")
    path = departures.png_file(img)
    assert Path(path).parent.parent == Path(get_upload_folder()) and departures.png_file(img) == path
    with Image.open(path) as back:
        assert back.mode == "L" and np.array_equal(np.asarray(back), np.asarray(img))
    assert processing_utils.save_file_to_cache(path, get_upload_folder()) == path  # Gradio's postprocess: no second copy


def test_the_app_with_the_switch_set_patches_nothing_and_answers():
    """In a fresh process, as a server starts: the app's page with stock Gradio's queue, sessions and output walk."""
    code = """
import gradio.state_holder as sh
from gradio_client import utils as cu
import app
demo = app.create_demo(["mnist"], "cpu")
assert "start_processing" not in vars(demo._queue), "queue patched"
assert sh.SessionState.__name__ == "SessionState" and cu.async_traverse.__module__ == "gradio_client.utils"
assert all(fn.postprocess for fn in demo.fns.values()), "an event skips Gradio's postprocessing"
sheet, z = demo.vae_service.sample("mnist", 4)
print("ok", len(z))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                         env={**__import__("os").environ, departures.SWITCH: "1"})
    assert out.returncode == 0 and out.stdout.strip().endswith("ok 4"), out.stderr[-3000:]
