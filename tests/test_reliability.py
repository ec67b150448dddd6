"""Hostile inputs and load: each case gets a correct result or a readable error, and the next call still works.

Part 1 calls DemoService directly (what the UI, the API and the CLI share), one row per case of the issue.
Part 2 goes through a real launch() on 127.0.0.1: uploads, paths an API client might name, numbers Gradio
parses, the model box, and a short load test with an overload burst (benchmarks/load_test.py).
See docs/RELIABILITY.md for the limits and the full 60 s figures.
"""

import io
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vae_demo.imaging.uploads import MAX_PIXELS, MAX_UPLOAD_BYTES, ImageError, confined_path, prepare
from vae_demo.models.vae import VAE, VAEConfig
from vae_demo.errors import USER_ERRORS
from vae_demo.serving.service import DemoService

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import load_test  # noqa: E402
from load_test import png_header_only  # noqa: E402

DIGIT = ROOT / "checkpoints" / "mnist" / "examples" / "3_3.png"


# --- image makers --------------------------------------------------------------------------------------------
def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def digit() -> Image.Image:
    """A real MNIST test digit, white on black, 28x28 "L"."""
    with Image.open(DIGIT) as im:
        return im.convert("L")


def sixteen_bit(fmt: str) -> bytes:
    return encode(Image.fromarray(np.asarray(digit(), dtype=np.uint16) * 257), fmt)


def float_tiff_with_nan() -> bytes:
    arr = np.asarray(digit(), dtype=np.float32) / 255.0
    arr[0, 0] = np.nan
    return encode(Image.fromarray(arr), "TIFF")


def cmyk_jpeg() -> bytes:
    return encode(digit().convert("RGB").convert("CMYK"), "JPEG", quality=95)


def palette_with_transparency() -> bytes:
    img = digit().convert("P")
    return encode(img, "PNG", transparency=0)  # palette index 0 (black background) transparent


def rgba(ink: int) -> bytes:
    """Ink of one colour whose opacity is the digit, on a fully transparent canvas."""
    img = Image.new("RGBA", (28, 28), (ink, ink, ink, 0))
    img.putalpha(digit())
    return encode(img)


def animated(fmt: str) -> bytes:
    frames = [digit(), Image.new("L", (28, 28), 0)]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0, **kw)


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    return encode(digit().transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif.tobytes())


