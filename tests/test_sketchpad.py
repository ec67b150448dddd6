"""The app's sketchpad (ui.common.Sketchpad): a stroke's answer decodes one of the pictures the page sends, not three,
and reads what Gradio's own sketchpad would give; what counts as a drawing is the same either way."""

import os
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio.components.image_editor import EditorData
from gradio.utils import get_upload_folder
from PIL import Image, ImageFile

from ui.common import has_ink, has_strokes, sketchpad
import as_uploaded
from vae_demo.imaging.uploads import sketch_image

ROOT = Path(__file__).resolve().parent.parent
DIGIT = sorted((ROOT / "checkpoints" / "mnist" / "examples").glob("*.png"))[3]
SIDE = 280


def pen_layer() -> Image.Image:
    """A black pen on a transparent 280-px layer, as the page's layer is."""
    digit = np.asarray(Image.open(DIGIT).convert("L"))
    return as_uploaded.as_upload(digit, "transparent-sketch", np.random.default_rng(0)).resize((SIDE, SIDE)).convert("RGBA")


def on_white(layer: Image.Image) -> Image.Image:
    return Image.alpha_composite(Image.new("RGBA", layer.size, "white"), layer)


@pytest.fixture()
def pad():
    with gr.Blocks():
        return sketchpad("draw")


@pytest.fixture()
def sent():
    """The page's three pictures for one stroke, in Gradio's upload folder: -> a function name -> FileData dict"""
    folder = Path(get_upload_folder()) / f"test-sketchpad-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    layer = pen_layer()
    for name, im in (("bg.png", Image.new("RGBA", layer.size, "white")), ("layer.png", layer),
                     ("composite.png", on_white(layer)), ("blank.png", Image.new("RGBA", layer.size, (0, 0, 0, 0)))):
        im.save(folder / name)
    return lambda name: {"path": str(folder / name), "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def decodes(monkeypatch) -> list:
    seen, real = [], ImageFile.ImageFile.load

    def load(self):
        if getattr(self, "_im", None) is None or self.tile:  # not decoded yet
            seen.append(self.size)
        return real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return seen


def preprocessed(pad, payload: dict):
    return pad.preprocess(pad.data_model.model_validate(payload, context={"validate_meta": True}))


def test_a_stroke_decodes_one_picture_and_reads_what_gradio_would(pad, sent, monkeypatch):
    payload = {"background": sent("bg.png"), "layers": [sent("layer.png")], "composite": sent("composite.png")}
    seen = decodes(monkeypatch)
    value = preprocessed(pad, payload)
    assert seen == []  # nothing decoded by the preprocessing itself
    assert has_strokes(value)
    image = sketch_image(value)
    assert len(seen) == 1  # the composite, once: for the check and for the reconstruction
    monkeypatch.undo()
    with gr.Blocks():
        plain = gr.Sketchpad(type="pil", image_mode="RGBA", format="png")  # Gradio's own, as the app's is set up
    gradios = plain.preprocess(EditorData.model_validate(payload, context={"validate_meta": True}))
    assert image.tobytes() == gradios["composite"].convert("RGBA").tobytes()
    assert [im.tobytes() for im in value["layers"]] == [im.tobytes() for im in gradios["layers"]]
    assert value["background"].tobytes() == gradios["background"].tobytes()


def test_pictures_never_used_leave_no_file_open(pad, sent):
    fds = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else None
    for _ in range(20):
        value = preprocessed(pad, {"background": sent("bg.png"), "layers": [sent("layer.png")], "composite": sent("composite.png")})
        assert has_strokes(value)
    del value
    if fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= fds


def test_what_counts_as_a_drawing_when_the_page_sends_a_composite(pad, sent):
    blank = {"background": sent("bg.png"), "layers": [sent("blank.png")], "composite": sent("bg.png")}
    assert not has_strokes(preprocessed(pad, blank))  # the page opening, the bin, everything erased
    drawn = {"background": sent("bg.png"), "layers": [sent("layer.png")], "composite": sent("composite.png")}
    assert has_strokes(preprocessed(pad, drawn))
    pen_on_clear = {"background": None, "layers": [sent("layer.png")], "composite": sent("layer.png")}
    assert has_strokes(preprocessed(pad, pen_on_clear))  # an API client's transparent composite
    # the same verdict the layers give, for every stroke a person might leave: from one dot to a whole digit
    layer = pen_layer()
    for keep in (1, 50, 400, 10_000):
        a = np.asarray(layer).copy()
        ink = np.argwhere(a[..., 3] > 0)[:keep]
        a[..., 3] = 0
        a[ink[:, 0], ink[:, 1], 3] = 255
        part = Image.fromarray(a, "RGBA")
        by_layers = has_strokes({"background": None, "layers": [part], "composite": None})
        assert has_strokes({"background": None, "layers": [part], "composite": on_white(part)}) == by_layers is True


def test_ink_is_what_shows_on_white():
    clear = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert not has_ink(clear) and not has_ink(Image.new("RGBA", (40, 40), "white"))
    faint = clear.copy()
    faint.putpixel((3, 3), (0, 0, 0, 1))  # 1/255 of black: nothing a person would see
    assert not has_ink(faint)
    dot = clear.copy()
    dot.putpixel((3, 3), (0, 0, 0, 255))
    paper = Image.new("RGB", (40, 40), "white")
    paper.putpixel((3, 3), (0, 0, 0))
    assert has_ink(dot) and has_ink(on_white(dot)) and has_ink(paper)
    assert has_ink(Image.new("L", (4, 4), 200))
