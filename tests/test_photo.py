"""Photo VAEs (diffusers AutoencoderKL / AutoencoderTiny) behind the model contract, with tiny random models.

The real checkpoints (stabilityai/sd-vae-ft-mse, madebyollin/taesd, ...) cannot be reached here: the same
classes are built from tiny configs, saved with save_pretrained and served by the fake Hub.
"""

import io
import json
import math
import shutil
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderTiny
from huggingface_hub import hf_hub_download
from PIL import Image
from safetensors.torch import load_file, save_file

from vae_demo import device

from vae_demo.models import photo
from vae_demo.imaging.uploads import ImageError
from vae_demo.models.photo import (
    LOGVAR_DETERMINISTIC,
    WEIGHTS_NAME,
    PhotoConfig,
    PhotoModelError,
    choose_dtype,
    fit_size,
    hub_files,
    is_diffusers_config,
    load_photo_vae,
    pipeline_vae_subfolder,
    prepare_photo,
    ssim,
)

# Two blocks each: downscale 2 (the real ones have four: downscale 8).
KL_TINY = dict(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
               up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4, norm_num_groups=8,
               sample_size=32, scaling_factor=0.5, shift_factor=0.1)
TAESD_TINY = dict(encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                  num_encoder_blocks=(1, 1), num_decoder_blocks=(1, 1))
KINDS = ("kl", "tiny")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("photo")
    torch.manual_seed(0)
    AutoencoderKL(**KL_TINY).save_pretrained(root / "kl")
    AutoencoderTiny(**TAESD_TINY).save_pretrained(root / "tiny")
    return {"kl": root / "kl", "tiny": root / "tiny"}


@pytest.fixture(scope="module")
def vaes(folders) -> dict:
    return {k: load_photo_vae(f, "cpu", max_size=64) for k, f in folders.items()}


@pytest.fixture(scope="module")
def photo_100x60() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:60, 0:100]
    img = np.stack([xx / 99, yy / 59, 0.5 + 0.1 * np.sin(xx / 5)], -1) + 0.05 * rng.standard_normal((60, 100, 3))
    return np.clip(img, 0, 1).astype(np.float32)


@pytest.mark.parametrize("kind", KINDS)
def test_download_from_hub_and_load(fake_hub, folders, photo_100x60, kind):
    repo = f"test/tiny-{kind}"
    fake_hub.add_folder(repo, folders[kind])
    paths = [Path(hf_hub_download(repo, name)) for name in hub_files()]
    folder = paths[0].parent
    assert [p.name for p in paths] == ["config.json", WEIGHTS_NAME] and paths[1].parent == folder
    assert is_diffusers_config(json.loads(paths[0].read_text()))
    assert not any(".bin" in path for _, path in fake_hub.requests)

    vae = load_photo_vae(folder, "cpu", max_size=64)
    assert vae.dtype == torch.float32 and not vae.training
    assert vae.config.latent_dim is None and vae.config.image_size == 64 and vae.config.channels == 3
    assert (vae.config.likelihood, vae.config.beta, vae.config.dataset) == ("gaussian", 1.0, "photos")
    x = vae.prepare(photo_100x60)
    assert x.shape == (1, 3, 38, 64)  # long side 64, 60 * 0.64 = 38.4 -> 38 (a multiple of the downscale 2)
    with torch.inference_mode():
        mu, logvar = vae.encode(x)
        x_hat = vae.decode(mu)
    assert mu.shape == logvar.shape == (1, *vae.latent_shape(38, 64)) == (1, 4, 19, 32)
    assert mu.dtype == logvar.dtype == x_hat.dtype == torch.float32
    assert x_hat.shape == x.shape and 0 <= x_hat.min() and x_hat.max() <= 1
    if kind == "kl":
        assert vae.capabilities == {"reconstruct", "interpolate", "sample", "channel_offsets"}
        assert not vae.deterministic and vae.kl_defined and "texture" in vae.notes["sample"]
    else:
        assert vae.capabilities == {"reconstruct", "interpolate", "channel_offsets"}
        assert vae.deterministic and not vae.kl_defined
        assert (logvar == LOGVAR_DETERMINISTIC).all()
    assert "sliders" not in vae.capabilities and vae.notes["sliders"]