def truncated_png() -> bytes:
    data = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)))
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    data = bytearray(encode(digit()))
    at = data.index(b"IDAT") + 8
    data[at : at + 16] = b"\xff" * 16  # the compressed pixels, not the header
    return bytes(data)


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> DemoService:
    """mnist (grey, 28 px, framed like MNIST) and tiny untrained RGB and grey models (8 px, no framing) side by side."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    VAE(VAEConfig(image_size=8, channels=3, latent_dim=3, hidden_channels=(4,), hidden_dim=16)).save_pretrained(root / "tiny-rgb")
    VAE(VAEConfig(image_size=8, channels=1, latent_dim=3, hidden_channels=(4,), hidden_dim=16)).save_pretrained(root / "tiny-grey")
    return DemoService.from_sources(["mnist", str(root / "tiny-rgb"), str(root / "tiny-grey")], torch.device("cpu"))


@pytest.fixture(scope="module")
def reference(service) -> dict:
    """What the normal calls answer before any hostile one, to check they answer the same afterwards."""
    return {"sample": np.asarray(service.sample("mnist", 4, 123, 1.0)[0]),
            "digit": prepare(encode(digit()), 28, 1)}


def still_serving(service, reference):
    assert np.array_equal(np.asarray(service.sample("mnist", 4, 123, 1.0)[0]), reference["sample"])
    assert len(service.encode(encode(digit()), "mnist")) == 32


# --- part 1: the table -----------------------------------------------------------------------------------------
# (case, make the input, model, expected): "same" = the model sees the plain digit (mean abs difference < tol)
IMAGE_CASES = [
    ("plain PNG", lambda: encode(digit()), "mnist", ("same", 1e-6)),
    ("RGB PNG for a grey model", lambda: encode(digit().convert("RGB")), "mnist", ("same", 1e-6)),
    ("16-bit PNG", lambda: sixteen_bit("PNG"), "mnist", ("same", 1e-6)),
    ("16-bit TIFF", lambda: sixteen_bit("TIFF"), "mnist", ("same", 1e-6)),
    ("float TIFF with a NaN pixel", float_tiff_with_nan, "mnist", ("same", 0.01)),
    ("CMYK JPEG", cmyk_jpeg, "mnist", ("same", 0.03)),
    ("palette PNG, transparent background", palette_with_transparency, "mnist", ("same", 1e-6)),
    ("RGBA, white ink on transparent", lambda: rgba(255), "mnist", ("same", 0.01)),
    ("RGBA, black ink on transparent", lambda: rgba(0), "mnist", ("same", 0.01)),
    ("animated GIF: first frame", lambda: animated("GIF"), "mnist", ("same", 1e-6)),
    ("animated WebP: first frame", lambda: animated("WEBP"), "mnist", ("same", 1e-6)),
    ("EXIF-rotated JPEG", exif_rotated_jpeg, "mnist", ("same", 0.03)),
    ("1x1 image", lambda: encode(Image.new("L", (1, 1), 200)), "mnist", ("error", "No drawing was found")),  # flat: nothing drawn
    ("1x1 image, unframed model", lambda: encode(Image.new("L", (1, 1), 200)), "tiny-grey", ("ok", None)),
    ("grey image for an RGB model", lambda: encode(digit()), "tiny-rgb", ("ok", None)),
    ("RGB image for an RGB model", lambda: encode(digit().convert("RGB")), "tiny-rgb", ("ok", None)),
    ("text renamed .png", lambda: b"hello, I am not an image\n", "mnist", ("error", "not an image this app can read")),
    ("PDF renamed .png", lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\ntrailer\n%%EOF\n", "mnist",
     ("error", "not an image this app can read")),
    ("truncated PNG", truncated_png, "mnist", ("error", "truncated or corrupt")),
    ("corrupt PNG pixels", corrupt_png, "mnist", ("error", "truncated or corrupt")),
    ("0-byte file", lambda: b"", "mnist", ("error", r"empty \(0 bytes\)")),
    ("bomb: 7000x7000 in a few bytes", lambda: png_header_only(7000, 7000), "mnist",
     ("error", "7000x7000, more than the 40 megapixel limit")),
    ("bomb: 100000x100000 (PIL's own guard)", lambda: png_header_only(100_000, 100_000), "mnist",
     ("error", "too many pixels, more than the 40 megapixel limit")),
    ("file over the upload limit", lambda: b"\x89PNG" + b"\0" * MAX_UPLOAD_BYTES, "mnist",
     ("error", "larger than the 20 MB limit")),
    ("no image", lambda: None, "mnist", ("error", "No image was given")),
    ("FileData without a path", lambda: {"path": None, "meta": {"_type": "gradio.FileData"}}, "mnist",
     ("error", "No image was given")),
    ("array with NaN", lambda: np.full((28, 28), np.nan), "mnist", ("error", "NaN or infinite")),
    ("array of strings", lambda: np.array([["a", "b"]]), "mnist", ("error", "must hold numbers")),
    ("unknown model", lambda: encode(digit()), "nope", ("error", "No model named 'nope' is loaded")),
]


@pytest.mark.parametrize("case, make, model, expected", IMAGE_CASES, ids=[c[0] for c in IMAGE_CASES])
def test_image_inputs(service, reference, case, make, model, expected):
    kind, detail = expected
    if kind == "error":
        with pytest.raises(USER_ERRORS, match=detail):
            service.reconstruct(make(), model)
    else:
        rec = service.reconstruct(make(), model)
        r = service.registry.get(model)
        seen = np.asarray(service.as_seen(make(), model), dtype=np.float32) / 255  # "as the model sees it", enlarged
        assert seen.shape[:2] == (r.config.image_size * service.scale(model),) * 2
        if model == "tiny-rgb":
            assert seen.ndim == 3 and seen.shape[2] == 3
        if kind == "same":
            x = prepare(make(), 28, 1)[0, 0].numpy()
            assert np.abs(x - reference["digit"][0, 0].numpy()).mean() < detail
        assert all(math.isfinite(v) for v in rec[1].values() if isinstance(v, float))
    still_serving(service, reference)


def test_the_rotation_really_matters():
    """The EXIF case would fail if orientation were ignored (the digit rotated is far from itself)."""
    plain = prepare(encode(digit()), 28, 1)
    ignored = prepare(encode(digit().transpose(Image.Transpose.ROTATE_90)), 28, 1)
    assert (plain - ignored).abs().mean() > 0.1


def test_a_large_upload_is_shrunk_while_decoding(service, reference):
    """25 megapixels of mostly black: accepted, and fast (the model needs 28x28)."""
    import time

    img = Image.new("L", (5000, 5000), 0)
    img.paste(255, (2000, 1000, 3000, 4000))
    data = encode(img)
    t0 = time.monotonic()
    service.encode(data, "mnist")
    assert time.monotonic() - t0 < 10
    assert 5000 * 5000 < MAX_PIXELS


NUMBER_CASES = [
    # sample(model, n, seed, temperature)
    ("n NaN", "sample", ("mnist", math.nan, 0, 1.0), "n must be a whole number from 1 to 64; got nan"),
    ("n +inf", "sample", ("mnist", math.inf, 0, 1.0), "n must be a whole number from 1 to 64"),
    ("n -inf", "sample", ("mnist", -math.inf, 0, 1.0), "n must be a whole number from 1 to 64"),
    ("n negative", "sample", ("mnist", -3, 0, 1.0), "n must be a whole number from 1 to 64"),
    ("n zero", "sample", ("mnist", 0, 0, 1.0), "n must be a whole number from 1 to 64"),
    ("n float", "sample", ("mnist", 2.5, 0, 1.0), "n must be a whole number from 1 to 64; got 2.5"),
    ("n 10^9", "sample", ("mnist", 10**9, 0, 1.0), "n must be a whole number from 1 to 64"),
    ("n string", "sample", ("mnist", "many", 0, 1.0), "n must be a whole number from 1 to 64; got 'many'"),
    ("n None", "sample", ("mnist", None, 0, 1.0), "n must be a whole number"),
    ("n whole float is fine", "sample", ("mnist", 3.0, 0, 1.0), 3),
    ("n digit string is fine", "sample", ("mnist", "3", 0, 1.0), 3),
    ("seed NaN", "sample", ("mnist", 2, math.nan, 1.0), "seed must be a whole number; got nan"),
    ("seed inf", "sample", ("mnist", 2, math.inf, 1.0), "seed must be a whole number"),
    ("seed float", "sample", ("mnist", 2, 1.5, 1.0), "seed must be a whole number; got 1.5"),
    ("seed string", "sample", ("mnist", 2, "abc", 1.0), "seed must be a whole number"),
    ("seed beyond 64 bits is fine", "sample", ("mnist", 2, 2**200 + 7, 1.0), 2),
    ("seed negative is fine", "sample", ("mnist", 2, -7, 1.0), 2),
    ("seed of 40 digits is fine", "sample", ("mnist", 2, "1" * 40, 1.0), 2),
    ("temperature 0", "sample", ("mnist", 2, 0, 0), "temperature must be a number above 0 and at most 5"),
    ("temperature negative", "sample", ("mnist", 2, 0, -1), "temperature must be a number above 0"),
    ("temperature NaN", "sample", ("mnist", 2, 0, math.nan), "temperature must be a number above 0"),
    ("temperature inf", "sample", ("mnist", 2, 0, math.inf), "temperature must be a number above 0"),
    ("temperature too hot", "sample", ("mnist", 2, 0, 5.5), "at most 5"),
    ("temperature string", "sample", ("mnist", 2, 0, "hot"), "temperature must be a number above 0"),
    ("unknown model", "sample", ("nope", 2, 0, 1.0), "No model named 'nope' is loaded; loaded: mnist, tiny-rgb, tiny-grey"),
    ("model not a string", "sample", (5, 2, 0, 1.0), "No model named 5 is loaded"),
    # interpolate(a, b, model, steps, method)
    ("steps 1", "interpolate", ("D", "D", "mnist", 1, "lerp"), "steps must be a whole number from 2 to 32"),
    ("steps 10^9", "interpolate", ("D", "D", "mnist", 10**9, "lerp"), "steps must be a whole number from 2 to 32"),
    ("steps NaN", "interpolate", ("D", "D", "mnist", math.nan, "lerp"), "steps must be a whole number"),
    ("steps float", "interpolate", ("D", "D", "mnist", 2.5, "lerp"), "steps must be a whole number"),
    ("steps string", "interpolate", ("D", "D", "mnist", "ten", "lerp"), "steps must be a whole number"),
    ("unknown method", "interpolate", ("D", "D", "mnist", 4, "cubic"), "method must be 'lerp' or 'slerp'"),
    ("one image missing", "interpolate", ("D", None, "mnist", 4, "lerp"), "needs two images"),
    # decode(z, model)
    ("z too short", "decode", ([0.0] * 3, "mnist"), "z must be a list of 32 numbers .*got 3 values"),
    ("z too long", "decode", ([0.0] * 33, "mnist"), "z must be a list of 32 numbers"),
    ("z with NaN", "decode", ([0.0] * 31 + [math.nan], "mnist"), "z must contain finite numbers"),
    ("z with inf", "decode", ([math.inf] + [0.0] * 31, "mnist"), "z must contain finite numbers"),
    ("z huge", "decode", ([1e6] * 32, "mnist"), "between -1000 and 1000"),
    ("z with a string", "decode", (["a"] + [0.0] * 31, "mnist"), "z must contain only numbers"),
    ("z nested", "decode", ([[0.0]] * 32, "mnist"), "z must contain only numbers"),
    ("z a number", "decode", (3.0, "mnist"), "z must be a list of 32 numbers"),
    ("z not JSON", "decode", ("zeros please", "mnist"), "z must be a JSON list of numbers"),
    ("z JSON with NaN", "decode", (json.dumps([math.nan] * 32), "mnist"), "z must contain finite numbers"),
    ("z JSON text is fine", "decode", (json.dumps([0.1] * 32), "mnist"), "image"),
    ("z dict is fine", "decode", ({"z": [0.1] * 32}, "mnist"), "image"),
]


@pytest.mark.parametrize("case, method, args, expected", NUMBER_CASES, ids=[c[0] for c in NUMBER_CASES])
def test_number_inputs(service, reference, case, method, args, expected):
    args = tuple(encode(digit()) if a == "D" else a for a in args)
    call = getattr(service, method)
    if isinstance(expected, str) and expected != "image":
        with pytest.raises(USER_ERRORS, match=expected):
            call(*args)
    elif expected == "image":
        assert isinstance(call(*args), Image.Image)
    elif method == "sample":
        assert len(call(*args)[1]) == expected  # the sheet's latents: one per sample
    else:
        assert len(call(*args)) == expected
    still_serving(service, reference)


def test_seeds_are_reduced_modulo_2_to_the_63(service):
    a = service.sample("mnist", 2, 5, 1.0)
    b = service.sample("mnist", 2, 2**63 + 5, 1.0)
    assert a[1] == b[1] and a[0].tobytes() == b[0].tobytes()


def test_confined_path(tmp_path):
    inside = tmp_path / "uploads" / "a.png"
    inside.parent.mkdir()
    inside.write_bytes(encode(digit()))
    (tmp_path / "uploads" / "link.png").symlink_to("/etc/passwd")
    assert confined_path(inside, [tmp_path / "uploads"]) == inside.resolve()
    outside = ["/etc/passwd", tmp_path / "uploads" / ".." / "x", tmp_path / "uploads" / "link.png", "/nonexistent/x.png", "a\0b"]
    for bad in outside:
        with pytest.raises(ImageError):
            confined_path(bad, [tmp_path / "uploads"])


# --- part 2: the served app -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served():
    """app.create_demo(["mnist"], "cpu") launched on a free 127.0.0.1 port -> (base url, gradio_client.Client)."""
    import socket

    from gradio_client import Client

    import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = app.create_demo(["mnist"], "cpu")
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    base = f"http://127.0.0.1:{port}"
    try:
        yield base, Client(base + "/", verbose=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def raw(served):
    """A plain HTTP client of the served app: sends exactly the JSON it is given (load_test.Client)."""
    c = load_test.Client(served[0], {"digit": (DIGIT.name, DIGIT.read_bytes())})
    yield c
    c.close()


def api_still_serving(client):
    from gradio_client import handle_file

    assert len(client.predict(image=handle_file(str(DIGIT)), model="mnist", api_name="/encode")) == 32


UPLOAD_CASES = [
    ("notes.png", b"this is not an image", "not an image this app can read"),
    ("report.png", b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n", "not an image this app can read"),
    ("empty.png", b"", r"empty \(0 bytes\)"),
    ("half.png", truncated_png(), "truncated or corrupt"),
    ("bomb.png", png_header_only(10_000, 10_000), "more than the 40 megapixel limit"),
    ("huge-bomb.png", png_header_only(100_000, 100_000), "more than the 40 megapixel limit"),
]


@pytest.mark.parametrize("endpoint", ["/reconstruct", "/encode", "/interpolate"])
@pytest.mark.parametrize("name, data, words", UPLOAD_CASES, ids=[c[0] for c in UPLOAD_CASES])
def test_hostile_uploads_through_the_api(served, tmp_path, endpoint, name, data, words):
    from gradio_client import handle_file

    _, client = served
    bad = tmp_path / name
    bad.write_bytes(data)
    kwargs = {"image": handle_file(str(bad))}
    if endpoint == "/interpolate":
        kwargs = {"image_a": handle_file(str(DIGIT)), "image_b": handle_file(str(bad)), "steps": 3}
    with pytest.raises(Exception, match=words):
        client.predict(**kwargs, model="mnist", api_name=endpoint)
    api_still_serving(client)


def test_a_supported_oddity_through_the_api(served, tmp_path):
    from gradio_client import handle_file

    _, client = served
    (tmp_path / "transparent.png").write_bytes(rgba(0))
    metrics = client.predict(image=handle_file(str(tmp_path / "transparent.png")), api_name="/reconstruct")[1]
    assert metrics["psnr"] > 10


def sentinel_image(tmp_path) -> str:
    """A readable image outside Gradio's upload folder: if any call below succeeds, the server read it."""
    p = tmp_path / "private" / "secret.png"
    p.parent.mkdir()
    p.write_bytes(encode(digit()))
    return str(p)


