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