def test_pipeline_layout_loads_from_vae_subfolder(fake_hub, folders):
    """A full pipeline (model_index.json at the top) keeps its autoencoder in vae/."""
    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
             "vae": ["diffusers", "AutoencoderKL"], "unet": ["diffusers", "UNet2DConditionModel"]}
    files = {"model_index.json": json.dumps(index), "unet/config.json": "{}", "unet/diffusion_pytorch_model.bin": b"x"}
    files.update({f"vae/{p.name}": p.read_bytes() for p in folders["kl"].iterdir()})
    fake_hub.add_repo("test/tiny-pipeline", files)
    index_path = Path(hf_hub_download("test/tiny-pipeline", "model_index.json"))
    assert pipeline_vae_subfolder(json.loads(index_path.read_text())) == "vae"
    paths = [Path(hf_hub_download("test/tiny-pipeline", name)) for name in hub_files("vae")]
    assert hub_files("vae") == ["vae/config.json", f"vae/{WEIGHTS_NAME}"] and paths[0].parent.name == "vae"
    assert load_photo_vae(paths[0].parent, "cpu", max_size=64).config.kind == "autoencoder_kl"
    assert pipeline_vae_subfolder({"vae": ["diffusers", "AutoencoderKLWan"]}) is None
    assert pipeline_vae_subfolder({"unet": ["diffusers", "UNet2DModel"]}) is None


@torch.inference_mode()
def test_latents_live_in_the_scaled_space(vaes):
    """mu = (raw mean - shift_factor) * scaling_factor, the space pipelines hand to the diffusion model."""
    torch.manual_seed(1)
    x = torch.rand(2, 3, 16, 24)
    kl = vaes["kl"]
    dist = kl.autoencoder.encode(x * 2 - 1).latent_dist
    mu, logvar = kl.encode(x)
    torch.testing.assert_close(mu, (dist.mean - 0.1) * 0.5)
    torch.testing.assert_close(logvar, dist.logvar + 2 * math.log(0.5))
    torch.testing.assert_close(kl.decode(mu), ((kl.autoencoder.decode(dist.mean).sample + 1) / 2).clamp(0, 1))
    kl_dims = kl.kl_per_dim(mu, logvar)
    assert kl_dims.shape == mu.shape and (kl_dims >= 0).all()

    tiny = vaes["tiny"]
    mu, logvar = tiny.encode(x)
    torch.testing.assert_close(mu, tiny.autoencoder.encode(x * 2 - 1).latents)  # TAESD: scale 1, shift 0
    torch.testing.assert_close(tiny.reparameterize(mu, logvar, torch.Generator().manual_seed(0)), mu)
    with pytest.raises(ValueError, match="undefined"):
        tiny.kl_per_dim(mu, logvar)


def test_config_maps_and_checks():
    c = PhotoConfig(latent_channels=2, scaling_factor=0.5, latents_mean=[1, 2], latents_std=[0.5, 2])
    assert c.shift_scale() == ([1.0, 2.0], [1.0, 0.25])  # latents_mean/std replace shift_factor
    assert PhotoConfig(shift_factor=0.1).shift_scale() == ([0.1] * 4, [0.18215] * 4)
    for bad in (dict(max_size=100), dict(max_size=4096), dict(kind="vq"), dict(channels=1), dict(scaling_factor=0),
                dict(latents_mean=[0, 0]), dict(latents_std=[1, 1, 1, 0])):
        with pytest.raises(ValueError):
            PhotoConfig(**bad)


@torch.inference_mode()
@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip_and_batching(tmp_path, vaes, kind):
    vae = vaes[kind]
    vae.save_pretrained(tmp_path / "copy")
    again = load_photo_vae(tmp_path / "copy", "cpu", max_size=64)
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    mu, logvar = vae.encode(x)
    mu2, logvar2 = again.encode(x)
    assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2) and torch.equal(vae.decode(mu), again.decode(mu2))
    again.max_batch = 2  # 5 images in 3 autoencoder calls (2 + 2 + 1) match 5 calls of one
    torch.testing.assert_close(again.decode(mu), vae.decode(mu))


