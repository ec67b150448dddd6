"""The crowd test's visitors (benchmarks/crowd.py), briefly: arrivals speaking the page's own protocol get their
first result, upload, sample, drag a slider and switch model without an error."""

import asyncio
import socket

import crowd


def test_a_short_crowd_gets_its_first_results_without_errors():
    import app

    demo = app.create_demo(["mnist", "fashion-mnist"], "cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    try:
        base = f"http://127.0.0.1:{port}"
        deps = asyncio.run(crowd.find_events(base))
        assert {"load", "arrive", "switch", "slider"} <= set(deps)
        row = asyncio.run(crowd.at_rate(base, deps, rate_per_min=30, window=6, think=0.3, seed=1))
        assert row["visitors"] >= 1 and row["errors"] == 0, row["error_examples"]
        assert row["ttfr_p95"] is not None and row["ttfr_p95"] < 30
        assert set(row["actions_p95"]) == {"upload + reconstruct", "sample (16)", "slider drag (5 updates)", "model switch"}
    finally:
        demo.close()
