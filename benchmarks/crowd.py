"""Crowd test: visitors arriving as a browser behaves, at rising rates, against one server (or nginx and replicas).

    python benchmarks/crowd.py [--rates 10,20,40,60,90,120] [--window 40] [--think 2.0] [--seed 0]
                               [--url URL --pid PID] [--replicas N] [--flood 30] [--json docs/crowd.json]
                               [--picture docs/crowd.png]

A visitor does what the page does (the protocol the browser speaks: GET /, GET /config, then the page's own load
events by fn_index through the queue, POST /gradio_api/queue/join and its event stream):
1. arrives: the page, its config, the load events (every tab's first result for the default model, and the visitor's
   token); **time to first result** = arrival to the load event's answer;
2. then, each after an exponential think time (mean --think s): an upload reconstructed, a sheet of 16 samples, a
   slider dragged (five /slider_update calls as the drag sends them), and a model switch (the page's model.change,
   every tab refreshed for fashion-mnist).

Visitors arrive as a Poisson process, each rate for --window seconds, one rate after another; a visitor who arrived in
a window counts for it. Per rate: visitors, p50/p95 time to first result, p95 of each action, errors. The capacity is
the highest rate whose p95 time to first result is <= 2 s with no errors.

Unless --url is given it starts `python app.py --model mnist fashion-mnist` on a free port (with --replicas N > 0,
deploy/replicas.py: N replicas behind nginx). --flood N: N visitors-worth of run-time loads of distinct tiny repos
from a fake Hub (three per visitor), through /load_model: the caps hold (each /models lists at most its own three, the
server holds at most VAE_DEMO_MAX_RUNTIME_MB), and the server's memory before and after. 127.0.0.1 only; every phase
is bounded in count and time. Prints JSON.
"""

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))
from gradio_http import API, CallError, GradioHTTP, build_from_info  # noqa: E402
from load_test import rss_kib, wait_until_answering  # noqa: E402

DIGIT = REPO / "checkpoints" / "mnist" / "examples" / "3_3.png"
TTFR_TARGET = 2.0


class Page:
    """One visitor's browser tab: its cookies (nginx's stickiness), its Gradio session, the page's events."""

    def __init__(self, base: str, deps: dict):
        self.base = base
        self.deps = deps
        self.session = uuid.uuid4().hex[:11]
        self.http = httpx.AsyncClient(timeout=60, trust_env=False)
        self.api = GradioHTTP(base, timeout=60, session_hash=self.session)
        self.api.http = self.http  # one cookie jar for the page and its API calls, as a browser has

    async def close(self):
        await self.http.aclose()

    async def event(self, fn_index: int, data: list, queued: bool = True):
        """one of the page's own events, as the browser sends it"""
        body = {"data": data, "fn_index": fn_index, "session_hash": self.session, "event_data": None, "trigger_id": None}
        if not queued:
            r = await self.http.post(f"{self.base}{API}/run/predict", json=body)
            if r.status_code != 200:
                raise CallError(f"run/predict {fn_index}: HTTP {r.status_code}")
            return r.json()
        r = await self.http.post(f"{self.base}{API}/queue/join", json=body)
        if r.status_code != 200:
            raise CallError(f"queue/join {fn_index}: HTTP {r.status_code} {r.text[:200]}")
        event_id = r.json()["event_id"]
        async with self.http.stream("GET", f"{self.base}{API}/queue/data", params={"session_hash": self.session}) as s:
            async for line in s.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise CallError(f"event {fn_index}: {str(msg.get('output'))[:200]}")
                    return msg.get("output")
        raise CallError(f"event {fn_index}: the stream ended first")


async def visitor(base: str, deps: dict, think: float, rng: random.Random, out: dict) -> None:
    page = Page(base, deps)
    t0 = time.perf_counter()
    timings = out.setdefault("actions", {})
    try:
        for path in ("/", "/config"):
            r = await page.http.get(base + path)
            if r.status_code != 200:
                raise CallError(f"GET {path}: HTTP {r.status_code}")
        await asyncio.gather(page.event(deps["load"], ["mnist"]), page.event(deps["arrive"], [None], queued=False))
        out["ttfr"] = time.perf_counter() - t0

        async def act(name, coro):
            await asyncio.sleep(rng.expovariate(1 / think))
            t = time.perf_counter()
            await coro()
            timings[name] = time.perf_counter() - t

        async def upload():
            f = await page.api.upload("digit.png", DIGIT.read_bytes())
            await page.api.call("reconstruct", [f, "mnist"])

        async def drag():
            for i in range(5):
                await page.api.call("slider_update", deps["slider"]([], i))

        await act("upload + reconstruct", upload)
        await act("sample (16)", lambda: page.api.call("sample", ["mnist", 16, rng.randrange(10**6), 1.0]))
        await act("slider drag (5 updates)", drag)
        await act("model switch", lambda: page.event(deps["switch"], ["fashion-mnist"]))
    except (CallError, httpx.HTTPError, ValueError, KeyError) as e:
        out["error"] = f"{type(e).__name__}: {e}"[:300]
    finally:
        await page.close()


