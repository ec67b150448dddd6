"""gradio_startup: the page is built without the two FastAPI apps Gradio would build and throw away, and launch()
still builds the one it serves."""

import socket
import urllib.request

import gradio as gr
from gradio import routes

from ui.gradio_startup import deferred_app


def counting(monkeypatch) -> list:
    calls, real = [], routes.App.create_app

    def create_app(blocks, *args, **kwargs):
        calls.append(blocks)
        return real(blocks, *args, **kwargs)

    monkeypatch.setattr(routes.App, "create_app", staticmethod(create_app))
    return calls


def small_page():
    with gr.Blocks() as demo:  # Blocks.__init__ sets up the default queue: one build; its exit: another
        gr.Button()
    demo.queue(max_size=8)  # and one more
    return demo


def test_plain_gradio_builds_its_app_three_times_before_launch(monkeypatch):
    """What the patch is for: without it, a page and its queue have built the app three times before launch()."""
    calls = counting(monkeypatch)
    demo = small_page()
    assert calls == [demo] * 3 and demo.app is not None


def test_the_app_is_built_once_by_launch_and_serves(monkeypatch):
    import app

    calls = counting(monkeypatch)
    demo = app.create_demo(["mnist"], "cpu")
    assert calls == [] and demo.app is None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        assert calls == [demo] and demo.app is not None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/gradio_api/info", timeout=30) as r:
            assert "/reconstruct" in r.read().decode()
    finally:
        demo.close()


def test_the_patch_is_undone_when_the_page_is_built_or_fails(monkeypatch):
    calls = counting(monkeypatch)
    patched = routes.App.__dict__["create_app"]
    with deferred_app():
        small_page()
    try:
        with deferred_app():
            with gr.Blocks():
                raise RuntimeError("a tab failed to build")
    except RuntimeError:
        pass
    assert calls == [] and routes.App.__dict__["create_app"] is patched
    demo = small_page()
    assert calls == [demo] * 3
