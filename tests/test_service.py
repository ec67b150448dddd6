import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vae_demo.imaging.uploads import ImageError
from vae_demo.serving.inference import InputError
from vae_demo.hub.loading import ModelLoadError
from vae_demo.serving.service import DemoService


@pytest.fixture(scope="module")
def service():
    import torch

    return DemoService.from_sources(["mnist"], torch.device("cpu"))


def test_reconstruct_handler_returns_images_and_metrics(service, examples):
    rec, metrics, summary = service.reconstruct({"path": str(examples[2])}, "mnist")
    seen = service.as_seen({"path": str(examples[2])}, "mnist")
    err = service.explain({"path": str(examples[2])}, "mnist")[1]
    assert all(isinstance(i, Image.Image) for i in (rec, seen, err))
    assert "PSNR" in summary
    assert rec.size == seen.size == err.size == (224, 224)
    with Image.open(examples[2]) as original:  # a 28x28 test digit, framed as MNIST's are: the model sees exactly it
        assert seen.reduce(8).tobytes() == original.convert("L").tobytes()
        unframed = service.as_seen({"path": str(examples[2])}, "mnist", frame=False)
        assert unframed.reduce(8).tobytes() == original.convert("L").tobytes()
    assert {"mse", "psnr", "kl", "reconstruction_nll", "elbo"} <= set(metrics)
    json.dumps(metrics)  # JSON-ready


def test_sample_handler_gives_a_sheet_of_n_samples_and_their_latents(service):
    sheet, z = service.sample("mnist", 5, 3, 1.0)
    assert len(z) == 5 and all(len(v) == 32 for v in z)
    again, z_again = service.sample("mnist", 5, 3, 1.0)
    assert again.tobytes() == sheet.tobytes() and z_again == z
    assert service.sample("mnist", 5, 4, 1.0)[1] != z  # another seed, other samples