async def find_events(base: str) -> dict:
    """the page's load events and its model switch, by fn_index, from /config"""
    async with httpx.AsyncClient(timeout=30, trust_env=False) as h:
        c = (await h.get(base + "/config")).json()
        info = (await h.get(base + f"{API}/info", params={"all_endpoints": "true"})).json()
    comps = {x["id"]: x for x in c["components"]}
    model = next(i for i, x in comps.items() if x.get("props", {}).get("label") == "Model")
    # a drag sends the sliders' values as they move: the first one moved a step on each update
    deps = {"slider": build_from_info(info, "slider_update", {"model": "mnist"},
                                      lambda pos, i: round(0.4 * (i - 2), 2) if pos == 0 else 0.0)}
    for d in c["dependencies"]:
        for target, event in d["targets"]:
            if event == "load" and d["inputs"] == [model]:
                deps["load"] = d["id"]
            elif event == "load" and not d.get("queue", True):
                deps["arrive"] = d["id"]
            elif event == "change" and target == model:
                deps["switch"] = d["id"]
    return deps


async def at_rate(base: str, deps: dict, rate_per_min: float, window: float, think: float, seed: int) -> dict:
    rng = random.Random(seed)
    tasks, results = [], []
    t_end = time.monotonic() + window
    while time.monotonic() < t_end:
        out: dict = {}
        results.append(out)
        tasks.append(asyncio.create_task(visitor(base, deps, think, random.Random(rng.random()), out)))
        await asyncio.sleep(rng.expovariate(rate_per_min / 60))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    ttfr = sorted(r["ttfr"] for r in results if "ttfr" in r)
    errors = [r["error"] for r in results if "error" in r]
    actions = {}
    for r in results:
        for k, v in r.get("actions", {}).items():
            actions.setdefault(k, []).append(v)
    p = lambda xs, q: round(statistics.quantiles(xs, n=100)[q - 1], 3) if len(xs) >= 2 else (round(xs[0], 3) if xs else None)  # noqa: E731
    return {"rate_per_min": rate_per_min, "visitors": len(results), "errors": len(errors), "error_examples": errors[:3],
            "ttfr_p50": p(ttfr, 50), "ttfr_p95": p(ttfr, 95),
            "actions_p95": {k: p(v, 95) for k, v in actions.items()}}


def free_port(n: int = 1) -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        ok = True
        for i in range(1, n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p + i))
                except OSError:
                    ok = False
        if ok:
            return p
    raise RuntimeError("no free ports")


def start(replicas: int, env: dict, logs: Path) -> tuple:
    """-> (base URL, process, pid whose memory is read or None)"""
    if replicas:
        port = free_port(replicas + 1)
        proc = subprocess.Popen([sys.executable, str(REPO / "deploy" / "replicas.py"), "--replicas", str(replicas), "--port",
                                 str(port), "--logs", str(logs), "--", "--model", "mnist", "fashion-mnist"], cwd=REPO,
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    else:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--port", str(port), "--model", "mnist",
                                 "fashion-mnist"], cwd=REPO, env=env, stdout=open(logs / "app.log", "w"),
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(proc, base + f"{API}/info", 240, logs)
    except RuntimeError as e:
        raise SystemExit(str(e)) from None
    return base, proc, None if replicas else proc.pid