def test_refuses_a_folder_with_only_pickled_weights(tmp_path, folders, monkeypatch):
    folder = tmp_path / "bin-only"
    folder.mkdir()
    shutil.copy(folders["kl"] / "config.json", folder)
    torch.save(load_file(folders["kl"] / WEIGHTS_NAME), folder / "diffusion_pytorch_model.bin")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a pickle was loaded"))
    with pytest.raises(PhotoModelError, match="never unpickles") as info:
        load_photo_vae(folder)
    assert "diffusion_pytorch_model.bin" in str(info.value)
    # diffusers itself refuses too when told use_safetensors=True (without it, it unpickles the .bin)
    with pytest.raises(OSError):
        AutoencoderKL.from_pretrained(folder, use_safetensors=True, local_files_only=True)


def test_weights_load_strictly_and_legacy_names_are_renamed(tmp_path, folders, vaes):
    state = load_file(folders["kl"] / WEIGHTS_NAME)
    broken = tmp_path / "missing"
    shutil.copytree(folders["kl"], broken)
    save_file({k: v for k, v in state.items() if k != "decoder.conv_in.bias"}, broken / WEIGHTS_NAME)
    with pytest.raises(PhotoModelError, match="do not match"):
        load_photo_vae(broken)

    legacy = tmp_path / "legacy"  # sd-vae-ft-mse's checkpoint names its attention weights query/key/value/proj_attn
    shutil.copytree(folders["kl"], legacy)
    old = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    renamed = {}
    for k, v in state.items():
        for new, name in old.items():
            k = k.replace(f".attentions.0.{new}.", f".attentions.0.{name}.")
        renamed[k] = v
    assert any(".query." in k for k in renamed)
    save_file(renamed, legacy / WEIGHTS_NAME)
    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        assert torch.equal(load_photo_vae(legacy, max_size=64).encode(x)[0], vaes["kl"].encode(x)[0])


