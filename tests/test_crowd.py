"""The crowd test's visitors (benchmarks/crowd.py), briefly: arrivals speaking the page's own protocol get their
first result, upload, sample, drag a slider and switch model without an error."""

import asyncio

import crowd
from conftest import served


def test_a_short_crowd_gets_its_first_results_without_errors():
    with served(["mnist", "fashion-mnist"]) as base:
        deps = asyncio.run(crowd.find_events(base))
        assert {"load", "arrive", "switch", "slider"} <= set(deps)
        row = asyncio.run(crowd.at_rate(base, deps, rate_per_min=30, window=6, think=0.3, seed=1))
        assert row["visitors"] >= 1 and row["errors"] == 0, row["error_examples"]
        assert row["ttfr_p95"] is not None and row["ttfr_p95"] < 30
        assert set(row["actions_p95"]) == {"upload + reconstruct", "sample (16)", "slider drag (5 updates)", "model switch"}
