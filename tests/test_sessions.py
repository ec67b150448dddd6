"""ui.gradio_departures.LazySessionState: Gradio's per-call session without the up-front config copy, and with the same content."""

import json
import urllib.request

import gradio.state_holder as state_holder
import pytest
from gradio.state_holder import StateHolder

from ui import gradio_departures
from test_app import client as served_client  # noqa: F401  (the launched app fixture)

Eager = gradio_departures._GRADIOS_SESSION


@pytest.fixture(scope="module")
def demo():
    import app

    return app.create_demo(["mnist"], "cpu")


def test_the_app_installs_it_and_gradio_then_creates_lazy_sessions(demo):
    holder = StateHolder()
    holder.set_blocks(demo)
    assert type(holder["abc"]) is gradio_departures.LazySessionState


def test_a_lazy_session_starts_empty_and_lists_the_same_components_as_gradios(demo):
    lazy, eager = gradio_departures.LazySessionState(demo), Eager(demo)
    assert lazy.config_values == {} and len(eager.config_values) > 100
    assert list(lazy.components) == list(eager.components)


def test_after_an_event_writes_values_both_sessions_agree(demo):
    """What an event does to a session (blocks/queueing: state[id] = block, then _update_value_in_config)."""
    lazy, eager = gradio_departures.LazySessionState(demo), Eager(demo)
    image = next(b for b in demo.blocks.values() if type(b).__name__ == "Image")
    slider = next(b for b in demo.blocks.values() if type(b).__name__ == "Slider")
    for s in (lazy, eager):
        if image._id not in s:
            s[image._id] = image
        s._update_value_in_config(image._id, {"path": "x.png"})
        s[slider._id] = type(slider)(minimum=-5, maximum=5, value=1.5, render=False)  # a prop update
        s._update_value_in_config(slider._id, 1.5)
    assert len(lazy.config_values) == 1  # the slider's prop update built its entry; the image's value waits
    assert list(lazy.components) == list(eager.components)
    values = {c["id"]: c["props"].get("value") for c in lazy.components if "props" in c}
    assert values[image._id] == {"path": "x.png"} and values[slider._id] == 1.5


def test_values_written_for_many_inputs_build_nothing_until_a_deep_link_and_then_agree(demo):
    """/slider_update has 43 inputs: each value written must not build its entry, and the last write must win
    over an entry Gradio rebuilds from its block (_update_config), in either order."""
    lazy, eager = gradio_departures.LazySessionState(demo), Eager(demo)
    sliders = [b for b in demo.blocks.values() if type(b).__name__ == "Slider"][:40]
    image = next(b for b in demo.blocks.values() if type(b).__name__ == "Image")
    for s in (lazy, eager):
        for i, b in enumerate(sliders):
            s._update_value_in_config(b._id, i / 10)
        s._update_value_in_config(image._id, {"path": "before.png"})
        s._update_config(image._id)  # rebuilt from the block: the value written before is gone
        s._update_value_in_config(sliders[0]._id, 3.5)  # a second write to the same input
    assert list(lazy.config_values) == [image._id]
    assert list(lazy.components) == list(eager.components)
    values = {c["id"]: c["props"].get("value") for c in lazy.components if "props" in c}
    assert values[sliders[0]._id] == 3.5 and values[sliders[5]._id] == 0.5 and values[image._id] != {"path": "before.png"}
    lazy._update_value_in_config(image._id, {"path": "after.png"})  # the table is built now: written straight in
    assert next(c for c in lazy.components if c["id"] == image._id)["props"]["value"] == {"path": "after.png"}


def test_an_unknown_gradio_layout_is_left_alone(monkeypatch, demo):
    monkeypatch.setattr(state_holder, "SessionState", Eager)
    monkeypatch.setattr(gradio_departures, "wake_on_change", lambda queue: None)  # the page's queue is left as it is
    monkeypatch.setitem(gradio_departures.FINGERPRINTS, "lazy sessions", "0" * 16)
    gradio_departures._matches.cache_clear()
    try:
        assert gradio_departures.apply(demo)["lazy sessions"] is False
        assert state_holder.SessionState is Eager
    finally:
        gradio_departures._matches.cache_clear()


def test_the_served_app_answers_and_keeps_deep_links_working(served_client):  # noqa: F811
    """A sessionless-style call with its own session_hash, then Gradio's deep link for that session."""
    job = served_client.submit(n=4, seed=3, api_name="/sample")
    job.result()
    session = served_client.session_hash
    url = served_client.src.rstrip("/") + f"/gradio_api/deep_link?session_hash={session}"
    with urllib.request.urlopen(url, timeout=30) as r:
        link = json.loads(r.read())
    assert isinstance(link, str) and len(link) > 8