def test_each_tile_of_the_sample_sheet_is_its_latent_decoded(service):
    sheet, z = service.sample("mnist", 10, 3, 1.0)
    tile = 112  # MNIST samples come at 4x in the sheet's 112 px cells, 8 per row, 4 px apart
    assert sheet.size == (8 * (tile + 4) + 4, 2 * (tile + 4) + 4)
    for i in (0, 9):  # the first sample, and the 10th: row 2, column 2
        y, x = 4 + (i // 8) * (tile + 4), 4 + (i % 8) * (tile + 4)
        alone = service.decode(z[i], "mnist").resize((tile, tile), Image.NEAREST)  # /decode gives it at 8x
        np.testing.assert_array_equal(np.asarray(sheet)[y : y + tile, x : x + tile], np.asarray(alone))
    assert not np.array_equal(np.asarray(sheet)[4 : 4 + tile, 4 : 4 + tile], np.asarray(sheet)[4 : 4 + tile, 124 : 124 + tile])


def test_interpolate_handler_writes_a_gif(service, examples):
    sheet, gif, z = service.interpolate(str(examples[1]), str(examples[8]), None, 4, "slerp")
    assert len(z) == 4 and sheet.width > 4 * 112
    with Image.open(gif) as g:
        assert g.format == "GIF" and g.n_frames >= 4


def test_decode_accepts_json_text_and_lists(service):
    z = [0.0] * service.registry.get().config.latent_dim
    assert service.decode(json.dumps(z)).size == service.decode(z).size
    with pytest.raises(InputError, match="JSON list"):
        service.decode("[1, 2")


def test_sliders_write_values_in_kl_order(service, examples):
    base = service.encode(str(examples[4]))
    order = service.slider_order()
    moved = service.decode_with_sliders(None, base, [base[order[0]] + 3.0])
    same = service.decode_with_sliders(None, base, [base[order[0]]])
    assert same.tobytes() == service.decode(base).tobytes()
    assert moved.tobytes() != same.tobytes()


def test_errors_are_user_errors(service):
    with pytest.raises(ImageError):
        service.reconstruct(None, "mnist")
    with pytest.raises(ImageError, match="two images"):
        service.interpolate(None, None)
    with pytest.raises(ModelLoadError, match="No model named"):
        service.sample("nonexistent", 1, 0, 1.0)
    with pytest.raises(ModelLoadError):
        service.load_model("/etc")


def test_models_lists_the_loaded_models(service):
    (m,) = service.models()
    assert m["name"] == "mnist" and m["latent_dim"] == service.registry.get().config.latent_dim
    assert (m["image_size"], m["channels"]) == (28, 1)
    assert "mnist" in service.model_card()


def test_explain_draws_the_posterior(service, examples):
    seen, err, posterior, chart, pca = service.explain(str(examples[2]), "mnist", n_posterior=6)
    assert err.mode == "RGB" and err.size == seen.size
    assert seen.tobytes() == service.as_seen(str(examples[2]), "mnist").tobytes()
    assert len(posterior) == 6 and chart.width > 400
    # Different posterior samples decode to different images: sigma > 0.
    assert len({p.tobytes() for p in posterior}) > 1


def test_traverse_rows_follow_the_slider_order(service):
    img = service.traverse(None, "mnist", n_dims=3)
    assert img.height < img.width
    with pytest.raises(InputError):
        service.traverse("[1, 2]", "mnist")


def test_how_it_works_uses_the_models_numbers(service):
    text = service.how_it_works()
    c = service.registry.get().config
    assert f"latent size **{c.latent_dim}**" in text and "reparameterization" in text.lower()


def test_how_it_works_names_the_objective_the_model_was_trained_with():
    from vae_demo.serving import texts

    plain, beta_vae = texts.how_it_works(10, 1.0, "bernoulli", "mnist"), texts.how_it_works(10, 4.0, "bernoulli", "mnist")
    tc = texts.how_it_works(10, 6.0, "bernoulli", "dsprites", "beta-tcvae")
    factor = texts.how_it_works(10, 35.0, "bernoulli", "dsprites", "factor-vae")
    assert "plain VAE" in plain and "β = 4 > 1: a β-VAE" in beta_vae
    assert "β-TCVAE" in tc and "β = 6" in tc and "β-VAE," not in tc
    assert "FactorVAE" in factor and "γ = 35" in factor and "β = 35" not in factor
    labels = [texts.objective_label(o, b) for o, b in (("elbo", 1.0), ("beta-tcvae", 6.0), ("factor-vae", 35.0))]
    assert labels == ["β = 1", "β-TCVAE, β = 6", "FactorVAE, γ = 35"]


def test_the_dsprites_summary_names_its_objective_not_a_bare_beta():
    import torch

    service = DemoService.from_sources(["dsprites"], torch.device("cpu"))
    c, card = service.registry.get().config, service.model_card()
    assert c.objective == "factor-vae" and f"FactorVAE, γ = {c.beta:g}" in card and f"β = {c.beta:g}" not in card


def test_a_kept_gif_outlives_the_pruning_of_old_ones(service, examples, monkeypatch):
    """The page's first interpolation is remembered for every visitor: its GIF must not be pruned later."""
    import vae_demo.serving.service as service_module
    monkeypatch.setattr(service_module, "GIF_KEEP", 3)
    _, kept, _ = service.interpolate(str(examples[0]), str(examples[1]), "mnist", 4, keep=True)
    paths = [service.interpolate(str(examples[0]), str(examples[1]), "mnist", 4)[1] for _ in range(6)]
    assert Path(kept).exists()
    assert not Path(paths[0]).exists() and Path(paths[-1]).exists()  # the others are still pruned


def test_a_given_gif_folder_has_its_old_gifs_pruned_first(service, examples, monkeypatch, tmp_path):
    import os

    import vae_demo.serving.service as service_module
    monkeypatch.setattr(service_module, "GIF_KEEP", 2)
    old = [tmp_path / f"old-{i}.gif" for i in range(2)]
    for i, p in enumerate(old):
        p.write_bytes(b"GIF89a")
        os.utime(p, (1_000 + i, 1_000 + i))
    other = DemoService(service.registry, gif_dir=tmp_path)
    new = other.interpolate(str(examples[0]), str(examples[1]), "mnist", 4)[1]
    assert not old[0].exists() and old[1].exists() and Path(new).exists()  # the oldest goes first
