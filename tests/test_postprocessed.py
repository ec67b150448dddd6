"""ui.common.postprocessed: an event registered with postprocess=False answers exactly what Gradio's own
postprocessing would have, with the outputs' postprocess run in the handler's thread."""

import asyncio

import gradio as gr
import pytest
from gradio.state_holder import SessionState

from ui.gradio_departures import plain_numbers, postprocessed

FAST = ("reconstruct", "reconstruct_sketch", "interpolate", "sample", "encode", "decode", "traverse", "slider_update", "edit",
        "analogy", "compare_betas")


@pytest.fixture(scope="module")
def demo():
    import app

    return app.create_demo(["mnist", "mnist-cvae", "mnist-beta-0.25", "mnist-beta-1", "mnist-beta-4", "mnist-beta-16"], "cpu")


def event(demo, api_name):
    return next(f for f in demo.fns.values() if f.api_name == api_name)


def answer(demo, block_fn, values, postprocess: bool) -> list:
    """What the event sends, as the JSON it becomes (Gradio dumps a root model such as JsonData when it sends it)."""
    old = block_fn.postprocess
    block_fn.postprocess = postprocess
    try:
        out = asyncio.run(demo.postprocess_data(block_fn, values, SessionState(demo)))
    finally:
        block_fn.postprocess = old
    return [v.model_dump() if hasattr(v, "model_dump") else v for v in out]


def test_the_api_events_that_run_a_model_postprocess_in_their_handler(demo):
    for name in FAST:
        assert event(demo, name).postprocess is False, name


@pytest.mark.parametrize("api_name,args", [
    ("reconstruct", lambda ex: [ex[3], "mnist", True]),
    ("interpolate", lambda ex: [ex[0], ex[1], "mnist", 4, "lerp"]),
    ("sample", lambda ex: ["mnist", 8, 1, 1.0]),
    ("analogy", lambda ex: [ex[3], "mnist-cvae"]),
    ("compare_betas", lambda ex: [ex[3], 0]),
])
def test_the_answer_is_the_one_gradios_postprocessing_gives(demo, examples, api_name, args):
    block_fn = event(demo, api_name)
    handler = block_fn.fn.__wrapped__  # what postprocessed() wraps: the handler returning plain values
    a = args([str(p) for p in examples])
    raw = handler(*a)
    ours = postprocessed(lambda: raw, block_fn.outputs)()  # block_fn.fn on the same values (a GIF is written once)
    theirs = answer(demo, block_fn, list(raw) if isinstance(raw, tuple) else raw, postprocess=True)
    mine = answer(demo, block_fn, ours, postprocess=False)
    assert mine == theirs
    assert any(isinstance(v, dict) and v.get("url", "").startswith("/gradio_api/file=") for v in mine)


def test_a_skip_and_a_state_pass_through_and_an_update_with_a_value_is_refused():
    with gr.Blocks():
        image, state = gr.Image(), gr.State()
    assert postprocessed(lambda: [gr.skip(), "sketch"], [image, state])() == [gr.skip(), "sketch"]
    held = {"value": 1, "__type__": "update"}  # what a State holds is never read as an update
    assert postprocessed(lambda: [gr.skip(), held], [image, state])() == [gr.skip(), held]
    with pytest.raises(TypeError, match="update with a value"):
        postprocessed(lambda: gr.update(value=None, visible=False), [image])()


@pytest.mark.parametrize("value", [
    [0.5, -1.25, 3],
    [[0.1, 0.2], [1e-30, -7.0]],
    [],
    [[]],
    [[0.123456789012345678, 2 ** 53 + 1]],
])
def test_plain_numbers_pass_as_gradios_json_would_give_them(value):
    """The fast path returns the value itself: it must equal what gr.JSON's own postprocess gives back."""
    j = gr.JSON()
    assert plain_numbers(value)
    assert postprocessed(lambda: value, [j])() == j.postprocess(value).model_dump()


@pytest.mark.parametrize("value", [
    [float("nan")], [[1.0], [float("inf")]], [True, 1.0], [[1.0], 2.0], [{"a": 1}], (1.0, 2.0), {"z": [1.0]}, "[1.0]",
    [[1.0, [2.0]]], [None],
])
def test_anything_else_goes_through_gradios_json(value):
    """NaN, booleans, dicts, tuples, text, ragged nesting: Gradio's own postprocess decides (NaN becomes null)."""
    j = gr.JSON()
    assert not plain_numbers(value)
    theirs = j.postprocess(value)
    assert postprocessed(lambda: value, [j])() == (theirs.model_dump() if hasattr(theirs, "model_dump") else theirs)


def test_an_interpolations_gif_is_served_where_it_was_written(demo, examples):
    """The app's GIFs are written inside Gradio's cache, so Gradio serves that file: no hash and copy per answer."""
    from pathlib import Path

    from gradio.utils import get_upload_folder

    block_fn = event(demo, "interpolate")
    raw = block_fn.fn.__wrapped__(str(examples[0]), str(examples[1]), "mnist", 4, "lerp")
    gif = Path(raw[1])
    assert gif.is_file() and gif.resolve().is_relative_to(Path(get_upload_folder()).resolve())
    sent = answer(demo, block_fn, postprocessed(lambda: raw, block_fn.outputs)(), postprocess=False)
    assert Path(sent[1]["path"]) == gif and sent[1]["url"].endswith(gif.name)