async def flood(base: str, repos: list, pid) -> dict:
    """three distinct run-time loads per visitor, len(repos) // 3 visitors at once; then what each /models lists"""
    before = rss_kib(pid)
    clients = [GradioHTTP(base, timeout=120, session_hash=uuid.uuid4().hex[:11]) for _ in range(len(repos) // 3)]
    outcomes = []

    async def one(c, mine):
        for repo in mine:
            try:
                await c.call("load_model", [repo])
                outcomes.append("loaded")
            except CallError as e:
                outcomes.append("refused: " + str(e)[-120:])
        return [m["name"] for m in (await c.call("models", []))[0]]

    listed = await asyncio.gather(*[one(c, repos[3 * i: 3 * i + 3]) for i, c in enumerate(clients)])
    for c in clients:
        await c.aclose()
    after = rss_kib(pid)
    return {"loads": len(repos), "visitors": len(clients), "loaded": outcomes.count("loaded"),
            "most_listed_by_one_visitor": max(len(x) for x in listed), "run_time_models_listed_in_all":
            sum(len([n for n in x if "/" in n]) for x in listed),
            "rss_mib_before": before and round(before / 1024), "rss_mib_after": after and round(after / 1024)}


def serve_fake_repos(n: int, folder: Path) -> tuple:
    """a fake Hub on 127.0.0.1 with n small VAE repos (about 1.4 MB of weights each) -> (hub, repo ids)"""
    sys.path.insert(0, str(REPO / "tests"))
    import torch

    from fakehub import FakeHub
    from vae_demo.models.vae import VAE, VAEConfig

    hub = FakeHub().start()
    repos = []
    for i in range(n):
        torch.manual_seed(i)
        VAE(VAEConfig(image_size=28, latent_dim=8, hidden_channels=(8, 16), hidden_dim=64 + i)).save_pretrained(folder / f"r{i}")
        hub.add_folder(f"crowd/vae-{i}", folder / f"r{i}")
        repos.append(f"crowd/vae-{i}")
    return hub, repos


def picture(runs: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 3.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for (label, rows), colour in zip(runs.items(), ("#ea580c", "#2563eb")):
        ax.plot([r["rate_per_min"] for r in rows], [r["ttfr_p95"] for r in rows], "o-", color=colour, label=label)
    ax.axhline(TTFR_TARGET, color="#64748b", ls="--", lw=1, label="target: p95 ≤ 2 s")
    ax.set_xlabel("visitors arriving per minute")
    ax.set_ylabel("p95 time to first result, s")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rates", default="10,20,40,60,90,120")
    p.add_argument("--window", type=float, default=40.0)
    p.add_argument("--think", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--url", default=None)
    p.add_argument("--pid", type=int, default=None)
    p.add_argument("--replicas", type=int, default=0, help="also run the rates against N replicas behind nginx")
    p.add_argument("--flood", type=int, default=30, help="run-time loads in the flood (0: none)")
    p.add_argument("--json", default=None)
    p.add_argument("--picture", default=None)
    args = p.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="vae-demo-crowd-"))
    rates = [float(r) for r in args.rates.split(",")]
    out = {"rates": rates, "window_s": args.window, "think_s": args.think, "runs": {}}
    hub = None
    env = {**os.environ, "VAE_DEMO_MAX_RUNTIME_MB": "4"}  # the flood: about ten of its small models fit
    if args.flood:
        hub, repos = serve_fake_repos(args.flood, logs)
        env.update(HF_ENDPOINT=hub.url.rstrip("/"), HF_HOME=str(logs / "hf"), HF_HUB_OFFLINE="0")
    setups = [("one server", 0)] + ([(f"{args.replicas} replicas behind nginx", args.replicas)] if args.replicas else [])
    try:
        for label, replicas in setups:
            if args.url and not replicas:
                base, proc, pid = args.url.rstrip("/"), None, args.pid
            else:
                base, proc, pid = start(replicas, env, logs)
            try:
                deps = asyncio.run(find_events(base))
                rows = []
                for i, rate in enumerate(rates):
                    row = asyncio.run(at_rate(base, deps, rate, args.window, args.think, args.seed + i))
                    rows.append(row)
                    print(label, json.dumps(row), file=sys.stderr, flush=True)
                out["runs"][label] = rows
                ok = [r["rate_per_min"] for r in rows if r["errors"] == 0 and r["ttfr_p95"] is not None
                      and r["ttfr_p95"] <= TTFR_TARGET]
                out.setdefault("capacity_per_min", {})[label] = max(ok) if ok else None
                if args.flood and not replicas:
                    out["flood"] = asyncio.run(flood(base, repos, pid))
                    out["flood"]["max_runtime_mb"] = float(env["VAE_DEMO_MAX_RUNTIME_MB"])
                    print("flood", json.dumps(out["flood"]), file=sys.stderr, flush=True)
            finally:
                if proc is not None:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=30)
    finally:
        if hub is not None:
            hub.stop()
    out["cores"] = os.cpu_count()
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.picture:
        picture(out["runs"], Path(args.picture))
    return 0


if __name__ == "__main__":
    sys.exit(main())