def test_unsupported_or_broken_configs(tmp_path, folders):
    assert is_diffusers_config(json.loads((folders["tiny"] / "config.json").read_text()))
    assert not is_diffusers_config({"image_size": 28, "latent_dim": 32}) and not is_diffusers_config([1])
    unet = tmp_path / "unet"
    unet.mkdir()
    (unet / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", "_diffusers_version": "0.42.1"}))
    with pytest.raises(PhotoModelError, match="UNet2DModel"):
        load_photo_vae(unet)
    grey = tmp_path / "grey"
    shutil.copytree(folders["tiny"], grey)
    cfg = json.loads((grey / "config.json").read_text())
    (grey / "config.json").write_text(json.dumps({**cfg, "in_channels": 1}))
    with pytest.raises(PhotoModelError, match="RGB"):
        load_photo_vae(grey)
    (grey / "config.json").write_text("{not json")
    with pytest.raises(PhotoModelError, match="JSON"):
        load_photo_vae(grey)
    with pytest.raises(PhotoModelError, match="no model folder"):
        load_photo_vae(tmp_path / "nowhere")
    (grey / "config.json").write_text(json.dumps({**cfg, "encoder_block_out_channels": [100_000] * 2}))
    with pytest.raises(PhotoModelError, match="at most"):  # refused from shapes alone, before any allocation
        load_photo_vae(grey)
    (grey / "config.json").write_text(json.dumps(cfg))
    save_file({**load_file(folders["tiny"] / WEIGHTS_NAME), "junk": torch.zeros(2**20)}, grey / WEIGHTS_NAME)
    with pytest.raises(PhotoModelError, match="larger than"):  # refused before the file is read
        load_photo_vae(grey)


def test_fit_size_keeps_aspect_ratio():
    assert fit_size(60, 100, max_size=64, multiple=8) == (40, 64)
    assert fit_size(60, 100, max_size=64, multiple=2) == (38, 64)
    assert fit_size(3000, 4000) == (384, 512)
    assert fit_size(20, 30) == (24, 32)  # small images are not enlarged, only rounded to the multiple
    assert fit_size(1, 1000) == (8, 512)
    assert fit_size(512, 512) == (512, 512)


def test_prepare_photo(photo_100x60):
    x = prepare_photo(photo_100x60, max_size=64, multiple=8)
    assert x.shape == (1, 3, 40, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    buf = io.BytesIO()
    Image.new("RGBA", (30, 90), (255, 0, 0, 0)).save(buf, "PNG")  # transparent: composited on white
    y = prepare_photo(buf.getvalue(), max_size=64, multiple=8, size=(40, 64))  # cover + centre crop
    assert y.shape == (1, 3, 40, 64) and torch.allclose(y, torch.ones_like(y))
    with pytest.raises(ValueError):
        prepare_photo(photo_100x60, size=(30, 64))
    with pytest.raises(ImageError):
        prepare_photo(b"not an image")


def test_ssim():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 40, generator=g) * 0.5 + 0.25
    noisy = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    noisier = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert ssim(x, x.clone()) == pytest.approx(1.0, abs=1e-9)
    assert 1.0 > ssim(x, noisy) > ssim(x, noisier)
    assert ssim(x, noisy) == pytest.approx(ssim(noisy, x), abs=1e-12)
    assert ssim(x[0], noisy[0]) == pytest.approx(ssim(x, noisy))  # (C, H, W) works too
    assert -1 <= ssim(x[..., :6, :5], noisier[..., :6, :5]) <= 1  # smaller than the window
    with pytest.raises(ValueError):
        ssim(x, x[..., :8])


@torch.inference_mode()
@pytest.mark.parametrize("kind", KINDS)
def test_channel_offsets_and_prior_samples(vaes, kind):
    vae = vaes[kind]
    z = torch.randn(2, *vae.latent_shape(16, 24), generator=torch.Generator().manual_seed(3))
    samples = vae.decode(z)
    assert samples.shape == (2, 3, 16, 24) and 0 <= samples.min() and samples.max() <= 1
    assert torch.equal(vae.decode_with_channel_offsets(z, [0, 0, 0, 0]), samples)
    shifted = vae.decode_with_channel_offsets(z[0], [2.0, 0, 0, 0])
    assert shifted.shape == (1, 3, 16, 24) and not torch.equal(shifted, samples[:1])
    for bad in ([1, 2], [0, 0, 0, float("nan")]):
        with pytest.raises(ValueError):
            vae.decode_with_channel_offsets(z, bad)
    with pytest.raises(ValueError):
        vae.latent_shape(15, 24)
    with pytest.raises(ValueError):
        vae.encode(torch.rand(1, 3, 15, 24))


def test_choose_dtype():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert choose_dtype(cuda, force_upcast=False) == torch.float16  # TAESD, sdxl-vae-fp16-fix
    assert choose_dtype(cuda, force_upcast=True) == torch.float32  # SDXL's VAE (and configs that do not say)
    assert choose_dtype(cpu, force_upcast=False) == choose_dtype("mps", False) == torch.float32
    assert choose_dtype(cpu, True, requested=torch.bfloat16) == torch.bfloat16
    with pytest.raises(ValueError):
        choose_dtype(cpu, True, requested=torch.int8)


def test_half_precision_nans_upcast_to_float32(folders):
    vae = load_photo_vae(folders["kl"], "cpu", dtype=torch.bfloat16, max_size=64)
    assert vae.dtype == torch.bfloat16 and vae.upcast_reason is None
    # Stand-in for SDXL's VAE overflowing in float16: the decoder gives NaN unless it runs in float32.
    vae.autoencoder.decoder.register_forward_hook(lambda m, i, out: out if out.dtype == torch.float32 else out * math.nan)
    z = torch.zeros(1, 4, 4, 4)
    with torch.inference_mode(), pytest.warns(RuntimeWarning, match="float32"):
        x = vae.decode(z)
    assert torch.isfinite(x).all() and vae.dtype == torch.float32 and "non-finite" in vae.upcast_reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vae.decode(z).sum()  # parameters made under inference_mode would fail here, outside it


def test_gpu_decorator(monkeypatch):
    def fn():
        return 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # import spaces -> ImportError
    assert device.gpu_decorator()(fn) is fn
    fake = types.ModuleType("spaces")
    fake.GPU = lambda f=None, **kw: ("gpu", f, kw)
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert device.gpu_decorator() is fake.GPU
    assert device.gpu_decorator(duration=60) == ("gpu", None, {"duration": 60})
