"""The served app, through gradio_client, against a real launch() on 127.0.0.1."""

import json
import socket
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def client():
    import app

    demo = app.create_demo(["mnist"], "cpu")  # one model: "model" may then be omitted everywhere
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def pixels(path) -> list:
    with Image.open(path) as im:
        return im.convert("L").resize((28, 28), Image.NEAREST).tobytes()


def mse(a, b) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)


def test_api_lists_every_documented_endpoint(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/reconstruct", "/sample", "/interpolate", "/encode", "/decode", "/models", "/traverse"} <= names


def test_reconstruct_is_closer_to_its_input_than_to_another_digit(client, examples):
    rec, metrics, summary = client.predict(image=handle_file(str(examples[3])), api_name="/reconstruct")
    with Image.open(rec) as im:
        assert im.format == "PNG" and im.size == (224, 224)
    assert {"mse", "psnr"} <= set(metrics) and metrics["psnr"] > 10
    assert mse(pixels(rec), pixels(examples[3])) < mse(pixels(rec), pixels(examples[6]))
    assert "ELBO" in summary and "PSNR" in summary


def test_sample_is_one_grid_image_that_follows_n_and_seed(client):
    a, za = client.predict(model="mnist", n=16, seed=1, temperature=1.0, api_name="/sample")
    b, zb = client.predict(n=16, seed=1, temperature=1.0, api_name="/sample")
    c, zc = client.predict(n=16, seed=2, temperature=1.0, api_name="/sample")
    with Image.open(a) as im, Image.open(client.predict(n=4, seed=1, temperature=1.0, api_name="/sample")[0]) as small:
        assert im.width > im.height > 28  # 8 per row: two rows of 8
        assert small.width < im.width and small.height < im.height  # 4 samples: one row of 4
    assert pixels(a) == pixels(b) and za == zb
    assert pixels(a) != pixels(c) and za != zc


def test_each_sample_and_frame_can_be_decoded_one_by_one(client, examples):
    sheet, z = client.predict(n=10, seed=4, temperature=1.0, api_name="/sample")
    assert len(z) == 10 and all(len(v) == 32 for v in z)
    tile = 112  # 224-px samples reduced to the sheet's cells (contact_sheet), 4-px padding, 8 per row
    with Image.open(sheet) as s:
        cells = [np.asarray(s.convert("L").crop((4 + c * (tile + 4), 4 + r * (tile + 4), 4 + c * (tile + 4) + tile,
                                                  4 + r * (tile + 4) + tile)), float) for r, c in ((0, 0), (1, 1))]
    for cell, k in zip(cells, (0, 9)):  # the first sample, and the tenth (second row, second column)
        with Image.open(client.predict(z=json.dumps(z[k]), api_name="/decode")) as one:
            again = np.asarray(one.convert("L").reduce(2), float)
        other = np.asarray(Image.open(client.predict(z=json.dumps(z[3]), api_name="/decode")).convert("L").reduce(2), float)
        assert np.abs(again - cell).mean() < 2 < np.abs(other - cell).mean()
    sheet, gif, path = client.predict(image_a=handle_file(str(examples[0])), image_b=handle_file(str(examples[1])),
                                      steps=5, method="lerp", api_name="/interpolate")
    assert len(path) == 5
    mu_a = client.predict(image=handle_file(str(examples[0])), api_name="/encode")
    assert np.allclose(path[0], mu_a, atol=1e-4)  # the path starts at A's mean


def test_interpolate_returns_its_frames_as_one_image_and_a_gif(client, examples):
    sheet, gif, _ = client.predict(image_a=handle_file(str(examples[0])), image_b=handle_file(str(examples[1])),
                                   steps=7, method="slerp", api_name="/interpolate")
    with Image.open(gif) as g, Image.open(sheet) as s:
        assert g.format == "GIF" and g.n_frames >= 7
        frame = g.convert("L").reduce(2)  # the first frame, at the sheet's size
        assert s.height < 2 * frame.height and s.width >= 7 * frame.width  # one row of 7 frames
        first = np.asarray(s.convert("L"))[4 : 4 + frame.height, 4 : 4 + frame.width].astype(float)
        assert np.abs(first - np.asarray(frame, dtype=float)).mean() < 8  # the sheet starts with the GIF's first frame


def test_encode_decode_round_trip(client, examples):
    mu = client.predict(image=handle_file(str(examples[9])), api_name="/encode")
    (m,) = client.predict(api_name="/models")
    assert isinstance(mu, list) and len(mu) == m["latent_dim"]
    dec = client.predict(z=json.dumps(mu), api_name="/decode")
    rec = client.predict(image=handle_file(str(examples[9])), api_name="/reconstruct")[0]
    assert mse(pixels(dec), pixels(rec)) < 1.0


def test_bad_upload_gives_a_clear_error_and_the_server_keeps_serving(client, tmp_path, examples):
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    with pytest.raises(Exception, match="not an image"):
        client.predict(image=handle_file(str(bad)), api_name="/encode")
    with pytest.raises(Exception, match="z must be a list of"):
        client.predict(z="[1, 2, 3]", api_name="/decode")
    with pytest.raises(Exception, match="not in the list of choices|No model named"):
        client.predict(n=1, model="nope", api_name="/sample")
    assert len(client.predict(image=handle_file(str(examples[2])), api_name="/encode")) > 0


def test_traverse_returns_a_grid_image(client):
    path = client.predict(z="", n_dims=4, api_name="/traverse")
    with Image.open(path) as im:
        assert im.width > im.height > 4 * 28  # 9 columns of decoded images, 4 labelled rows
    with pytest.raises(Exception, match="less than minimum"):  # the slider's own bounds guard the API too
        client.predict(z="", n_dims=0, api_name="/traverse")
    with pytest.raises(Exception, match="z must be a list"):
        client.predict(z="[0.5]", n_dims=2, api_name="/traverse")


def test_handlers_are_wrapped_for_zerogpu_when_spaces_is_importable(monkeypatch):
    import importlib
    import sys
    import types

    calls = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn: calls.append(fn.__name__) or fn
    monkeypatch.setitem(sys.modules, "spaces", fake)
    import app
    import ui.common

    def reload_ui():  # the decorator is chosen when ui.common is imported; the tabs bind it at their import
        common = importlib.reload(ui.common)
        for tab in app.TABS:
            importlib.reload(tab)
        return common, importlib.reload(app)

    common, reloaded = reload_ui()
    try:
        assert common.GPU is fake.GPU
        assert {"reconstruct", "sample", "interpolate", "encode", "decode"} <= set(calls)  # every model handler
        wrapped = common.user_errors(lambda: 1)
        assert wrapped() == 1 and calls[-1] == "<lambda>"
    finally:
        monkeypatch.delitem(sys.modules, "spaces")
        reload_ui()


def test_reconstruct_takes_what_the_sketchpad_sends_and_refuses_a_malformed_dict(client, tmp_path):
    from gradio_client.exceptions import AppError

    import as_uploaded

    digit = np.asarray(Image.open(sorted(__import__("conftest").EXAMPLES)[7]).convert("L"))
    layer = tmp_path / "layer.png"
    as_uploaded.as_upload(digit, "transparent-sketch", np.random.default_rng(0)).save(layer)  # a black pen on transparent
    sketch = {"background": None, "layers": [handle_file(str(layer))], "composite": handle_file(str(layer))}
    _, metrics, summary = client.predict(sketch=sketch, api_name="/reconstruct_sketch")
    assert metrics["input_class"] == "7" and metrics["reconstruction_class"] == "7"
    with pytest.raises(AppError, match="sketch"):
        client.predict(sketch={"background": None, "layers": "not a list", "composite": None}, api_name="/reconstruct_sketch")
    # still serving
    assert client.predict(n=1, seed=0, temperature=1.0, api_name="/sample")


def test_reconstruct_sketch_answers_what_reconstruct_would_with_the_same_sentences(client, tmp_path):
    """A non-dict, a part that is not an image, a picture over the pixel limit, a blank canvas: each a sentence, the
    one /reconstruct gives for the same file, and the server keeps serving."""
    from gradio_client.exceptions import AppError

    text, huge, white = tmp_path / "t.txt", tmp_path / "huge.png", tmp_path / "white.png"
    text.write_text("not an image")
    Image.new("L", (7000, 7000), 255).save(huge)  # 49 megapixels in a few kilobytes
    Image.new("RGB", (280, 280), "white").save(white)
    for sketch, sentence in [
        ("a string", "A sketch must be a dict"),
        ([1, 2], "A sketch must be a dict"),
        ({"background": None, "layers": [handle_file(str(text))], "composite": None}, "not an image this app can read"),
        ({"background": None, "layers": [], "composite": handle_file(str(huge))}, "more than the 40 megapixel limit"),
        ({"background": handle_file(str(white)), "layers": [], "composite": None}, "No drawing was found"),
    ]:
        with pytest.raises(AppError, match=sentence):
            client.predict(sketch=sketch, api_name="/reconstruct_sketch")
    for path, sentence in [(text, "not an image this app can read"), (huge, "more than the 40 megapixel limit"),
                           (white, "No drawing was found")]:
        with pytest.raises(AppError, match=sentence):  # /reconstruct's own sentence for the same file
            client.predict(image=handle_file(str(path)), api_name="/reconstruct")
    assert client.predict(n=1, seed=0, temperature=1.0, api_name="/sample")


def test_a_remembered_refresh_gives_every_visitor_its_own_update_dicts():
    import gradio as gr

    from ui.common import memo

    calls = []

    @memo
    def refresh(m):
        calls.append(m)
        return [gr.update(value="picture", label="the map"), "plain"]

    first = refresh("mnist")
    first[0].pop("value")  # what Gradio does to an update as it sends it to the first visitor
    second = refresh("mnist")
    assert second[0]["value"] == "picture" and second[1] == "plain" and calls == ["mnist"]


def test_slider_update_decodes_the_sliders_and_refuses_values_outside_them(client):
    """/slider_update (undocumented: model, then one value per slider and knob; the base z is the page's State)
    is not preprocessed by Gradio: its own check must give the sentences."""
    import ui.sliders as sliders

    import urllib.request

    with urllib.request.urlopen(client.src.rstrip("/") + "/gradio_api/info?all_endpoints=true", timeout=30) as r:
        params = json.loads(r.read())["named_endpoints"]["/slider_update"]["parameters"]
    values = [0.0] * (len(params) - 1)
    assert len(values) == 32 + sliders.MAX_KNOBS
    still = pixels(client.predict("mnist", *values, api_name="/slider_update"))
    moved = pixels(client.predict("mnist", 3.0, *values[1:], api_name="/slider_update"))
    assert mse(still, moved) > 10  # the top dimension moves the image
    assert pixels(client.predict("mnist", *values, api_name="/slider_update")) == still
    with pytest.raises(Exception, match="outside its range, -4 to 4"):
        client.predict("mnist", 9.0, *values[1:], api_name="/slider_update")
    with pytest.raises(Exception, match="must be a number from -4 to 4"):
        client.predict("mnist", "abc", *values[1:], api_name="/slider_update")
    assert sliders.checked([1, None, -4.0]) == [1.0, None, -4.0]


def test_impute_fills_in_through_the_api(client, examples, tmp_path):
    row, info, spread = client.predict(handle_file(str(examples[7])), "mnist", "bottom half", "metropolis", 8, 0,
                                       api_name="/impute")
    with Image.open(row) as im:
        assert im.width > 8.5 * im.height  # the masked input, then eight completions, in one row
    assert len(info["completions"]) == 8 and len(info["reads_as"]) == 8 and 0 <= info["acceptance_rate"] <= 1
    assert sum(r["reads_as"] == "7" for r in info["reads_as"]) >= 6
    with Image.open(spread) as im:
        assert im.size == (224, 224)
    # a picture as the mask: white where pixels are missing
    mask = tmp_path / "mask.png"
    picture = Image.new("L", (28, 28), 0)
    picture.paste(255, (0, 0, 14, 28))
    picture.save(mask)
    _, info, _ = client.predict(handle_file(str(examples[3])), "mnist", handle_file(str(mask)), "pca", 2, 1,
                                api_name="/impute")
    assert info["mask"] == "picture" and info["missing_pixels"] == 28 * 14


def test_impute_refuses_a_mask_of_another_size_with_a_sentence(client, examples, tmp_path):
    from gradio_client.exceptions import AppError

    bad = tmp_path / "bad.png"
    Image.new("L", (30, 20), 255).save(bad)
    with pytest.raises(AppError, match="must be 28×28 or a whole multiple"):
        client.predict(handle_file(str(examples[3])), "mnist", handle_file(str(bad)), "metropolis", 4, 0,
                       api_name="/impute")
    with pytest.raises(AppError, match="method must be one of"):
        client.predict(handle_file(str(examples[3])), "mnist", "bottom half", "gibbs", 4, 0, api_name="/impute")
    # the server keeps serving
    assert client.predict(handle_file(str(examples[3])), "mnist", "top half", "mean", 1, 0, api_name="/impute")[1]["n"] == 1
