"""gradio_sessions: Gradio's per-call session without the up-front config copy, and with the same content."""

import json
import urllib.request

import gradio.state_holder as state_holder
import pytest
from gradio.state_holder import StateHolder

from ui import gradio_sessions
from test_app import client as served_client  # noqa: F401  (the launched app fixture)

Eager = gradio_sessions._Eager


@pytest.fixture(scope="module")
def demo():
    import app

    return app.create_demo(["mnist"], "cpu")


def test_the_app_installs_it_and_gradio_then_creates_lazy_sessions(demo):
    assert gradio_sessions.install() is True
    holder = StateHolder()
    holder.set_blocks(demo)
    assert type(holder["abc"]) is gradio_sessions.LazySessionState


def test_a_lazy_session_starts_empty_and_lists_the_same_components_as_gradios(demo):
    lazy, eager = gradio_sessions.LazySessionState(demo), Eager(demo)
    assert lazy.config_values == {} and len(eager.config_values) > 100
    assert list(lazy.components) == list(eager.components)


def test_after_an_event_writes_values_both_sessions_agree(demo):
    """What an event does to a session (blocks/queueing: state[id] = block, then _update_value_in_config)."""
    lazy, eager = gradio_sessions.LazySessionState(demo), Eager(demo)
    image = next(b for b in demo.blocks.values() if type(b).__name__ == "Image")
    slider = next(b for b in demo.blocks.values() if type(b).__name__ == "Slider")
    for s in (lazy, eager):
        if image._id not in s:
            s[image._id] = image
        s._update_value_in_config(image._id, {"path": "x.png"})
        s[slider._id] = type(slider)(minimum=-5, maximum=5, value=1.5, render=False)  # a prop update
        s._update_value_in_config(slider._id, 1.5)
    assert len(lazy.config_values) == 2
    assert list(lazy.components) == list(eager.components)
    values = {c["id"]: c["props"].get("value") for c in lazy.components if "props" in c}
    assert values[image._id] == {"path": "x.png"} and values[slider._id] == 1.5


def test_an_unknown_gradio_layout_is_left_alone(monkeypatch):
    monkeypatch.setattr(state_holder, "SessionState", Eager)
    monkeypatch.setattr(gradio_sessions.gradio, "__version__", "7.0.0")
    assert gradio_sessions.install() is False
    assert state_holder.SessionState is Eager


def test_the_served_app_answers_and_keeps_deep_links_working(served_client):  # noqa: F811
    """A sessionless-style call with its own session_hash, then Gradio's deep link for that session."""
    job = served_client.submit(n=4, seed=3, api_name="/sample")
    job.result()
    session = served_client.session_hash
    url = served_client.src.rstrip("/") + f"/gradio_api/deep_link?session_hash={session}"
    with urllib.request.urlopen(url, timeout=30) as r:
        link = json.loads(r.read())
    assert isinstance(link, str) and len(link) > 8
