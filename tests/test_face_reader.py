"""The bundled face reader (vae_demo/models/face_reader.py): reads skin tone, glasses, smile and beard."""

import json

import torch

from vae_demo.hub.loading import CHECKPOINTS_DIR
from vae_demo.imaging.uploads import prepare
from vae_demo.models.classifier import load_classifier
from vae_demo.models.face_reader import HEADS, read, verdict

FOLDER = CHECKPOINTS_DIR / "classifiers" / "faces"


def test_its_card_states_a_held_out_accuracy_per_head_of_at_least_95_percent():
    metrics = json.loads((FOLDER / "metrics.json").read_text())
    assert metrics["n_test"] == 10_000 and set(metrics["accuracy"]) == {h for h, _ in HEADS}
    assert min(metrics["accuracy"].values()) >= 0.95
    assert "python -m vae_demo.training.face_reader" in (FOLDER / "README.md").read_text()


def test_it_reads_each_example_faces_skin_tone_and_says_so_in_a_sentence():
    reader = load_classifier(FOLDER)
    examples = sorted((CHECKPOINTS_DIR / "faces" / "examples").glob("*.png"))  # "3_tanned_0.png": skin tone 3
    probs = read(reader, torch.cat([prepare(p, 64, 3) for p in examples]))
    assert probs["skin_tone"].argmax(1).tolist() == [int(p.name.split("_")[0]) for p in examples]
    assert all(torch.allclose(v.sum(1), torch.ones(len(examples))) for v in probs.values())
    sentence = verdict(probs, 0)
    assert sentence.startswith("reads as: ") and sentence.endswith(f"skin {int(examples[0].name[0]) + 1} of 7")
    blank = read(reader, torch.ones(1, 3, 64, 64))  # a white page is not a face with glasses and a beard
    assert blank["glasses"][0, 1] < 0.5 or blank["beard"][0, 1] < 0.5


def _examples():
    examples = sorted((CHECKPOINTS_DIR / "faces" / "examples").glob("*.png"))
    return torch.cat([prepare(p, 64, 3) for p in examples])


def test_the_apps_reader_in_bf16_reads_the_examples_as_the_float32_reader_does(monkeypatch):
    """The app's verdicts may come from a bfloat16 copy (vae_demo/device.py): it must say what the float32 reader
    says, on the example faces and on their reconstructions, and it must be a copy, not the reader measured with."""
    from vae_demo.models import face_reader
    from vae_demo.models.precision import InBF16
    from vae_demo.serving.registry import ModelRegistry

    monkeypatch.setenv("VAE_DEMO_PRECISION", "bf16")
    served = face_reader.reader_for("faces", "cpu", serving=True)
    reference = face_reader.reader_for("faces", "cpu")
    assert isinstance(served, InBF16) and not isinstance(reference, InBF16)
    assert next(served.parameters()).dtype == torch.bfloat16 and next(reference.parameters()).dtype == torch.float32
    x = _examples()
    vae = ModelRegistry(torch.device("cpu")).load("faces")
    with torch.inference_mode():
        rec = vae.decode(vae.encode(x)[0])
    for images in (x, rec):
        words = [w for _, w in face_reader.describe(read(served, images))]
        assert words == [w for _, w in face_reader.describe(read(reference, images))]
    monkeypatch.setenv("VAE_DEMO_PRECISION", "fp32")
    assert face_reader.reader_for("faces", "cpu", serving=True) is reference


def test_describe_gives_every_faces_readings_and_words():
    from vae_demo.models.face_reader import describe

    g = torch.Generator().manual_seed(0)
    probs = {name: torch.randn(6, n, generator=g).mul(3).softmax(-1) for name, n in HEADS}
    probs["smile"][0] = torch.tensor([0.5, 0.5])  # exactly one half: not smiling
    out = describe(probs)
    assert len(out) == 6
    for i, (reading, text) in enumerate(out):
        p = {name: probs[name][i].tolist() for name, _ in HEADS}
        expected = {"skin_tone": sum((k + 1) * v for k, v in enumerate(p["skin_tone"])), "glasses": 100 * p["glasses"][1],
                    "smile": 100 * p["smile"][1], "beard": 100 * p["beard"][1]}
        assert set(reading) == set(expected) and all(abs(reading[k] - v) <= 0.01 for k, v in expected.items())
        parts = text.split(" · ")
        assert parts[0] == ("smiling" if p["smile"][1] > 0.5 else "not smiling")
        assert parts[1] == ("glasses" if p["glasses"][1] > 0.5 else "no glasses")
        assert parts[2] == ("beard" if p["beard"][1] > 0.5 else "no beard")
        assert parts[3] == f"skin {max(range(7), key=lambda k: p['skin_tone'][k]) + 1} of 7"
    assert out[0][1].startswith("not smiling")
