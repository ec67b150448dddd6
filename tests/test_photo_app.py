"""A diffusers photo autoencoder loaded by repo id through load_vae, served by the fake Hub, used by the handlers."""

import pytest
import torch
from PIL import Image

from vae_demo import load_vae
from vae_demo.serving.inference import InputError
from vae_demo.serving.registry import ModelRegistry
from vae_demo.serving.service import DemoService

diffusers = pytest.importorskip("diffusers", reason="diffusers is a pinned runtime requirement")


@pytest.fixture
def tiny_sd_repo(fake_hub, tmp_path):
    torch.manual_seed(0)
    m = diffusers.AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                                up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                                norm_num_groups=8, sample_size=32)
    m.save_pretrained(tmp_path / "sd", safe_serialization=True)
    fake_hub.add_folder("test/tiny-sd-vae", tmp_path / "sd")
    return "test/tiny-sd-vae"


def photo(w=60, h=40) -> Image.Image:
    img = Image.new("RGB", (w, h), (200, 40, 40))
    img.paste((30, 160, 220), (w // 3, h // 4, 2 * w // 3, 3 * h // 4))
    return img


def test_load_vae_dispatches_diffusers_repos_and_never_asks_for_pickles(fake_hub, tiny_sd_repo):
    vae = load_vae(tiny_sd_repo)
    assert vae.config.latent_dim is None and "sample" in vae.capabilities and "sliders" not in vae.capabilities
    asked = [p for _, p in fake_hub.requests]
    assert any(p.endswith("diffusion_pytorch_model.safetensors") for p in asked)
    assert not any(p.endswith(".bin") for p in asked)


def test_handlers_work_on_a_photo_model(fake_hub, tiny_sd_repo, tmp_path):
    reg = ModelRegistry(torch.device("cpu"))
    reg.load(tiny_sd_repo, allow_local=False)
    service = DemoService(reg)
    path = tmp_path / "photo.png"
    photo().save(path)
    rec, metrics, summary = service.reconstruct(str(path))
    seen, err = service.explain(str(path))[:2]
    assert rec.size == seen.size == err.size and rec.size[0] > rec.size[1]  # aspect ratio kept
    assert {"mse", "psnr", "ssim", "kl"} <= set(metrics) and "SSIM" in summary
    sheet, gif, z = service.interpolate(str(path), str(path), None, 3, "slerp")
    assert len(z) == 3 and sheet.width > sheet.height
    assert len(service.sample(None, 2, 0, 1.0)[1]) == 2
    assert service.channel_offsets(str(path), None, 1.0, 0, 0, -1.0).size == rec.size
    with pytest.raises(InputError):
        service.random_latent()  # no sliders for spatial latents: a stated refusal
    with pytest.raises(InputError, match="shaped"):
        service.decode([0.0, 1.0])
    assert "photo autoencoder" in service.model_card()
