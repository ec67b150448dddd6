"""The bundled classifiers read the bundled examples as their labels; weights load from safetensors only."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vae_demo.models.classifier import CLASSIFIERS_DIR, Classifier, ClassifierConfig, classifier_for, load_classifier
from vae_demo.hub.loading import CHECKPOINTS_DIR, bundled_models

TARGETS = {"mnist": 0.99, "fashion-mnist": 0.91}


def _examples(dataset: str) -> tuple:
    """checkpoints/<dataset>/examples/*.png -> (10, 1, 28, 28) in [0, 1] and the labels from the file names"""
    paths = sorted((CHECKPOINTS_DIR / dataset / "examples").glob("*.png"))
    assert len(paths) == 10, f"{dataset} should ship one example per class"
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p).convert("L"), dtype=np.float32) / 255) for p in paths])
    return x.unsqueeze(1), torch.tensor([int(p.name[0]) for p in paths])


@pytest.mark.parametrize("dataset, max_misses", [("mnist", 0), ("fashion-mnist", 1)])
def test_bundled_classifier_reads_the_examples(dataset, max_misses):
    model = classifier_for(dataset)
    assert model is not None and not model.training and model.config.dataset == dataset
    x, labels = _examples(dataset)
    probs = model.predict(x)
    assert probs.shape == (10, 10) and torch.allclose(probs.sum(1), torch.ones(10), atol=1e-5)
    pred = probs.argmax(1)
    assert (pred != labels).sum().item() <= max_misses, f"read {pred.tolist()}, labels {labels.tolist()}"
    assert len(set(pred.tolist())) >= 9  # not a constant answer
    black = model.predict(torch.zeros(1, 1, 28, 28))
    assert (black - probs[:1]).abs().max().item() > 0.1  # an empty frame is not read like a digit


@pytest.mark.parametrize("dataset", TARGETS)
def test_card_and_metrics_state_the_test_accuracy(dataset):
    folder = CLASSIFIERS_DIR / dataset
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_test"] == 10000 and metrics["test_accuracy"] >= TARGETS[dataset]
    assert len(metrics["per_class_accuracy"]) == 10
    card = (folder / "README.md").read_text()
    assert f"python -m vae_demo.training.classifier --dataset {dataset} " in card
    assert f"**{metrics['test_accuracy'] * 100:.2f} %**" in card and "Seed 0" in card
    assert (folder / "model.safetensors").stat().st_size < 2 * 2**20


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = Classifier(ClassifierConfig(image_size=8, widths=(4, 8), hidden_dim=8, n_classes=3, class_names=["a", "b", "c"])).eval()
    model.save_pretrained(tmp_path / "tiny")
    loaded = load_classifier(tmp_path / "tiny")
    assert isinstance(loaded.config, ClassifierConfig) and loaded.config == model.config and not loaded.training
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.predict(x), loaded.predict(x))


def test_pickled_weights_are_refused(tmp_path, monkeypatch):
    model = Classifier(ClassifierConfig(image_size=8, widths=(4,), hidden_dim=8))
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")

    def no_unpickling(*args, **kwargs):
        raise AssertionError("load_classifier must never unpickle")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(FileNotFoundError, match="pytorch_model.bin"):
        load_classifier(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_classifier(tmp_path / "missing")


def test_classifier_for_knows_only_the_bundled_datasets_and_caches():
    assert classifier_for("dsprites") is None and classifier_for("") is None
    assert classifier_for("mnist") is classifier_for("mnist")
    assert classifier_for("mnist") is not classifier_for("fashion-mnist")


def test_classifiers_folder_is_not_listed_as_a_vae():
    assert not (CLASSIFIERS_DIR / "config.json").exists()
    assert "classifiers" not in bundled_models()


def test_config_checks_its_invariants():
    with pytest.raises(ValueError, match="divisible"):
        ClassifierConfig(image_size=30, widths=(4, 8))
    with pytest.raises(ValueError, match="class_names"):
        ClassifierConfig(n_classes=3, class_names=["a"])


def test_the_classifier_the_app_uses_is_the_bundled_one_with_batchnorm_folded(examples):
    import torch

    from vae_demo.models.classifier import for_inference

    plain = load_classifier(CLASSIFIERS_DIR / "mnist")
    x = torch.stack([torch.rand(1, 28, 28) for _ in range(4)])
    folded = classifier_for("mnist")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert torch.allclose(plain.predict(x), folded.predict(x), atol=1e-5)
    assert torch.allclose(plain.predict(x), for_inference(load_classifier(CLASSIFIERS_DIR / "mnist")).predict(x), atol=1e-5)
