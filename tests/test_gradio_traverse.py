"""ui.gradio_traverse: Gradio's walk over an event's outputs, without a coroutine per value: the same copy, the same
files found in the same order, and any other gradio_client release keeps its own walk."""

import asyncio
import random

import gradio as gr
import pytest
from gradio import processing_utils
from gradio_client import utils as client_utils

from ui import gradio_departures

GRADIOS = gradio_departures._GRADIOS_WALK  # gradio_client's own walk, as imported before anything installed ours


def a_file(i: int) -> dict:
    return {"path": f"/tmp/f{i}.png", "orig_name": f"f{i}.png", "meta": {"_type": "gradio.FileData"}}


def nested(rng: random.Random, depth: int = 0):
    """A JSON-like value of dicts, lists, tuples, numbers, strings, None and files (and dicts that are nearly files)."""
    kind = rng.random()
    if depth > 3 or kind < 0.35:
        return rng.choice([rng.random(), rng.randint(-5, 5), "s", None, True, a_file(rng.randint(0, 99)),
                           {"path": "/x", "meta": {}}, {"path": 3, "meta": {"_type": "gradio.FileData"}}])
    n = rng.randint(0, 5)
    if kind < 0.6:
        return [nested(rng, depth + 1) for _ in range(n)]
    if kind < 0.75:
        return tuple(nested(rng, depth + 1) for _ in range(n))
    return {f"k{i}": nested(rng, depth + 1) for i in range(n)}


def walk(traverse, value, is_root=client_utils.is_file_obj_with_meta):
    """-> (the walk's result, the roots it handed to func, in order)"""
    seen = []

    async def func(d):
        seen.append(d)
        return {**d, "url": "/file=" + d["path"]} if isinstance(d, dict) else ["found", d]

    return asyncio.run(traverse(value, func, is_root)), seen


def test_the_same_copy_and_the_same_files_in_the_same_order_as_gradios():
    for seed in range(300):
        value = nested(random.Random(seed))
        assert walk(gradio_departures.async_traverse, value) == walk(GRADIOS, value), f"seed {seed}: {value!r}"


def test_any_other_test_for_a_root_sees_every_value_as_in_gradios():
    """A test other than Gradio's file test may accept a number: it is asked about every node."""
    def is_root(v):
        return isinstance(v, int) and not isinstance(v, bool) and v > 0 or v == "s"

    for seed in range(100):
        value = nested(random.Random(seed))
        assert walk(gradio_departures.async_traverse, value, is_root) == walk(GRADIOS, value, is_root), f"seed {seed}"


def test_latents_and_files_the_containers_are_new_and_the_numbers_kept():
    rows = [[random.Random(r).gauss(0, 1) for _ in range(32)] for r in range(64)]
    value = [a_file(1), rows, {"metrics": {"mse": 0.1}, "frames": (a_file(2), a_file(3))}]
    (out, seen), (want, want_seen) = walk(gradio_departures.async_traverse, value), walk(GRADIOS, value)
    assert out == want and seen == want_seen == [a_file(1), a_file(2), a_file(3)]
    assert out[1] == rows and out[1] is not rows and all(a is not b for a, b in zip(out[1], rows))
    assert isinstance(out[2]["frames"], list) and out[0]["url"] == "/file=/tmp/f1.png"
    out[1][0][0] = "changed"
    assert rows[0][0] != "changed"  # the input is never changed


def test_a_root_or_a_number_alone():
    assert walk(gradio_departures.async_traverse, a_file(7)) == walk(GRADIOS, a_file(7))
    assert walk(gradio_departures.async_traverse, 3.5) == (3.5, [])
    assert walk(gradio_departures.async_traverse, []) == ([], [])


def test_an_error_in_func_reaches_the_caller():
    async def func(d):
        raise ValueError("no such file")

    with pytest.raises(ValueError, match="no such file"):
        asyncio.run(gradio_departures.async_traverse([1, [a_file(1)]], func, client_utils.is_file_obj_with_meta))


def test_gradios_output_processing_uses_it_once_installed_and_finds_the_file(tmp_path, monkeypatch):
    calls = []
    real = gradio_departures.async_traverse

    async def counted(*a):
        calls.append(1)
        return await real(*a)

    monkeypatch.setattr(client_utils, "async_traverse", counted)
    picture = tmp_path / "p.png"
    picture.write_bytes(b"\x89PNG")
    with gr.Blocks():
        out = gr.JSON()
    value = {"z": [[0.25, -1.5]], "file": {"path": str(picture), "meta": {"_type": "gradio.FileData"}}}
    monkeypatch.setattr(processing_utils, "_check_allowed", lambda *a, **k: None)
    moved = asyncio.run(processing_utils.async_move_files_to_cache(value, out, postprocess=True))
    assert calls and moved["z"] == [[0.25, -1.5]] and moved["file"]["url"].startswith("/gradio_api/file=")


def test_the_app_installs_it(monkeypatch):
    import app

    monkeypatch.setattr(client_utils, "async_traverse", GRADIOS)  # as a fresh process has it
    app.create_demo(["mnist"], "cpu")
    assert client_utils.async_traverse is gradio_departures.async_traverse