def test_api_cannot_name_server_files_as_typed_file_data(raw, tmp_path):
    secret = sentinel_image(tmp_path)
    for image in [{"path": secret, "meta": {"_type": "gradio.FileData"}},
                  {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}},
                  {"path": f"{raw.files['digit']['path']}/../../../../..{secret}", "meta": {"_type": "gradio.FileData"}},
                  secret, [secret]]:
        event, payload = raw.call("encode", [image, "mnist"])
        assert event == "error", image  # Gradio checks typed FileData against its upload folder
    assert raw.call("encode", [raw.files["digit"], "mnist"])[0] == "complete"


HOLE = ("service.image_arg reads any path from an untyped dict and from FileData's 'url' (Gradio checks neither): "
        "apply the image_arg/confined_path change of docs/RELIABILITY.md, then drop this xfail")


@pytest.mark.parametrize("shape", ["untyped dict", "typed url", "untyped url"])
def test_api_cannot_name_server_files_through_loopholes(raw, tmp_path, shape):
    secret = sentinel_image(tmp_path)
    image = {"untyped dict": {"path": secret}, "typed url": {"path": None, "url": secret, "meta": {"_type": "gradio.FileData"}},
             "untyped url": {"url": secret}}[shape]
    event, _ = raw.call("encode", [image, "mnist"])
    assert event == "error"


