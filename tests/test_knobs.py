"""Knobs with names (/edit), every digit in one hand (/analogy, mnist-cvae), a 2-D latent space (mnist-2d) and what β
does (/compare_betas): each claim checked where it could fail."""

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from vae_demo.analysis import directions as dirs
from vae_demo.training import directions as fitting
from vae_demo.models.classifier import classifier_for
from vae_demo.serving.inference import InputError
from vae_demo.analysis.evaluation_files import evaluation_of, map_to_latent
from vae_demo.analysis.morphometry import measure
from vae_demo.serving.service import DemoService

BETAS = ["mnist-beta-0.25", "mnist-beta-1", "mnist-beta-4", "mnist-beta-16"]


@pytest.fixture(scope="module")
def svc():
    return DemoService.from_sources(["mnist", "fashion-mnist", "mnist-cvae", "mnist-2d", "dsprites", *BETAS], torch.device("cpu"))


def stroke(width: int, slant: float = 0.0) -> torch.Tensor:
    """a white vertical stroke of `width` px on black, its top shifted `slant` px to the right (28 x 28)"""
    im = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(im).line([(14 - slant / 2, 26), (14 + slant / 2, 2)], fill=255, width=width)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255)[None, None]


# --- morphometry ------------------------------------------------------------------------
def test_morphometry_measures_thickness_slant_width_and_height_of_strokes():
    thin, thick = measure(stroke(2)), measure(stroke(5))
    assert 1.5 < thin["thickness"][0] < 3 and 4 < thick["thickness"][0] < 6.5
    assert abs(thin["slant"][0]) < 3  # upright
    right, left = measure(stroke(3, 10)), measure(stroke(3, -10))
    assert right["slant"][0] > 15 and left["slant"][0] < -15  # the top leans right: positive
    assert thick["width"][0] < 8 and 20 < thick["height"][0] < 27
    assert right["width"][0] < 8  # width is measured across the slant, not of the bounding box
    assert math.isnan(measure(torch.zeros(1, 1, 28, 28))["thickness"][0])


# --- fitting directions ------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(svc):
    """500 digits the bundled mnist model draws (no dataset needed), their codes, labels the classifier reads"""
    vae = svc.registry.get("mnist")
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        x = vae.decode(torch.randn(500, vae.config.latent_dim, generator=g))
        mu = vae.encode(x)[0]
    labels = classifier_for("mnist").predict(x).argmax(1)
    return vae, x, mu, labels, measure(x)


@pytest.mark.parametrize("attribute", ["thickness", "slant"])
def test_a_fitted_direction_edits_its_attribute_and_one_fitted_on_shuffled_values_does_not(generated, attribute):
    vae, x, mu, labels, m = generated
    clf = classifier_for("mnist")
    fit = slice(0, 400)
    real = fitting.with_step(attribute, attribute, fitting.fit_direction(mu[fit], m[attribute][:400], labels[fit], "class-covariance"), mu[fit])
    shuffled_values = np.random.default_rng(0).permutation(m[attribute][:400])
    control = fitting.with_step(attribute, attribute, fitting.fit_direction(mu[fit], shuffled_values, labels[fit], "class-covariance"), mu[fit])
    good = fitting.edit_test(vae, real, x[400:], labels[400:], clf)
    bad = fitting.edit_test(vae, control, x[400:], labels[400:], clf)
    assert good["right_direction"] >= 0.9 and good["change_per_amount"] > 0
    assert bad["right_direction"] < 0.8


def test_directions_round_trip_through_safetensors_and_a_mismatched_file_is_ignored(tmp_path):
    d = dirs.Direction(name="thickness", label="stroke thickness", vector=torch.nn.functional.normalize(torch.randn(32), dim=0),
                       step=0.7, unit="px", method="class-covariance", r2=0.8)
    dirs.save_directions([d], tmp_path / "d.safetensors")
    (back,) = dirs.load_directions(tmp_path / "d.safetensors", 32)
    assert back.name == "thickness" and back.step == pytest.approx(0.7) and torch.allclose(back.vector, d.vector)
    assert dirs.load_directions(tmp_path / "d.safetensors", 16) == []  # another model's latent size


