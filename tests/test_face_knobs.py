"""The faces model's named knobs, the face reader's verdict in the page's sentences, vector arithmetic (/knob_grid),
the eigenfaces (/eigen), the latent map coloured by a factor, and a photo's guidance (issue #26)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vae_demo import load_vae
from vae_demo.analysis.evaluation_files import evaluation_of
from vae_demo.models.face_reader import FACTORS, evidence, read_logits, reader_for
from vae_demo.serving.inference import InputError
from vae_demo.serving.service import DemoService
from vae_demo.training.face_knobs import data_step, fit, targets

CKPT = Path(__file__).resolve().parent.parent / "checkpoints" / "faces"
FACES = sorted((CKPT / "examples").glob("*.png"))
SCENE = Path(__import__("matplotlib").get_data_path()) / "sample_data" / "grace_hopper.jpg"  # a photo of a person


@pytest.fixture(scope="module")
def service():
    return DemoService.from_sources(["faces", "mnist"], torch.device("cpu"))


def face(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]


def test_faces_has_the_four_named_knobs(service):
    assert [name for name, _ in service.knobs("faces")] == list(FACTORS)
    assert dict(service.knobs("faces"))["skin_tone"] == "skin tone"


@pytest.mark.parametrize("name", FACTORS)
def test_each_knob_moves_the_readers_evidence_its_way_on_most_example_faces(name):
    """+2 against -2 along the knob, decoded and read: the factor's evidence (log-odds; skin: the expected tone) rises
    for a majority of the 12 example faces (7; the measured rates are in edits.json), and on average"""
    from vae_demo.analysis.directions import edit_latent
    from vae_demo.serving.edits import find_direction

    vae, reader = load_vae("faces"), reader_for("faces")
    d = find_direction(vae, name)
    x = torch.cat([face(p) for p in FACES])
    with torch.inference_mode():
        mu = vae.encode(x)[0]
        up = evidence(read_logits(reader, vae.decode(edit_latent(mu, d, 2.0))), name)
        down = evidence(read_logits(reader, vae.decode(edit_latent(mu, d, -2.0))), name)
    assert len(x) == 12 and int((up > down).sum()) >= 7 and float((up - down).mean()) > 0


def test_the_edit_endpoint_takes_the_issues_names_and_reports_the_readers_readings(service):
    for attribute in ("smile", "glasses", "beard", "skin tone", "skin_tone"):
        img, info = service.edit(str(FACES[0]), "faces", attribute, 2.0)
        assert img.mode == "RGB" and set(FACTORS) <= set(info["after"]) and "skin" in info["after"]["reads_as"]
    _, info = service.edit(str(FACES[0]), "faces", "smile", 3.0)
    assert info["change"] > 0 and info["after"]["smile"] > info["before"]["smile"]
    with pytest.raises(InputError, match="'smile'"):
        service.edit(str(FACES[0]), "faces", "moustache", 2.0)


def test_a_shuffled_control_gets_no_knob():
    """The data's step along a direction fitted on shuffled labels is near zero; the true one is not"""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(2000, 8, generator=g)
    y = torch.stack([torch.randint(0, 7, (2000,), generator=g), *(torch.randint(0, 2, (2000,), generator=g) for _ in range(3))], 1)
    mu[:, 0] += 2.0 * y[:, 2]  # the smile column lives along dimension 0
    t = targets(y)
    u = fit(mu, t, 2, "mean-difference")
    assert u[0] > 0.95 and data_step(mu, t, 2, u) > 0.9
    shuffled = t.clone()
    shuffled[:, 2] = t[torch.randperm(2000, generator=g), 2]
    u = fit(mu, shuffled, 2, "mean-difference")
    assert abs(data_step(mu, shuffled, 2, u)) < 0.15


def test_the_reconstruction_summary_says_what_the_face_reader_reads(service):
    _, metrics, summary = service.reconstruct(str(FACES[0]), "faces")
    assert "Your face reads as" in summary and "skin" in metrics["input_reads_as"]
    assert set(metrics["reconstruction_reading"]) == set(FACTORS)
    skin = int(FACES[0].name.split("_")[0]) + 1  # examples are named by their skin tone's rank
    assert f"skin {skin} of 7" in metrics["input_reads_as"]


def test_a_photo_sent_to_faces_gets_the_sentence(service):
    _, _, summary = service.reconstruct(str(SCENE), "faces")
    assert "This model knows 64×64 cartoon faces" in summary and "photo model" in summary


def test_the_knob_grid_puts_faces_against_the_knob(service):
    picture, info = service.knob_grid("faces", "smile", str(FACES[1]), 3, 0)
    assert [r["row"] for r in info["rows"]][0] == "your image" and len(info["rows"]) == 4
    assert info["amounts"] == [-2.0, -1.0, 0.0, 1.0, 2.0] and all(len(r["read"]) == 5 for r in info["rows"])
    smiles = np.array([[tile["smile"] for tile in r["read"]] for r in info["rows"]])
    assert (smiles[:, -1] > smiles[:, 0]).sum() >= 3  # P(smiling) rises along most of the 4 rows
    assert picture.mode == "RGB" and picture.width > picture.height
    for bad, match in (({"n_faces": 99}, "n_faces"), ({"n_faces": "x"}, "n_faces"), ({"seed": -1}, "seed"),
                       ({"attribute": "nose"}, "attribute")):
        args = {"model": "faces", "attribute": "smile", "image": None, "n_faces": 2, "seed": 0, **bad}
        with pytest.raises(InputError, match=match):
            service.knob_grid(**args)