def test_gradio_serves_no_file_outside_its_cache(served):
    import httpx

    base, _ = served
    for path in ["/etc/passwd", str(ROOT / "app.py"), str(ROOT / "checkpoints" / "mnist" / "model.safetensors"),
                 str(DIGIT), "app.py", "../../../../etc/passwd"]:
        r = httpx.get(f"{base}/gradio_api/file={path}", trust_env=False)
        assert r.status_code in (403, 404), path


API_NUMBER_CASES = [
    ("sample", ["mnist", 10**9, 0, 1.0], r"(greater than maximum value 64|n must be a whole number from 1 to 64)"),
    ("sample", ["mnist", math.nan, 0, 1.0], "n must be a whole number from 1 to 64"),
    ("sample", ["mnist", 2.5, 0, 1.0], "n must be a whole number from 1 to 64"),
    ("sample", ["mnist", 4, 0, 0], r"(less than minimum value 0.1|temperature must be a number above 0)"),
    ("sample", ["mnist", 4, 0, -1], r"(less than minimum value 0.1|temperature must be a number above 0)"),
    ("sample", ["nope", 4, 0, 1.0], r"(not in the list of choices|No model named 'nope')"),
    ("decode", ["[1, 2, 3]", "mnist"], "z must be a list of 32 numbers"),
    ("decode", [json.dumps([math.nan] * 32), "mnist"], "z must contain finite numbers"),
    ("decode", ["zeros", "mnist"], "z must be a JSON list of numbers"),
    ("interpolate", ["DIGIT", "DIGIT", "mnist", 10**9, "lerp"], r"(greater than maximum value 32|steps must be a whole number)"),
    ("interpolate", ["DIGIT", "DIGIT", "mnist", 4, "cubic"], "method must be 'lerp' or 'slerp'"),
    ("encode", ["DIGIT", "nope"], "No model named 'nope' is loaded"),
    ("load_model", ["../../etc/passwd"], "is not a bundled model .* nor a Hub repo id"),
    ("load_model", ["/etc"], "is not a bundled model .* nor a Hub repo id"),
    ("load_model", ["~/.ssh"], "is not a bundled model .* nor a Hub repo id"),
]
PREPROCESS = "Gradio's own Number/Slider preprocessing raises a bare exception (no message): apply preprocess=False on /sample"
GRADIO_PARSED = [
    ("sample", ["mnist", "many", 0, 1.0], "n must be a whole number"),
    ("sample", ["mnist", 4, math.nan, 1.0], "seed must be a whole number"),
    ("sample", ["mnist", 4, "abc", 1.0], "seed must be a whole number"),
    ("sample", ["mnist", 4, 0, "hot"], "temperature must be a number"),
]


