"""ui.gradio_departures.wake_on_change: Gradio's queue starts events when they are pushed and when a job ends, not on a 1 ms poll;
it keeps Gradio's limits, and any other Gradio release keeps its own loop."""

import contextlib
import socket
import threading
import time

import gradio as gr
from gradio_client import Client

from ui import gradio_departures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def page(limit: int):
    """One endpoint that takes 0.2 s and counts how many of it run at once."""
    running, most = [0], [0]
    lock = threading.Lock()

    def slow(x):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return x + 1

    with gr.Blocks() as demo:
        n = gr.Number()
        gr.Button().click(slow, n, n, api_name="slow", concurrency_limit=limit)
    demo.queue(max_size=16)
    return demo, most


def woken(limit: int):
    """page(limit) with its queue waking on change"""
    demo, most = page(limit)
    gradio_departures.wake_on_change(demo._queue)
    return demo, most


@contextlib.contextmanager
def served(demo):
    """demo launched on 127.0.0.1 -> a client of it; closed afterwards"""
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_events_start_when_pushed_and_when_a_job_ends_not_on_a_poll(monkeypatch):
    # A safety net far longer than the test: every start must come from a push or from a job that ended.
    monkeypatch.setattr(gradio_departures, "SAFETY_NET_S", 60.0)
    demo, most = woken(limit=1)
    with served(demo) as client:
        t = time.perf_counter()
        jobs = [client.submit(i, api_name="/slow") for i in range(3)]
        assert [j.result(timeout=30) for j in jobs] == [1, 2, 3]
        took = time.perf_counter() - t
        assert 0.6 <= took < 20, took  # one at a time (the limit held), each started when the one before ended
        assert most[0] == 1
        assert demo._queue.looks < 40  # a few looks per event, not one every millisecond


def test_concurrency_limits_still_hold_and_every_event_is_answered():
    demo, most = woken(limit=2)
    with served(demo) as client:
        jobs = [client.submit(i, api_name="/slow") for i in range(6)]
        assert sorted(j.result(timeout=60) for j in jobs) == list(range(1, 7))
        assert most[0] == 2  # two at once, never three


def test_an_idle_queue_looks_a_few_times_a_second():
    demo, _ = woken(limit=1)
    with served(demo) as client:
        assert client.predict(1, api_name="/slow") == 2
        before = demo._queue.looks
        time.sleep(1.0)
        looks = demo._queue.looks - before
        assert 1 <= looks <= 1 / gradio_departures.SAFETY_NET_S + 10, looks  # Gradio's own loop: about 1,000


def test_a_relaunched_page_is_served_by_a_new_loop():
    """An asyncio.Event belongs to one event loop; launch() after close() runs another."""
    demo, _ = woken(limit=1)
    for x in (1, 5):
        with served(demo) as client:
            assert client.predict(x, api_name="/slow") == x + 1


def test_another_gradio_release_keeps_its_own_loop(monkeypatch):
    monkeypatch.setitem(gradio_departures.FINGERPRINTS, "queue wake-ups", "0" * 16)
    gradio_departures._matches.cache_clear()
    monkeypatch.setattr(gradio_departures, "LazySessionState", gradio_departures._GRADIOS_SESSION)  # nothing global
    demo, _ = page(limit=1)
    queue = demo._queue
    assert gradio_departures.apply(demo)["queue wake-ups"] is False
    gradio_departures._matches.cache_clear()
    assert "start_processing" not in vars(queue) and "push" not in vars(queue)  # the class's own methods
    with served(demo) as client:
        assert client.predict(2, api_name="/slow") == 3


def test_the_app_queue_wakes_on_change():
    import app

    demo = app.create_demo(["mnist"], "cpu")
    assert "start_processing" in vars(demo._queue) and demo._queue.looks == 0
