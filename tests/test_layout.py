"""The package's shape: serving never imports training, and the old command paths say where they went
(`python -m vae_demo.train` is now the train-your-own command: tests/test_train_own.py)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

SERVING_PATH = """
import json, sys
import app
from PIL import Image
service = app.demo.vae_service
example = service.examples("mnist")[0]
service.reconstruct(example, "mnist")
service.explain(example, "mnist")
service.sample("mnist", n=4)
service.edit(example, "mnist", "thickness", 2.0)
service.jobs  # the Train tab's line of runs (their trainer runs in a process of its own)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("vae_demo"))))
"""


def test_the_app_and_its_handlers_import_no_training_or_dataset_module():
    out = subprocess.run([sys.executable, "-c", SERVING_PATH], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "VAE_DEMO_MODELS": "mnist"}, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "vae_demo.serving.service" in loaded  # the check itself looks at the right modules
    assert [m for m in loaded if m.startswith(("vae_demo.training", "vae_demo.datasets"))] == []


@pytest.mark.parametrize("command", ["evaluate", "classifier", "directions"])
def test_an_old_command_path_says_where_it_went_and_still_runs(command):
    out = subprocess.run([sys.executable, "-m", f"vae_demo.{command}", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"python -m vae_demo.training.{command}" in out.stderr
    assert out.stdout.startswith(f"usage: python -m vae_demo.training.{command}")


def test_every_error_a_visitor_may_see_is_a_demo_error():
    from vae_demo.errors import USER_ERRORS, DemoError
    from vae_demo.hub.download import ModelLoadError
    from vae_demo.imaging.framing import SceneError
    from vae_demo.imaging.uploads import ImageError
    from vae_demo.models.photo import PhotoModelError
    from vae_demo.serving.inference import InputError

    assert USER_ERRORS == (DemoError,)
    for error, builtin in ((ModelLoadError, RuntimeError), (ImageError, ValueError), (SceneError, ValueError),
                           (InputError, ValueError), (PhotoModelError, ValueError)):
        assert issubclass(error, DemoError) and issubclass(error, builtin), error
    assert not issubclass(KeyError, DemoError)  # a bug stays a bug: the UI logs it and says "something went wrong"
