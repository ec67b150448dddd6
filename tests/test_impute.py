"""Fill in (/impute) and what an image costs in bits: the algorithms, the service and its sentences."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vae_demo.analysis import imputation as im
from vae_demo.errors import DemoError
from vae_demo.serving.service import DemoService


@pytest.fixture(scope="module")
def service():
    return DemoService.from_sources(["mnist", "mnist-cvae", "faces"], torch.device("cpu"))


def label_of(path) -> str:
    return path.name.split("_")[0]


def digit(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("L"), np.float32) / 255


def test_presets_hide_what_they_say():
    size = 28
    assert im.preset_mask("bottom half", size)[14:].all() and not im.preset_mask("bottom half", size)[:14].any()
    assert im.preset_mask("top half", size)[:14].all() and not im.preset_mask("top half", size)[14:].any()
    assert im.preset_mask("left half", size)[:, :14].all() and not im.preset_mask("left half", size)[:, 14:].any()
    assert im.preset_mask("right half", size)[:, 14:].all() and not im.preset_mask("right half", size)[:, :14].any()
    centre = im.preset_mask("centre square", size)
    assert centre.sum() == 14 * 14 and centre[14, 14] and not centre[0, 0]
    a, b = (im.preset_mask("random 50%", size, torch.Generator().manual_seed(s)) for s in (0, 1))
    assert 0.4 < a.float().mean() < 0.6 and not torch.equal(a, b)
    with pytest.raises(ValueError, match="centre square"):
        im.preset_mask("middle", size)


@pytest.mark.parametrize("method", im.METHODS)
def test_seen_pixels_are_never_changed(service, examples, method):
    _, info, _ = service.impute(str(examples[4]), "mnist", "left half", method, n=3, seed=2)
    x = digit(examples[4])  # the examples are test digits already framed like MNIST
    for c in info["completions"]:
        c = np.asarray(c)
        assert c.shape == (28, 28) and 0 <= c.min() and c.max() <= 1
        np.testing.assert_allclose(c[:, 14:], x[:, 14:], atol=6e-4)  # the JSON rounds to 3 decimals
    if method != "mean":  # every method but the mean fills something different from the background
        assert any(np.abs(np.asarray(c)[:, :14]).sum() > 1 for c in info["completions"])


def test_metropolis_reads_as_the_digit_more_often_than_the_masked_input(service, examples):
    """Ten test digits with their bottom half missing: the masked input is read as its digit less often than the
    completions are (8 completions each)."""
    masked = completed = 0
    for path in examples:
        _, info, _ = service.impute(str(path), "mnist", "bottom half", "metropolis", n=8, seed=0)
        masked += info["masked_input_reads_as"]["reads_as"] == label_of(path)
        completed += sum(r["reads_as"] == label_of(path) for r in info["reads_as"]) / 8
    assert completed > masked + 1, (completed, masked)


def test_metropolis_reports_its_chain_and_the_completions_differ(service, examples):
    row, info, spread = service.impute(str(examples[9]), "mnist", "bottom half", "metropolis", n=6, seed=3)
    assert info["steps"] == im.DEFAULT_STEPS and 0 < info["acceptance_rate"] <= 1
    assert info["missing_pixels"] == 28 * 14 and info["mask"] == "bottom half"
    # one row of equal tiles: the masked input and the six completions
    assert row.width > 6.5 * row.height and row.height < 200
    first = np.asarray(row)[row.height // 2 + 10, row.height // 2]  # the masked tile's lower half is the marker colour
    assert tuple(first) == (234, 88, 12)
    s = np.asarray(spread.convert("L"), np.float32)
    h = s.shape[0]
    assert s[h // 2:].mean() > s[: h // 2].mean() + 5  # the completions disagree only where pixels were missing
    again = service.impute(str(examples[9]), "mnist", "bottom half", "metropolis", n=6, seed=3)[1]
    assert again["completions"] == info["completions"]  # one seed, one answer


def test_a_painted_mask_hides_what_was_painted(service, examples):
    layer = Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # the page's paint layer: transparent but for the strokes
    ImageDraw.Draw(layer).rectangle((0, 0, 139, 279), fill=(234, 88, 12, 255))
    _, info, _ = service.impute(str(examples[3]), "mnist", layer, "pca", n=2)
    assert info["mask"] == "picture" and info["missing_pixels"] == 28 * 14
    white_on_black = Image.new("L", (28, 28), 0)
    white_on_black.paste(255, (0, 0, 28, 7))
    _, info, _ = service.impute(str(examples[3]), "mnist", white_on_black, "mean", n=1)
    assert info["missing_pixels"] == 28 * 7
    x = digit(examples[3])
    np.testing.assert_allclose(np.asarray(info["completions"][0])[7:], x[7:], atol=6e-4)


@pytest.mark.parametrize("kwargs, says", [
    (dict(mask=Image.new("L", (30, 28))), "must be 28×28 or a whole multiple"),
    (dict(mask=Image.new("L", (28, 28), 0)), "leaves every pixel seen"),
    (dict(mask=Image.new("L", (56, 56), 255)), "covers every pixel"),
    (dict(mask="middle"), "mask must be one of bottom half"),
    (dict(mask=""), "Give a mask"),
    (dict(method="gibbs"), "method must be one of metropolis"),
    (dict(n=0), "n must be a whole number from 1 to 16"),
    (dict(n=17), "n must be a whole number from 1 to 16"),
    (dict(n=float("nan")), "n must be a whole number"),
    (dict(n="eight"), "n must be a whole number"),
    (dict(seed=float("nan")), "seed must be a whole number"),
    (dict(steps=0), "steps must be a whole number from 1 to 500"),
    (dict(model="mnist-cvae"), "conditional"),
])
def test_bad_input_gets_a_sentence(service, examples, kwargs, says):
    args = dict(image=str(examples[2]), model="mnist", mask="bottom half", method="metropolis", n=4, seed=0)
    args.update(kwargs)
    with pytest.raises(DemoError, match=says):
        service.impute(**args)


def test_no_image_gets_a_sentence(service):
    with pytest.raises(DemoError, match="Give an image"):
        service.impute(None, "mnist")


def test_faces_fill_in_a_covered_mouth(service):
    """the lower third of a face covered: the completions bring back skin and a mouth, not the white page"""
    face = service.examples("faces")[0]
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (20, 40, 44, 52))  # the mouth's box on a 64 px face
    row, info, _ = service.impute(face, "faces", mask, "metropolis", n=2, seed=0)
    c = np.asarray(info["completions"][0])
    assert c.shape == (64, 64, 3)
    hole = c[40:52, 20:44]
    assert hole.mean() < 0.9 and hole.std() > 0.02  # not left white, not one flat colour
    assert len(info["reads_as"]) == 2 and "skin" in info["reads_as"][0]["reads_as"]


def test_bits_of_a_blank_image_are_far_below_a_scribble(service):
    blank = Image.new("L", (28, 28), 0)
    scribble = Image.new("L", (28, 28), 0)
    rng = np.random.default_rng(0)
    draw = ImageDraw.Draw(scribble)
    for _ in range(12):
        draw.line([tuple(rng.integers(2, 26, 2)) for _ in range(3)], fill=255, width=2)
    b0, text = service.bits(blank, "mnist", frame=False)
    b1, _ = service.bits(scribble, "mnist", frame=False)
    assert b1["iwae"] > 3 * b0["iwae"], (b0, b1)
    assert b0["elbo"] == pytest.approx(b0["rate"] + b0["distortion"], abs=0.2)
    assert b0["iwae"] <= b0["elbo"] + 0.5  # the IWAE bound is the tighter one
    assert f"{b0['png_bytes']} bytes" in text and "bits-back" in text


def test_every_bundled_card_gives_bits_per_dimension():
    from vae_demo.hub.loading import CHECKPOINTS_DIR, bundled_models

    for name in bundled_models():
        card = (CHECKPOINTS_DIR / name / "README.md").read_text()
        assert "| bits per dimension" in card, name
