import contextlib
import os
import socket
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))  # as_uploaded: test images re-made as people upload them
# Tests never touch the real Hub: anything that slips through fails fast instead of retrying.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
torch.set_num_threads(1)

from vae_demo.models.vae import VAE, VAEConfig  # noqa: E402

EXAMPLES = sorted((ROOT / "checkpoints" / "mnist" / "examples").glob("*.png"))
TINY = dict(image_size=8, channels=1, latent_dim=3, hidden_channels=(4,), hidden_dim=16)


@pytest.fixture
def tiny_vae() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(**TINY)).eval()


@pytest.fixture
def tiny_folder(tmp_path, tiny_vae) -> Path:
    folder = tmp_path / "tiny"
    tiny_vae.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def examples() -> list:
    assert len(EXAMPLES) >= 10, "checkpoints/mnist/examples should hold one test digit per class"
    return EXAMPLES

from fakehub import fake_hub, hub_fail_fast  # noqa: E402,F401  (pytest fixtures from tests/fakehub.py)


@contextlib.contextmanager
def served_demo(models: list, **kwargs):
    """app.create_demo(models) launched on a free port of 127.0.0.1 -> (its base URL, the demo); closed afterwards,
    with any training process it started"""
    import app

    demo = app.create_demo(models, "cpu", **kwargs)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        yield f"http://127.0.0.1:{port}", demo
    finally:
        demo.close()
        if getattr(demo.vae_service, "_jobs", None) is not None:
            demo.vae_service.jobs.close()


@contextlib.contextmanager
def served(models: list, **kwargs):
    """app.create_demo(models) launched on a free port of 127.0.0.1 -> its base URL; closed afterwards"""
    with served_demo(models, **kwargs) as (url, _):
        yield url