def test_eigenfaces_beside_the_vae(service):
    picture = service.eigen("faces")
    assert picture.mode == "RGB" and picture.width > 4 * picture.height
    assert service.eigen("mnist").width > 0


def test_the_latent_map_is_coloured_by_the_factor_picked(service):
    options = service.map_colourings("faces")
    assert options[0] == "skin tone" and {"smile", "glasses", "beard"} <= set(options)
    by_skin = np.asarray(service.map_view("faces", colour_by="skin tone")[0], np.float32)
    by_glasses = np.asarray(service.map_view("faces", colour_by="glasses")[0], np.float32)
    assert np.abs(by_skin - by_glasses).mean() > 1.0
    lm, col = evaluation_of(load_vae("faces")).latent_map, evaluation_of(load_vae("faces")).map_colourings
    assert len(col["glasses"][0]) == len(lm["points"]) and col["glasses"][1] == ["no glasses", "glasses"]
    with pytest.raises(InputError, match="colour_by"):
        service.map_view("faces", colour_by="shoe size")
    assert service.map_colourings("mnist") == []


def test_the_recorded_knob_table_has_failing_controls():
    """edits.json (written with directions.safetensors by python -m vae_demo.training.face_knobs): each knob moves its
    factor the right way far more often than its shuffled-label control, which flips almost no face"""
    import json

    from vae_demo.training.face_knobs import knob_table

    report = json.loads((CKPT / "edits.json").read_text())
    assert list(report["attributes"]) == list(FACTORS)
    for r in report["attributes"].values():
        m, c = r["methods"][r["chosen"]], r["shuffled_control"]
        assert m["right_direction"] > c["right_direction"] + 0.15 and c["flipped"] < 0.05 < m["flipped"]
    assert len(knob_table(report)) == 2 + len(FACTORS) and "## Named knobs" in (CKPT / "README.md").read_text()


def test_each_knobs_method_was_chosen_on_validation_faces_not_on_the_test_faces():
    """The fitting method is chosen by the rule in face_knobs.py on faces apart from those its figures come from:
    re-derived here from the recorded validation figures, it must be the one kept."""
    import json

    from vae_demo.training.face_knobs import MIN_FLIPPED

    report = json.loads((CKPT / "edits.json").read_text())
    assert report["n_val"] > 0 and report["n_test"] > 0
    for r in report["attributes"].values():
        v = r["validation"]
        assert set(v) == set(r["methods"])
        eligible = [k for k in v if v[k]["flipped"] >= MIN_FLIPPED] or list(v)
        assert r["chosen"] == max(eligible, key=lambda k: (min(v[k]["right_direction"], v[k]["others_kept"]), v[k]["flipped"]))


def test_the_recorded_knobs_meet_issue_26s_floors_on_the_test_and_the_validation_faces():
    """edits.json: each knob kept moves its factor the right way for its floor's share of the faces (glasses, beard and
    skin tone 90 %, smile 85 %) and keeps the other three factors for 85 %, on the test faces and on the validation
    faces alike"""
    import json

    from vae_demo.training.face_knobs import FLOORS, KEPT_FLOOR

    report = json.loads((CKPT / "edits.json").read_text())
    for name, r in report["attributes"].items():
        for figures in (r["methods"][r["chosen"]], r["validation"][r["chosen"]]):
            assert figures["n"] == 1000
            assert figures["right_direction"] >= FLOORS[name] and figures["others_kept"] >= KEPT_FLOOR, (name, figures)


def test_the_bundled_knobs_meet_the_floors_on_2000_freshly_drawn_held_out_faces():
    """The first 2,000 faces of the held-out seed, drawn here by the generator (as benchmarks/faces.py measures), each
    moved ±2 steps along each bundled knob, decoded and read in float32: the right way and the others kept at the
    floors of issue #26"""
    from vae_demo.datasets.faces import render_faces, to_tensor
    from vae_demo.models.classifier import load_classifier
    from vae_demo.serving.edits import find_direction
    from vae_demo.training.face_knobs import FLOORS, KEPT_FLOOR, edit_test
    from vae_demo.training.face_reader import face_labels

    images, rows = render_faces(2000, seed=1, workers=2)
    x, y = to_tensor(images), face_labels(rows)
    vae = load_vae("faces")
    reader = load_classifier(CKPT.parent / "classifiers" / "faces").eval()
    for name in FACTORS:
        r = edit_test(vae, reader, find_direction(vae, name), x, 2.0, y=y)
        assert r["right_direction"] >= FLOORS[name] and r["others_kept"] >= KEPT_FLOOR, (name, r)
