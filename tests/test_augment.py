"""Make a dataset (/augment): a conditional VAE's labelled digits, packed as a zip with a folder per label."""

import csv
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import served
from vae_demo.errors import DemoError
from vae_demo.models.classifier import classifier_for
from vae_demo.serving.service import DemoService


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    return DemoService.from_sources(["mnist-cvae", "mnist"], torch.device("cpu"), gif_dir=tmp_path_factory.mktemp("out"))


def test_an_exported_zips_labels_match_its_folders_and_the_classifier_reads_them(service):
    path, preview, info = service.augment("mnist-cvae", per_class=30, seed=1)
    clf = classifier_for("mnist")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        rows = list(csv.DictReader(io.StringIO(zf.read("labels.csv").decode())))
        assert len(rows) == 300 and len(names) == 301
        assert sorted({n.split("/")[0] for n in names if n.endswith(".png")}) == [str(d) for d in range(10)]
        images, labels = [], []
        for row in rows:
            assert row["file"].split("/")[0] == row["label"] == str(row["label_index"])  # folder = label
            with Image.open(io.BytesIO(zf.read(row["file"]))) as im:
                assert im.size == (28, 28) and im.mode == "L"
                images.append(np.asarray(im, np.float32) / 255)
            labels.append(int(row["label_index"]))
    x = torch.from_numpy(np.stack(images))[:, None]
    read = clf.predict(x).argmax(1)
    share = float((read == torch.tensor(labels)).float().mean())
    assert share >= 0.9  # the floor is 95 % over a 1,000-per-class export: docs/APPLICATIONS.md
    assert info["read_as_label"] == pytest.approx(share, abs=0.01)
    assert preview.width > preview.height * 0.7  # eight of each class, a class per row


def test_one_seed_one_dataset(service):
    a, _, _ = service.augment("mnist-cvae", per_class=3, seed=5)
    b, _, _ = service.augment("mnist-cvae", per_class=3, seed=5)
    c, _, _ = service.augment("mnist-cvae", per_class=3, seed=6)
    read = lambda p: [zipfile.ZipFile(p).read(n) for n in sorted(zipfile.ZipFile(p).namelist())]  # noqa: E731
    assert read(a) == read(b) != read(c)


@pytest.mark.parametrize("kwargs, says", [
    (dict(per_class=1001), "per_class must be a whole number from 1 to 1000"),
    (dict(per_class=0), "per_class must be a whole number from 1 to 1000"),
    (dict(per_class=float("nan")), "per_class must be a whole number"),
    (dict(per_class="many"), "per_class must be a whole number"),
    (dict(seed="x"), "seed must be a whole number"),
    (dict(model="mnist"), "not conditional"),
])
def test_bad_input_gets_a_sentence(service, kwargs, says):
    args = dict(model="mnist-cvae", per_class=2, seed=0)
    args.update(kwargs)
    with pytest.raises(DemoError, match=says):
        service.augment(**args)


def test_the_api_returns_the_zip(tmp_path):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with served(["mnist-cvae"]) as url:
        client = Client(url + "/", verbose=False)
        path, preview, info, said = client.predict("mnist-cvae", 5, 0, api_name="/augment")
        assert "**50** images, 5 per class" in said and "as their folder's label" in said
        with zipfile.ZipFile(path) as zf:
            assert len([n for n in zf.namelist() if n.endswith(".png")]) == 50
        assert info["per_class"] == 5 and info["images"] == 50
        with pytest.raises(AppError, match="from 1 to 1000"):
            client.predict("mnist-cvae", 5000, 0, api_name="/augment")