def _api_case(raw, api, data, words):
    data = [raw.files["digit"] if d == "DIGIT" else d for d in data]
    event, message = raw.call(api, data)
    assert event == "error" and message and re.search(words, message), (event, message)
    assert raw.call("sample", ["mnist", 2, 0, 1.0])[0] == "complete"


@pytest.mark.parametrize("api, data, words", API_NUMBER_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(API_NUMBER_CASES)])
def test_api_numbers_get_readable_errors(raw, api, data, words):
    _api_case(raw, api, data, words)


@pytest.mark.parametrize("api, data, words", GRADIO_PARSED, ids=[f"{c[0]}-{i}" for i, c in enumerate(GRADIO_PARSED)])
def test_api_numbers_gradio_parses_first(raw, api, data, words):
    _api_case(raw, api, data, words)


def test_model_box_failures_name_the_repo_and_keep_the_app_serving(raw, fake_hub):
    fake_hub.add_repo("someone/broken", {"config.json": b'{"latent_dim": 3}'})
    event, message = raw.call("load_model", ["someone/broken"])
    assert event == "error" and "someone/broken" in message and "model.safetensors" in message
    event, message = raw.call("load_model", ["someone/missing"])
    assert event == "error" and "someone/missing" in message and "not found" in message
    assert raw.call("models", [])[1][0][0]["name"] == "mnist"
    assert raw.call("sample", ["mnist", 2, 0, 1.0])[0] == "complete"


def test_short_load_and_an_overload_burst(served):
    """8 clients for 6 s mixing every endpoint (hostile inputs included), then 110 heavy calls at once."""
    base, _ = served
    result = load_test.run_load(base, clients=8, seconds=6, warmup=1)
    print(load_test.report(result, None))
    assert result["failures"] == 0, result["failure_examples"]
    assert result["ok"] > 20 and result["intended_rejections"] > 5
    assert math.isfinite(result["p95_s"])
    b = load_test.burst(base, 110, steps=8)
    print(b)
    assert b["failed"] == 0 and b["serves_afterwards"]
    # the queue (max_size=64) refuses at once, not after waiting its turn: the slowest refusal comes back before most
    # of the answers of the same burst (a ratio within one run, not a number of seconds that depends on the machine)
    assert b["refused"] > 0 and b["refused_max_s"] < b["answered_p95_s"]
    assert b["answered"] + b["refused"] == 110
