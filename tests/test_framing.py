"""Framing an upload like the training data: a digit drawn or photographed as people make them comes back framed
like MNIST's own (close to the test digit it was made from, centred by mass), and what is not a drawing is said."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import as_uploaded
from vae_demo.models.classifier import classifier_for
from vae_demo.imaging.framing import SceneError, centre_of_mass, frame
from vae_demo.imaging.uploads import ImageError, prepare
from vae_demo.hub.loading import load_vae
from vae_demo.models.vae import VAEConfig
from vae_demo.serving.service import DemoService, image_arg, sketch_image

ROOT = Path(__file__).resolve().parent.parent
DIGITS = sorted((ROOT / "checkpoints" / "mnist" / "examples").glob("*.png"))
CLOTHES = sorted((ROOT / "checkpoints" / "fashion-mnist" / "examples").glob("*.png"))
SCENE = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"  # a photo of a person
# Mean squared error, framed re-made digit vs the test digit it was made from, over the 10 bundled digits: the
# worst kind measured 0.035-0.05 (thin strokes, ballpoint); a digit shifted by 2 px is ~0.1, another digit ~0.1.
MSE_BOUND = 0.07


def digit(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0


def shifted_mse(a: np.ndarray, b: np.ndarray, r: int = 1) -> float:
    """MSE up to a shift of r px (the framing places by rounding the centre of mass, as MNIST did)"""
    return min(float(((np.roll(a, (dy, dx), (0, 1)) - b) ** 2).mean()) for dy in range(-r, r + 1) for dx in range(-r, r + 1))


@pytest.mark.parametrize("kind", as_uploaded.KINDS)
def test_a_remade_digit_frames_close_to_the_test_digit_it_was_made_from(kind):
    errors, unframed = [], []
    for i, p in enumerate(DIGITS):
        img = as_uploaded.as_upload(digit(p), kind, np.random.default_rng([7, i]))
        x = frame(img, "mnist").image[0, 0].numpy()
        assert x.shape == (28, 28) and 0 <= x.min() and x.max() <= 1
        errors.append(shifted_mse(x, digit(p)))
        unframed.append(shifted_mse(prepare(img, 28, 1)[0, 0].numpy(), digit(p)))
    assert float(np.mean(errors)) < MSE_BOUND, (kind, errors)
    assert float(np.mean(errors)) < 0.6 * float(np.mean(unframed)), "framing must beat plain resizing"


def test_the_framed_digit_is_centred_by_mass_and_fits_20_px():
    for i, p in enumerate(DIGITS):
        img = as_uploaded.as_upload(digit(p), "drawn", np.random.default_rng(i))
        x = frame(img, "mnist").image[0, 0].numpy()
        cy, cx = centre_of_mass(x)
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5, (p.name, cy, cx)
        rows, cols = np.flatnonzero(x.max(1) > 0.05), np.flatnonzero(x.max(0) > 0.05)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 in (19, 20, 21), p.name  # the long side in 20 x 20


def test_the_classifier_reads_framed_drawings_as_the_digit_drawn():
    clf = classifier_for("mnist")
    kinds = ("drawn", "offcentre-small", "photo-blue-ink", "transparent-sketch", "jpeg-phone")
    xs, labels = [], []
    for k in kinds:
        for i, p in enumerate(DIGITS):
            xs.append(frame(as_uploaded.as_upload(digit(p), k, np.random.default_rng([3, i])), "mnist").image)
            labels.append(int(p.name[0]))
    pred = clf.predict(torch.cat(xs)).argmax(1).tolist()
    assert np.mean(np.array(pred) == np.array(labels)) >= 0.9


def test_a_digit_framed_as_mnist_is_left_alone_and_a_shifted_one_is_recentred():
    for p in DIGITS:
        d = digit(p)
        assert np.array_equal(frame(p, "mnist").image[0, 0].numpy(), np.round(d * 255) / 255)  # untouched
        moved = np.roll(d, (4, -3), (0, 1))  # still on the page, but off-centre
        again = frame(Image.fromarray((moved * 255).round().astype(np.uint8)), "mnist").image[0, 0].numpy()
        cy, cx = centre_of_mass(again)
        assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5 and shifted_mse(again, d) < MSE_BOUND


def test_fashion_framing_trims_fits_the_long_side_and_negates():
    for i, p in enumerate(CLOTHES):
        item = digit(p)
        photo = as_uploaded.as_upload(item, "photo-paper", np.random.default_rng(i), dataset="fashion-mnist")
        f = frame(photo, "fashion")
        x = f.image[0, 0].numpy()
        assert f.inverted  # a dark product on a light page comes back light on black
        rows, cols = np.flatnonzero(x.max(1) > 0.1), np.flatnonzero(x.max(0) > 0.1)
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 25, p.name  # long side to the frame
        assert shifted_mse(x, item, 2) < 0.05, p.name


@pytest.mark.parametrize("blank", [
    np.full((400, 600, 3), 255, np.uint8),
    np.clip(np.random.default_rng(0).normal(230, 5, (500, 500, 3)), 0, 255).astype(np.uint8),  # noisy paper
    np.zeros((280, 280, 4), np.uint8),  # an untouched transparent sketch canvas
    np.full((28, 28), 0, np.uint8),
])
def test_a_blank_canvas_gets_a_sentence(blank):
    with pytest.raises(ImageError, match="No drawing was found"):
        frame(blank, "mnist")


def test_a_speck_is_not_a_drawing():
    speck = np.zeros((28, 28), np.uint8)
    speck[10, 12] = 255
    for img in (speck, np.array([[0, 255]], np.uint8), np.pad(np.full((2, 2), 0, np.uint8), 300, constant_values=255)):
        with pytest.raises(ImageError, match="No drawing was found"):
            frame(img, "mnist")


def test_a_scene_photo_is_said_to_be_one_and_still_shown():
    with pytest.raises(SceneError, match="photo of a scene"):
        frame(str(SCENE), "mnist")
    service = DemoService.from_sources(["mnist"], torch.device("cpu"))
    rec, metrics, summary = service.reconstruct(str(SCENE), "mnist")
    assert "photo of a scene" in metrics["framing_note"]
    assert "This model knows 28×28 handwritten digits" in summary and "photo model" in summary
    assert len(service.encode(str(SCENE), "mnist")) == 32  # shown whole on every path, not refused on some
    assert service.as_seen(str(SCENE), "mnist").size == (224, 224)
    assert len(service.interpolate(str(SCENE), str(DIGITS[1]), "mnist", 3)[2]) == 3


def test_the_frame_switch_changes_what_the_model_sees():
    service = DemoService.from_sources(["mnist"], torch.device("cpu"))
    p = DIGITS[7]
    img = as_uploaded.as_upload(digit(p), "offcentre-small", np.random.default_rng(1))
    framed = np.asarray(service.as_seen(img, "mnist", frame=True).resize((28, 28), Image.BOX), np.float32) / 255
    plain = np.asarray(service.as_seen(img, "mnist", frame=False).resize((28, 28), Image.BOX), np.float32) / 255
    assert shifted_mse(framed, digit(p)) < shifted_mse(plain, digit(p)) / 2
    assert service.reconstruct(img, "mnist", True)[1]["reconstruction_class"] == p.name[0]


def test_reconstruct_reports_the_verdict_and_says_it():
    service = DemoService.from_sources(["mnist", "dsprites"], torch.device("cpu"))
    _, m, summary = service.reconstruct(str(DIGITS[3]), "mnist")
    assert m["input_class"] == "3" and m["reconstruction_class"] == "3"
    assert 0.5 < m["input_confidence"] <= 1 and 0 < m["reconstruction_confidence"] <= 1  # a blurry 3 may be less sure
    assert "reads as **3**" in summary
    _, m, _ = service.reconstruct(str(DIGITS[3]), "dsprites")
    assert "input_class" not in m  # no classifier for sprites


def test_sketchpad_values_are_images(tmp_path):
    layer = as_uploaded.as_upload(digit(DIGITS[2]), "transparent-sketch", np.random.default_rng(0))
    path = tmp_path / "layer.png"
    layer.save(path)
    white = tmp_path / "bg.png"
    Image.new("RGB", layer.size, "white").save(white)
    fd = lambda p: {"path": str(p), "meta": {"_type": "gradio.FileData"}}  # noqa: E731
    as_composite = image_arg({"background": None, "layers": [], "composite": fd(path)})
    as_layers = image_arg({"background": fd(white), "layers": [fd(path)], "composite": None})
    assert isinstance(as_composite, Image.Image) and as_composite.size == layer.size
    assert np.asarray(as_layers.convert("L")).min() < 50 and np.asarray(as_layers)[0, 0, 3] == 255  # ink on white
    service = DemoService.from_sources(["mnist"], torch.device("cpu"), upload_roots=[tmp_path])
    for value in (as_composite, {"background": fd(white), "layers": [fd(path)], "composite": None}):
        assert service.reconstruct(value, "mnist")[1]["reconstruction_class"] == "2"
    for bad in ({"layers": "nope"}, {"composite": 5}, {"composite": {"url": "http://example.com/x.png"}},
                {"background": None, "layers": [None], "composite": None}, {"layers": [fd(path)] * 9}):
        with pytest.raises(ImageError):
            sketch_image(bad)
    with pytest.raises(ImageError, match="only uploaded images"):  # a sketch's paths obey the upload roots too
        DemoService.from_sources(["mnist"], torch.device("cpu"), upload_roots=[tmp_path / "sub"]).reconstruct(
            {"composite": fd(path)}, "mnist")


def test_framing_is_declared_by_the_model():
    assert load_vae("mnist").config.framing == "mnist"
    assert load_vae("fashion-mnist").config.framing == "fashion"
    assert load_vae("dsprites").config.framing == "none"
    with pytest.raises(ValueError, match="framing"):
        VAEConfig(framing="square")
    with pytest.raises(ValueError, match="grey"):
        VAEConfig(channels=3, framing="mnist")


def test_what_counts_as_a_drawing_on_the_pad():
    from ui.common import blank_canvas, has_strokes

    page = blank_canvas()
    assert not has_strokes(page) and not has_strokes(None)  # the page opening, the bin
    stroke = Image.new("RGBA", page["background"].size, (0, 0, 0, 0))
    stroke.paste((0, 0, 0, 255), (100, 40, 120, 200))
    assert has_strokes({**page, "layers": [stroke]})
    assert has_strokes({"background": None, "layers": [], "composite": stroke})  # an API client's composite alone
    photo = as_uploaded.as_upload(digit(DIGITS[5]), "photo-paper", np.random.default_rng(0))
    assert has_strokes({"background": photo, "layers": [], "composite": None})  # a picture as the background


@pytest.mark.parametrize("framing,paths", [("mnist", DIGITS), ("fashion", CLOTHES)])
def test_a_grey_picture_saved_as_colour_frames_as_its_grey_self(framing, paths):
    """A black pen on white comes as RGBA, a grey scan often as RGB: framed on one channel, the same result."""
    rng = np.random.default_rng(3)
    for i, p in enumerate(paths[:4]):
        grey = as_uploaded.as_upload(digit(p), as_uploaded.KINDS[i % len(as_uploaded.KINDS)], rng).convert("L")
        a, b = frame(grey, framing), frame(grey.convert("RGB"), framing)
        assert a.box == b.box and a.inverted == b.inverted
        assert torch.allclose(a.image, b.image, atol=1e-5)
    tinted = grey.convert("RGB")
    tinted.putpixel((0, 0), (255, 0, 0))  # one pixel of colour: the colour path
    assert frame(tinted, framing).image.shape == (1, 1, 28, 28)


def test_a_pen_drawing_with_alpha_frames_as_it_did_on_three_channels():
    """The pad's black pen on a transparent layer is framed on one channel (grey with alpha): the same pixels as on
    the colour path, which a colour hidden under alpha 0 still takes."""
    from vae_demo.imaging.uploads import equal_channels, to_grey_or_rgb

    ink = Image.open(DIGITS[3]).convert("L").resize((200, 200), Image.BICUBIC)
    layer = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    layer.paste(Image.new("RGBA", (200, 200), (0, 0, 0, 255)), (40, 40), ink)  # anti-aliased edges: alpha 1..254
    hidden = layer.copy()
    hidden.putpixel((0, 0), (200, 10, 10, 0))  # invisible, but the channels now differ
    assert equal_channels(layer) and not equal_channels(hidden)
    a, b = frame(layer, "mnist"), frame(hidden, "mnist")
    assert a.box == b.box and a.inverted == b.inverted
    assert torch.equal(a.image, b.image)
    la = layer.convert("LA")
    assert np.array_equal(np.asarray(to_grey_or_rgb(la, 1)), np.asarray(to_grey_or_rgb(la.convert("RGBA"), 1)))