# --- /edit through the service -------------------------------------------------------------
def test_models_lists_each_models_attributes(svc):
    by_name = {m["name"]: m for m in svc.models()}
    assert {"thickness", "slant", "width"} <= set(by_name["mnist"]["attributes"])
    assert "sneaker" in by_name["fashion-mnist"]["attributes"]
    assert by_name["dsprites"]["attributes"] == [] and by_name["mnist-cvae"]["conditional"]
    assert {by_name[n]["beta"] for n in BETAS} == {0.25, 1.0, 4.0, 16.0} and {by_name[n]["dataset"] for n in BETAS} == {"mnist"}


@pytest.mark.parametrize("attribute", ["thickness", "slant"])
def test_the_bundled_knob_moves_its_attribute_on_the_example_digits_and_keeps_the_digit(svc, examples, attribute):
    right = same = 0
    for path in examples:
        plus, info_plus = svc.edit(str(path), "mnist", attribute, 2.0)
        minus, info_minus = svc.edit(str(path), "mnist", attribute, -2.0)
        right += info_plus["after"][attribute] > info_minus["after"][attribute]
        same += info_plus["after"]["class"] == info_minus["after"]["class"] == path.stem.split("_")[0]
        assert isinstance(plus, Image.Image) and info_plus["before"] == info_minus["before"]
    assert right >= 9 and same >= 8


def test_towards_a_class_makes_the_classifier_read_that_class(svc):
    others = [p for p in svc.examples("fashion-mnist") if "sneaker" not in p]
    read = 0
    for path in others:
        _, info = svc.edit(path, "fashion-mnist", "sneaker", 4.0)
        read += info["after"]["class"] == "Sneaker" and info["after"]["sneaker"] > info["before"]["sneaker"]
    assert read >= len(others) - 2  # (the coat goes to Sandal first: docs/KNOBS.md has the per-class figures)


@pytest.mark.parametrize("model, attribute, amount, says", [
    ("mnist", "curliness", 1, "attribute must be one of"),
    ("mnist", "thickness", float("nan"), "amount must be a number"),
    ("mnist", "thickness", 1e9, "amount must be a number"),
    ("mnist", "thickness", "lots", "amount must be a number"),
    ("dsprites", "thickness", 1, "has no named attributes"),
    ("mnist-cvae", "thickness", 1, "has no named attributes"),
])
def test_edit_refuses_bad_requests_with_a_sentence(svc, examples, model, attribute, amount, says):
    with pytest.raises(InputError, match=says):
        svc.edit(str(examples[0]), model, attribute, amount)


def test_a_knob_moves_z_by_its_amount_in_standard_deviations(svc):
    d = evaluation_of(svc.registry.get("mnist")).directions[0]
    z = [0.0] * 32
    moved = torch.tensor(svc.knob_offset("mnist", z, [2.0]))
    assert torch.allclose(moved, 2.0 * d.step * d.vector, atol=1e-5)


# --- mnist-cvae ---------------------------------------------------------------------------
def test_the_conditional_decoder_changes_the_digit_when_only_the_label_changes(svc):
    vae, clf = svc.registry.get("mnist-cvae"), classifier_for("mnist")
    z = torch.randn(10, vae.config.latent_dim, generator=torch.Generator().manual_seed(1)) * 0.5
    with torch.inference_mode():
        for row in z:
            tiles = vae.decode(row.expand(10, -1), torch.arange(10))
            read = clf.predict(tiles).argmax(1)
            assert (read == torch.arange(10)).sum() >= 8
            assert (tiles[0] - tiles[1]).abs().mean() > 0.02


