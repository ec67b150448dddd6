"""Where an endpoint's time goes inside the server: py-spy samples the app while one client calls it.

    python benchmarks/pyspy_profile.py [--py-spy PATH] [--seconds 15] [--endpoints reconstruct sample_64 ...]

For each endpoint: start `py-spy record --format raw` on the app process, call the endpoint in a loop
(one client, as bench.py does) for --seconds, then sort every sampled stack by phase (upload,
preprocess, the handler, postprocess, the rest of the server) and by what runs at the innermost
frame (torch, PIL, matplotlib, numpy, gradio's file handling, ...). Prints a table of active
thread-milliseconds per call and keeps the raw stacks (flamegraph.pl reads them) in --out-dir.

py-spy pauses the process to sample it, so these runs are for proportions, never for bench.py's figures.
"""

import argparse
import asyncio
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
from gradio_http import GradioHTTP, timed_call
from servers import server_env, start_app

# Innermost frame that matches decides "what"; checked in this order.
WHAT = [
    ("torch", ("torch/",)),
    ("PIL", ("PIL/",)),
    ("matplotlib", ("matplotlib/",)),
    ("numpy", ("numpy/",)),
    ("vae_demo / app.py code", ("vae_demo/", "app.py")),
    (
        "gradio files (hash, copy, FileData)",
        (
            "gradio/processing_utils.py",
            "gradio/components/",
            "gradio/image_utils.py",
            "gradio/data_classes.py",
            "gradio/utils.py",
        ),
    ),
    ("gradio queue / routes / blocks", ("gradio/",)),
    (
        "web server (uvicorn, starlette, anyio, multipart)",
        ("uvicorn/", "starlette/", "fastapi/", "anyio/", "h11/", "httptools", "multipart/", "python_multipart/"),
    ),
    ("asyncio / threads", ("asyncio/", "threading.py", "concurrent/", "selectors.py")),
]
# A thread whose innermost frame is one of these is waiting, not working (py-spy's own idle test misses
# many of them on a loaded machine), so its samples are dropped.
IDLE_LEAVES = (
    "Condition.wait (",
    "EpollSelector.select (",
    "Blocks.block_thread (",
    "_worker (concurrent/",
    "Event.wait (",
    "Thread.join (",
    "Queue.get (",
    "SimpleQueue.get (",
    "WorkerThread.run (anyio/",
)
# Outermost marker that matches decides "phase".
PHASES = [
    ("upload", ("upload_file (", "upload_fn (")),
    ("preprocess", ("preprocess_data (", ".preprocess (")),
    ("handler", ("call_function (",)),
    ("postprocess", ("postprocess_data (", ".postprocess (", "postprocess.<locals>", "save_pil_to_cache (")),
]


def classify(frames: list) -> tuple:
    phase = "server (routes, queue, SSE)"
    for name, marks in PHASES:
        if any(m in f for f in frames for m in marks):
            phase = name
            break
    if phase == "server (routes, queue, SSE)" and any(("app.py" in f or "vae_demo/" in f) for f in frames):
        phase = "handler"  # the handler's own thread (anyio worker) carries no call_function frame
    for f in reversed(frames):
        for name, marks in WHAT:
            if any(m in f for m in marks):
                return phase, name
    return phase, "other (" + (frames[-1].split("(")[-1].split(":")[0] if frames else "?") + ")"


def summarise(raw: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = stack.split(";")
        if frames and frames[-1].startswith(IDLE_LEAVES):
            continue
        counts[classify(frames)] += int(n)
    return counts


async def drive(url: str, ep, seconds: float) -> int:
    c = GradioHTTP(url)
    n, t_end = 0, time.perf_counter() + seconds
    try:
        while time.perf_counter() < t_end:
            t = await timed_call(c, ep, n)
            if not t.ok:
                raise RuntimeError(t.error)
            n += 1
    finally:
        await c.aclose()
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="the py-spy binary (pip install py-spy==0.4.3)")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--rate", type=int, default=200, help="samples per second")
    p.add_argument("--endpoints", nargs="+", help="report names from bench.py (default: all)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--app-dir", type=Path, default=bench.REPO)
    p.add_argument("--launcher", nargs="+", help="as in bench.py")
    p.add_argument("--out-dir", type=Path, help="where the raw stacks go (default: a temporary folder)")
    p.add_argument("--from-raw", type=Path, help="only summarise the stacks an earlier run left in this folder")
    args = p.parse_args(argv)
    if args.from_raw:
        meta = json.loads((args.from_raw / "calls.json").read_text())
        print_tables(
            [(name, m["calls"], summarise(args.from_raw / f"{name}.raw.txt")) for name, m in meta["endpoints"].items()],
            meta["rate"],
            meta["seconds"],
        )
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="vae-demo-profile-"))
    out_dir = args.out_dir or tmp
    out_dir.mkdir(parents=True, exist_ok=True)
    app_dir = args.app_dir.resolve()
    ex, models = bench.examples(app_dir), bench.bundled(app_dir)
    app = start_app(app_dir, models, args.device, server_env(tmp, False), tmp, args.launcher)
    rows = []
    meta = {"rate": args.rate, "seconds": args.seconds, "endpoints": {}}
    try:
        probe = bench.Endpoint("reconstruct", "reconstruct", ex[:1], lambda files, i: [files[0], models[0]])
        asyncio.run(bench.first_answer(app, probe))

        async def _discover():
            c = GradioHTTP(app.url)
            try:
                return await bench.discover(c, models[0], ex)
            finally:
                await c.aclose()

        eps, _, _ = asyncio.run(_discover())
        for ep in eps:
            if args.endpoints and ep.name not in args.endpoints:
                continue
            asyncio.run(drive(app.url, ep, 1.0))  # warm-up
            raw = out_dir / f"{ep.name}.raw.txt"
            spy = subprocess.Popen(
                [
                    args.py_spy,
                    "record",
                    "--pid",
                    str(app.pid),
                    "--format",
                    "raw",
                    "--output",
                    str(raw),
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(int(args.seconds) + 1),
                    "--threads",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            time.sleep(0.5)
            calls = asyncio.run(drive(app.url, ep, args.seconds))
            _, err = spy.communicate(timeout=args.seconds + 60)
            if spy.returncode != 0 or not raw.exists():
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
            counts = summarise(raw)
            rows.append((ep.name, calls, counts))
            meta["endpoints"][ep.name] = {"calls": calls}
            (out_dir / "calls.json").write_text(json.dumps(meta))
            print(f"{ep.name}: {calls} calls, {sum(counts.values())} samples -> {raw}", flush=True)
    finally:
        app.stop()

    print_tables(rows, args.rate, args.seconds)
    return 0


def print_tables(rows: list, rate: int, seconds: float) -> None:
    to_ms = 1000.0 / rate
    for name, calls, counts in rows:
        total = sum(counts.values())
        print(f"\n## {name}: {calls} calls in {seconds:g} s; {total * to_ms / calls:.1f} active thread-ms per call")
        print("| phase | what | ms per call | share |\n|---|---|---|---|")
        for (phase, what), n in counts.most_common():
            if n / total < 0.01:
                continue
            print(f"| {phase} | {what} | {n * to_ms / calls:.1f} | {100 * n / total:.0f} % |")


if __name__ == "__main__":
    sys.exit(main())
