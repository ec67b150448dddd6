"""What each departure from stock Gradio buys: bench.py's targets with the app as it is, on stock Gradio, and with
each departure turned off alone (VAE_DEMO_STOCK_GRADIO=<its name>), in one table.

    python benchmarks/departures.py [--runs DIR] [--only-report]

Runs `benchmarks/bench.py` eleven times (the app, stock Gradio, each of the eight departures off, and the three
smallest off together), keeping each run's
JSON in DIR (default: a temporary folder), then prints the table that docs/PERFORMANCE.md's "Departures from stock
Gradio" holds. Every figure is a ratio to the floor measured in its own run, so runs on a shared machine compare; a
figure moves by about ±0.1× from run to run, so a departure whose single figure moves less than that buys nothing
measurable on it. --only-report: read the JSONs already in DIR.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from report import COLD_START_TARGET, LATENCY_TARGETS, THROUGHPUT_TARGET  # noqa: E402

HERE = Path(__file__).resolve().parent
DEPARTURES = ("queue-wake-ups", "output-walk", "lazy-sessions", "in-handler-outputs", "pngs-into-cache", "sketch-decode",
              "analytics-summary", "matplotlib-agg")
# The three that each save a few milliseconds of every answer, off together: alone, each is within a run's noise.
TOGETHER = "in-handler-outputs,pngs-into-cache,sketch-decode"
VARIANTS = ("app", "stock", *DEPARTURES, TOGETHER)


def figures(res: dict) -> dict:
    """A run's JSON -> {target: (its ratio, its limit, whether larger is better)}"""
    out = {}
    for name, (limit, _) in LATENCY_TARGETS.items():
        e = res["latency"]["endpoints"].get(name)
        if e:
            out[f"/{e['api_name']}"] = (e["ratio_p50"], limit, False)
    levels = res.get("concurrency", {}).get("levels", {})
    if levels:
        out["throughput"] = (levels[str(max(map(int, levels)))]["ratio_rps"], THROUGHPUT_TARGET[0], True)
    if res.get("cold_start"):
        out["cold start"] = (res["cold_start"]["ratio"], COLD_START_TARGET, False)
    return out


def cell(value: float, limit: float, larger_is_better: bool) -> str:
    ok = value >= limit if larger_is_better else value <= limit
    return f"{value:.2f}×" if ok else f"**{value:.2f}×**"


def report(runs: dict) -> str:
    """The table: a row per target, a column per run; a figure that misses its target in bold."""
    shown = [v for v in VARIANTS if v in runs]
    lines = ["| figure (limit) | " + " | ".join(v if v in ("app", "stock") else f"`{v}` off".replace(",", ", ") for v in shown) + " |",
             "|---" * (1 + len(shown)) + "|"]
    per_run = {v: figures(runs[v]) for v in shown}
    for name, (_, limit, larger) in per_run["app"].items():
        row = [f"{name} ({'≥' if larger else '≤'} {limit}×)"]
        row += [cell(per_run[v][name][0], limit, larger) if name in per_run[v] else "–" for v in shown]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_all(folder: Path) -> None:
    for variant in VARIANTS:
        env = dict(os.environ)
        env.pop("VAE_DEMO_STOCK_GRADIO", None)
        if variant != "app":
            env["VAE_DEMO_STOCK_GRADIO"] = "1" if variant == "stock" else variant
        print(f"bench.py with {variant} …", flush=True)
        subprocess.run([sys.executable, str(HERE / "bench.py"), "--out", str(folder / f"{stem(variant)}.md"), "--json",
                        str(folder / f"{stem(variant)}.json")], env=env, check=True)


def stem(variant: str) -> str:
    return variant.replace(",", "+")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, help="where each run's JSON goes (default: a temporary folder)")
    p.add_argument("--only-report", action="store_true", help="only read the JSONs already in --runs")
    args = p.parse_args(argv)
    folder = args.runs or Path(tempfile.mkdtemp(prefix="vae-demo-departures-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not args.only_report:
        run_all(folder)
    runs = {v: json.loads((folder / f"{stem(v)}.json").read_text()) for v in VARIANTS if (folder / f"{stem(v)}.json").is_file()}
    print(report(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