def test_analogy_writes_the_digit_as_ten_tiles_in_one_row_and_keeps_the_style(svc, examples):
    row, info = svc.analogy(str(examples[7]), "mnist-cvae")
    assert info == {"label": "7", "label_from": "classifier", "model": "mnist-cvae"}
    assert row.width > 9 * row.height  # ten tiles, one row
    given, info = svc.analogy(str(examples[7]), "mnist-cvae", label="1")
    assert info["label_from"] == "given" and given.tobytes() != row.tobytes()
    with pytest.raises(InputError, match="label must be one of"):
        svc.analogy(str(examples[7]), "mnist-cvae", label="eleven")
    with pytest.raises(InputError, match="does not support analogy"):
        svc.analogy(str(examples[7]), "mnist")


def test_a_conditional_sample_decodes_back_from_its_latent_and_needs_a_label_otherwise(svc):
    sheet, z = svc.sample("mnist-cvae", 10, 0)
    assert len(z[0]) == 8 + 10 and z[3][8 + 3] == 1.0  # z, then the one-hot of tile i's label (i mod 10)
    one = svc.decode(z[3], "mnist-cvae")
    assert one.size[0] > 28
    with pytest.raises(InputError, match="18 numbers"):
        svc.decode(z[3][:8], "mnist-cvae")
    vae = svc.registry.get("mnist-cvae")
    with pytest.raises(ValueError, match="needs the image's label"):
        vae.encode(torch.zeros(1, 1, 28, 28))


# --- mnist-2d -----------------------------------------------------------------------------
def test_the_2d_models_map_is_its_latent_space_and_a_point_decodes_exactly_that_z(svc):
    vae = svc.registry.get("mnist-2d")
    lm = evaluation_of(vae).latent_map
    assert torch.equal(map_to_latent(lm, 0.7, -1.2), torch.tensor([0.7, -1.2]))
    _, decoded, point = svc.map_view("mnist-2d", (0.7, -1.2))
    assert decoded.tobytes() == svc.decode([0.7, -1.2], "mnist-2d").tobytes()
    grid = svc.manifold("mnist-2d", n=15)
    assert grid.size == (15 * 28 * 2, 15 * 28 * 2)
    assert svc.manifold("mnist") is None


# --- what beta does -----------------------------------------------------------------------
def test_the_beta_family_trades_rate_for_distortion_on_one_image_and_on_the_test_set(svc, examples):
    assert [b for b, _ in svc.beta_family()] == [0.25, 1.0, 4.0, 16.0]
    recon, chart, samples, table = svc.compare_betas(str(examples[3]))
    rates = [r["rate"] for r in table]
    assert rates == sorted(rates, reverse=True)  # more beta, fewer nats in the code
    assert table[0]["distortion"] < table[-1]["distortion"]
    assert [r["test_rate"] for r in table] == sorted([r["test_rate"] for r in table], reverse=True)
    assert recon.height > samples.height / 2 and chart.width > 200


def test_compare_betas_needs_a_family_and_an_image():
    lone = DemoService.from_sources(["mnist"], torch.device("cpu"))
    with pytest.raises(InputError, match="differ only in β"):
        lone.compare_betas(None)


# --- the command line -----------------------------------------------------------------------
def test_the_cli_edits_writes_every_digit_and_compares_betas(tmp_path, examples, capsys):
    from vae_demo.__main__ import main

    assert main(["edit", str(examples[2]), "--attribute", "slant", "--amount", "2", "-o", str(tmp_path / "e.png"), "--device", "cpu"]) == 0
    assert "slant" in capsys.readouterr().out and (tmp_path / "e.png").is_file()
    assert main(["edit", str(examples[2]), "--attribute", "curliness", "-o", str(tmp_path / "x.png"), "--device", "cpu"]) == 2
    assert "attribute must be one of" in capsys.readouterr().err
    assert main(["analogy", str(examples[4]), "-o", str(tmp_path / "a.png"), "--device", "cpu"]) == 0
    with Image.open(tmp_path / "a.png") as im:
        assert im.width > 9 * im.height
    assert main(["betas", str(examples[4]), "-o", str(tmp_path / "b.png"), "--device", "cpu"]) == 0
    assert '"beta": 16.0' in capsys.readouterr().out
