"""Property-based fuzzing (hypothesis) of the handlers: whatever comes in, the answer is a correct result or
one of the package's readable errors, never another exception, and the next normal call answers as before.

Examples are derandomized (the same on every run, so CI is stable); FUZZ_EXAMPLES=2000 FUZZ_SEED=random
python -m pytest tests/test_fuzz.py explores more.
"""

import io
import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from vae_demo.serving import inference
from vae_demo.imaging.uploads import ImageError, prepare
from vae_demo.hub.loading import ModelLoadError, bundled_models, load_vae
from vae_demo.errors import USER_ERRORS
from vae_demo.serving.service import DemoService

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=os.environ.get("FUZZ_SEED") != "random",
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def service() -> DemoService:
    return DemoService.from_sources(["mnist"], torch.device("cpu"))


@pytest.fixture(scope="module")
def normal(service):
    """A normal call and its answer, repeated after every hostile one."""
    def call():
        return np.asarray(service.sample("mnist", 3, 11, 1.0)[0])

    expected = call()

    def check():
        assert all(np.array_equal(a, b) for a, b in zip(call(), expected, strict=True))

    return check


def readable(e: Exception):
    """A user error is one sentence for a person: no traceback, no repr of internals, ends with a full stop."""
    msg = str(e)
    assert isinstance(e, USER_ERRORS), f"{type(e).__name__}: {msg}"
    assert 10 < len(msg) < 600 and msg.rstrip().endswith((".", ")")), msg
    assert "Traceback" not in msg and "object at 0x" not in msg, msg


# JSON-ish values a client can send where a number belongs
junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["1", "64", "1e3", "nan", "-inf", "0x10", " 7 ", "", "1" * 60]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def whole_in(v, lo, hi) -> bool:
    """What inference._int accepts: a finite number (or numeric string) equal to a whole number in [lo, hi]."""
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return False
    return math.isfinite(f) and f == int(f) and lo <= f <= hi


@FUZZ
@given(n=junk, seed=junk, temperature=junk)
def test_sample_fuzz(service, normal, n, seed, temperature):
    try:
        out = service.sample("mnist", n, seed, temperature)
    except Exception as e:
        readable(e)
        assert not (whole_in(n, 1, inference.MAX_SAMPLES) and isinstance(temperature, (int, float))
                    and not isinstance(temperature, bool) and 0 < temperature <= inference.MAX_TEMPERATURE
                    and isinstance(seed, int) and not isinstance(seed, bool)), "a valid call was refused"
    else:
        sheet, z = out
        assert len(z) == int(float(n)) and sheet.width >= min(len(z), 8) * 28
        assert whole_in(n, 1, inference.MAX_SAMPLES)
    normal()


@FUZZ
@given(z=st.one_of(
    junk,
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), min_size=30, max_size=34),
    st.lists(st.one_of(st.floats(-3, 3), st.text(max_size=2), st.none()), min_size=32, max_size=32),
    st.builds(json.dumps, st.lists(st.floats(-5, 5), min_size=31, max_size=33)),
    st.text(max_size=40),
))
def test_decode_fuzz(service, normal, z):
    try:
        img = service.decode(z, "mnist")
    except Exception as e:
        readable(e)
    else:
        assert isinstance(img, Image.Image) and img.size == (28 * service.scale("mnist"),) * 2
    normal()


def _valid_images() -> list:
    """A small digit in every container the app reads, as bytes: the seeds for byte-level mutation."""
    img = Image.new("L", (20, 16), 0)
    img.paste(255, (6, 3, 14, 13))
    out = []
    for fmt, im, kw in [("PNG", img, {}), ("JPEG", img.convert("RGB"), {}), ("GIF", img, {}), ("WEBP", img, {}),
                        ("TIFF", img, {}), ("BMP", img, {}), ("PNG", img.convert("RGBA"), {}), ("JPEG", img.convert("CMYK"), {}),
                        ("TIFF", Image.fromarray(np.asarray(img, dtype=np.uint16) * 257), {}),
                        ("PNG", img.convert("P"), {"transparency": 0})]:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out.append(buf.getvalue())
    return out


VALID = _valid_images()


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            data[at : at + 8] = b"\0" * 8
    return bytes(data)


def check_image_result(t):
    assert t.shape == (1, 1, 28, 28) and t.dtype == torch.float32
    assert torch.isfinite(t).all() and 0 <= t.min() and t.max() <= 1


def prepared_or_refused(src) -> None:
    """Any input: either a valid (1, 1, 28, 28) tensor or an ImageError with a readable message."""
    try:
        t = prepare(src, 28, 1)
    except ImageError as e:
        readable(e)
    else:
        check_image_result(t)


@FUZZ
@given(data=st.one_of(mutated(), st.binary(max_size=512)))
def test_image_bytes_fuzz(data):
    prepared_or_refused(data)


@FUZZ
@given(w=st.integers(1, 300), h=st.integers(1, 300),
       mode=st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I", "F", "I;16"]),
       fmt=st.sampled_from(["PNG", "TIFF", "WEBP", "GIF", "BMP", "JPEG"]), seed=st.integers(0, 2**16))
def test_every_valid_image_is_accepted(w, h, mode, fmt, seed):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        img = Image.fromarray(np.asarray(img, dtype=np.uint16) * 257)
    buf = io.BytesIO()
    try:
        img.save(buf, fmt)
    except (OSError, ValueError, KeyError):  # this format cannot hold this mode: nothing to test
        return
    check_image_result(prepare(buf.getvalue(), 28, 1))
    assert prepare(buf.getvalue(), 8, 3).shape == (1, 3, 8, 8)


@FUZZ
@given(arr=hnp.arrays(dtype=st.sampled_from([np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]),
                      shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=12)))
def test_image_array_fuzz(arr):
    prepared_or_refused(arr)


@FUZZ
@given(data=mutated(), steps=junk, method=st.one_of(st.sampled_from(["lerp", "slerp", "LERP", "cubic", ""]), junk))
def test_interpolate_and_encode_fuzz(service, normal, data, steps, method):
    for call in (lambda: service.interpolate(VALID[0], data, "mnist", steps, method), lambda: service.encode(data, "mnist")):
        try:
            out = call()
        except Exception as e:
            readable(e)
        else:
            assert out
    normal()


@FUZZ
@given(source=st.one_of(st.text(max_size=40),
                        st.sampled_from(["mnist", "../mnist", "/etc", "a/b", "a/b/c", "~", ".", "..", "a--b/c"])))
def test_model_box_fuzz(source, offline_empty_cache):
    """Offline: a repo id is looked up in an empty cache; only bundled names load."""
    try:
        load_vae(source, allow_local=False)
    except ModelLoadError as e:
        readable(e)
    else:
        assert source.strip() in bundled_models()


@pytest.fixture(scope="module")
def offline_empty_cache(tmp_path_factory):
    """Offline mode and an empty Hub cache for the module (hypothesis re-runs the test body, not its fixtures)."""
    from fakehub import isolate_hf_home, set_offline

    mp = pytest.MonkeyPatch()
    isolate_hf_home(mp, tmp_path_factory.mktemp("hf"))
    set_offline(mp, True)
    yield
    mp.undo()
