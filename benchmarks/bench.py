"""Benchmark every vae-demo endpoint against Gradio's own floor, in one run.

    python benchmarks/bench.py [--device cpu|cuda] [--smoke] [--out docs/PERFORMANCE.md]

Starts the app (`python app.py --port P --device D --model <every bundled model>`) and a no-op Gradio
image app (the floor) on free 127.0.0.1 ports, calls both over HTTP as a client does (upload, POST
/gradio_api/call/<api>, SSE to `complete`), and reports each figure as a ratio to the floor measured in
the same run: app and floor calls are interleaved, so a shared, noisy machine slows both alike.

--smoke: a few calls per endpoint (~30 s), the same code paths, the report written to a temporary
folder unless --out is given; the exit status is 1 if any call failed (so CI can run it).
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report
from gradio_http import Endpoint, GradioHTTP, build_from_info, timed_call
import model_only
import training
from servers import server_env, start_app, start_floor

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 240.0  # s from process start to the first answer before the run gives up


@dataclass
class Plan:
    """How much of each phase to run; the full and smoke runs differ only in these numbers."""

    warmup_rounds: int
    rounds: int
    latency_cap_s: float  # the latency phase stops early past this
    client_calls: int
    concurrency: tuple
    seconds_per_level: float
    max_calls_per_level: int
    cold_starts: int  # per server, the first launch included
    model_iters: int
    model_cap_s: float  # per item


FULL = Plan(3, 60, 300, 15, (1, 4, 16), 10.0, 5000, 3, 100, 45.0)
SMOKE = Plan(1, 3, 30, 1, (1, 4, 16), 2.0, 500, 1, 2, 1.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Benchmark vae-demo's endpoints against a no-op Gradio app (the floor).")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--smoke", action="store_true", help="a few calls per endpoint, ~30 s; exit 1 if any call fails")
    p.add_argument(
        "--out",
        type=Path,
        help="the Markdown report to (re)write; default docs/PERFORMANCE.md, or a temporary folder with --smoke",
    )
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--app-dir", type=Path, default=REPO, help="the checkout whose app.py is measured (default: this one)")
    p.add_argument("--launcher", nargs="+", help="argv that replaces `python app.py` (to measure a variant of the app)")
    p.add_argument("--floor-concurrency-limit", type=int, default=2, help="the floor's default_concurrency_limit (app.py: 2)")
    p.add_argument("--no-gradio-profiling", action="store_true", help="do not set GRADIO_PROFILING=1 in the servers")
    p.add_argument("--keep", action="store_true", help="keep the run folder (server logs, Gradio cache)")
    return p.parse_args(argv)


# --- the endpoints ----------------------------------------------------------------------------


def examples(app_dir: Path) -> list:
    ex = sorted((app_dir / "checkpoints" / "mnist" / "examples").glob("*.png"))
    if len(ex) < 2:
        raise SystemExit(f"need two example images in {app_dir}/checkpoints/mnist/examples")
    return [str(p) for p in ex]


async def discover(app: GradioHTTP, model: str, ex: list, sketch: str) -> tuple:
    """The app's /info and /models -> the Endpoint list to time (inputs built from the real parameter names)."""
    info = await app.info()
    described = await app.call("models", [])
    latent_dim = next(m["latent_dim"] for m in described[0] if m["name"] == model)
    z = [round(((k * 7919) % 200 - 100) / 100, 3) for k in range(latent_dim)]  # a fixed z in [-1, 1)
    values = {
        "model": model,
        "n": 64,
        "seed": lambda i: i,
        "temperature": 1.0,
        "steps": 16,
        "method": "lerp",
        "z": json.dumps(z),
    }

    def slider_value(pos, i):
        return round(((i + pos) % 9 - 4) * 0.5, 2)  # in [-2, 2], different on every call

    specs = [  # name in the report, api_name, label, required (the list) or timed only when the app has it
        ("reconstruct", "reconstruct", "(image, model)", True),
        ("encode", "encode", "(image, model)", True),
        ("decode", "decode", "(z JSON, model)", True),
        ("slider_update", "slider_update", f"(model, {latent_dim} slider values)", True),
        ("sample_64", "sample", "(n=64)", True),
        ("interpolate_16_gif", "interpolate", "(16 steps + GIF)", True),
        ("traverse", "traverse", "(z JSON, model, default dims)", False),
        ("edit", "edit", "(image, model, thickness, amount 2)", False),
        ("analogy", "analogy", "(image, mnist-cvae): ten tiles", False),
        ("compare_betas", "compare_betas", "(image): four models, chart, samples", False),
    ]
    names = {m["name"] for m in described[0]}
    extra = {"edit": {"attribute": "thickness", "amount": 2.0}, "analogy": {"model": "mnist-cvae"}}
    eps, labels = [], {}
    for name, api, label, required in specs:
        if not required and "/" + api not in info["named_endpoints"]:
            continue
        if api == "analogy" and "mnist-cvae" not in names or api == "compare_betas" and "mnist-beta-1" not in names:
            continue
        build = build_from_info(info, api, {**values, **extra.get(api, {})}, slider_value if api == "slider_update" else None)
        eps.append(Endpoint(name, api, ex[: build.n_images], build))
        labels[name] = label
    for ep in faces_endpoints(info, names):
        eps.append(ep)
        labels[ep.name] = FACES_LABELS[ep.name]
    for ep in impute_endpoints(info, names, ex):
        eps.append(ep)
        labels[ep.name] = IMPUTE_LABELS[ep.name]
    for ep in sketch_endpoints(info, model, sketch):
        eps.append(ep)
        labels[ep.name] = "(280×280 drawing, model)" if ep.name != "floor_280" else "(no-op echo of the same 280×280 PNG, on the floor)"
    return eps, labels, latent_dim


FACES_LABELS = {
    "floor_face_192": "(no-op echo of a 192×192 colour PNG: faces /reconstruct's answer size, on the floor)",
    "faces_reconstruct": "(a 64×64 face, faces): against the floor's echo of its answer's size",
    "floor_face_sheet": "(no-op echo of a 548×548 colour PNG: faces /sample's sheet size, on the floor)",
    "faces_sample_64": "(n=64, faces): against the floor's echo of its sheet's size",
}


def faces_endpoints(info: dict, names: set) -> list:
    """faces /reconstruct and /sample (64), each against the floor's echo of a colour image of its answer's size
    (a 64 px face at the page's 3x; the 8 x 8 sheet of 64 px faces)"""
    folder = REPO / "checkpoints" / "faces" / "examples"
    faces = sorted(folder.glob("*.png"))
    if "faces" not in names or not faces:
        return []
    from PIL import Image

    tmp = Path(tempfile.mkdtemp(prefix="bench-faces-"))
    files = {}
    for name, side in (("floor_face_192", 192), ("floor_face_sheet", 8 * (64 + 4) + 4)):
        files[name] = str(tmp / f"{name}.png")
        Image.open(faces[0]).convert("RGB").resize((side, side), Image.NEAREST).save(files[name])
    values = {"model": "faces", "n": 64, "seed": lambda i: i, "temperature": 1.0}
    return [Endpoint("floor_face_192", "echo", [files["floor_face_192"]], lambda f, i: [f[0]]),
            Endpoint("faces_reconstruct", "reconstruct", [str(faces[0])], lambda f, i: [f[0], "faces"], floor="floor_face_192"),
            Endpoint("floor_face_sheet", "echo", [files["floor_face_sheet"]], lambda f, i: [f[0]]),
            Endpoint("faces_sample_64", "sample", [], build_from_info(info, "sample", values), floor="floor_face_sheet")]


IMPUTE_LABELS = {
    "floor_impute_row": "(no-op echo of a 1048×120 colour PNG: /impute's row of nine tiles, on the floor)",
    "impute": "(image, mnist, bottom half, metropolis, n=8; row, JSON, spread): against the floor's echo of its row's size",
}


def impute_endpoints(info: dict, names: set, ex: list) -> list:
    """/impute with its defaults (issue #28: within 5x Gradio's floor of the same output size): a test digit's bottom
    half filled in eight times, against the floor's echo of an image of its row's size (nine 112 px tiles)"""
    if "/impute" not in info["named_endpoints"] or "mnist" not in names:
        return []
    from PIL import Image

    path = Path(tempfile.mkdtemp(prefix="bench-impute-")) / "row.png"
    row = Image.new("RGB", (9 * (112 + 4) + 4, 120), "white")
    for k in range(9):
        row.paste(Image.open(ex[k % len(ex)]).convert("RGB").resize((112, 112), Image.NEAREST), (4 + k * 116, 4))
    row.save(path)
    values = {"model": "mnist", "mask": "bottom half", "method": "metropolis", "n": 8, "seed": lambda i: i}
    return [Endpoint("floor_impute_row", "echo", [str(path)], lambda f, i: [f[0]]),
            Endpoint("impute", "impute", ex[7:8], build_from_info(info, "impute", values), floor="floor_impute_row")]


def floor_endpoint(ex: list) -> Endpoint:
    return Endpoint("floor", "echo", ex[:1], lambda files, i: [files[0]])


def sketch_file(ex: list, folder: Path) -> str:
    """A drawing as the app's sketchpad sends it: a 280 x 280 RGBA layer, black strokes (an example digit, enlarged)."""
    from PIL import Image

    digit = Image.open(ex[3]).convert("L").resize((200, 200), Image.BICUBIC).point(lambda v: 255 if v > 110 else 0)
    layer = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    layer.paste(Image.new("RGBA", (200, 200), (0, 0, 0, 255)), (40, 40), digit)
    path = folder / "sketch-280.png"
    layer.save(path)
    return str(path)


def sketch_endpoints(info: dict, model: str, sketch: str) -> list:
    """The sketchpad's round trip (one stroke's answer) and the floor's echo of an image of the same size."""
    if "/reconstruct_sketch" not in info["named_endpoints"]:
        return []
    white = {"background": None, "layers": [], "composite": None}
    return [Endpoint("floor_280", "echo", [sketch], lambda files, i: [files[0]]),
            Endpoint("sketch_reconstruct", "reconstruct_sketch", [sketch],
                     lambda files, i: [{**white, "layers": [files[0]], "composite": files[0]}, model], floor="floor_280")]


# --- phases -----------------------------------------------------------------------------------


async def first_answer(server, ep: Endpoint) -> float:
    """Seconds from the server's process start to its first successful answer to `ep`."""
    client = GradioHTTP(server.url, timeout=60)
    try:
        while True:
            if not server.alive():
                raise RuntimeError(f"{server.name} exited during start-up:\n{server.log_tail()}")
            t = await timed_call(client, ep, 0)
            if t.ok:
                return time.perf_counter() - server.started
            if "CallError" in (t.error or "") or time.perf_counter() - server.started > STARTUP_TIMEOUT:
                raise RuntimeError(f"{server.name} did not answer /{ep.api_name}: {t.error}\n{server.log_tail()}")
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def traces_by_fn(client: GradioHTTP) -> dict:
    """GRADIO_PROFILING traces -> {fn_name: {phase: [ms, ...]}}; {} when profiling is off."""
    try:
        traces = await client.get_json("/gradio_api/profiling/traces")
    except httpx.HTTPError:
        return {}
    out: dict = {}
    for t in traces:
        d = out.setdefault(t["fn_name"], {})
        for k in ("queue_wait_ms", "preprocess_ms", "fn_call_ms", "postprocess_ms", "total_ms"):
            d.setdefault(k[:-3], []).append(t[k] / 1000)
    return out


async def clear_traces(*clients):
    for c in clients:
        try:
            await c.post_json("/gradio_api/profiling/clear")
        except httpx.HTTPError:
            pass


async def latency_phase(
    app_url: str, floor_url: str, eps: list, floor_ep: Endpoint, plan: Plan, failures: list, after_warmup=lambda: None
) -> dict:
    app, floor = GradioHTTP(app_url), GradioHTTP(floor_url)
    order = [(floor, floor_ep)] + [(floor if ep.name.startswith("floor") else app, ep) for ep in eps]
    for w in range(plan.warmup_rounds):
        for c, ep in order:
            await timed_call(c, ep, 10_000 + w)
    after_warmup()
    await clear_traces(app, floor)
    runs = {ep.name: [] for _, ep in order}
    deadline = time.perf_counter() + plan.latency_cap_s
    rounds = 0
    for r in range(plan.rounds):
        if time.perf_counter() > deadline:
            break
        k = r % len(order)
        for c, ep in order[k:] + order[:k]:  # rotate so no endpoint always runs right after the same one
            t = await timed_call(c, ep, r)
            runs[ep.name].append(t)
            if not t.ok:
                failures.append(f"latency /{ep.api_name}: {t.error}")
        rounds += 1
    app_traces, floor_traces = await traces_by_fn(app), await traces_by_fn(floor)
    await app.aclose()
    await floor.aclose()
    return {"rounds": rounds, "runs": runs, "app_traces": app_traces, "floor_traces": floor_traces}


async def load(url: str, ep: Endpoint, clients: int, seconds: float, max_calls: int) -> tuple:
    """`clients` closed-loop clients for `seconds` -> (timings, wall seconds until the last call returned)."""
    timings: list = []
    deadline = time.perf_counter() + seconds

    async def worker(k):
        c = GradioHTTP(url)
        i = k * 1_000_000
        try:
            while time.perf_counter() < deadline and len(timings) < max_calls:
                timings.append(await timed_call(c, ep, i))
                i += 1
        finally:
            await c.aclose()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return timings, time.perf_counter() - t0


async def concurrency_phase(app_url: str, floor_url: str, ep: Endpoint, floor_ep: Endpoint, plan: Plan, failures: list) -> dict:
    levels = {}
    app_c, floor_c = GradioHTTP(app_url), GradioHTTP(floor_url)
    half = plan.seconds_per_level / 2
    for n in plan.concurrency:
        acc = {"app": ([], 0.0), "floor": ([], 0.0)}
        await clear_traces(app_c)
        for who in ("floor", "app", "app", "floor"):  # ABBA
            url, e = (app_url, ep) if who == "app" else (floor_url, floor_ep)
            timings, wall = await load(url, e, n, half, plan.max_calls_per_level // 4)
            acc[who] = (acc[who][0] + timings, acc[who][1] + wall)
        tr = trace_of(await traces_by_fn(app_c), ep) or {}
        lv = {}
        for who, (timings, wall) in acc.items():
            ok = [t.seconds for t in timings if t.ok]
            bad = [t for t in timings if not t.ok]
            failures += [f"concurrency {n} /{(ep if who == 'app' else floor_ep).api_name}: {t.error}" for t in bad]
            lv[who] = {
                "calls": len(timings),
                "ok": len(ok),
                "failures": len(bad),
                "wall_s": wall,
                "rps": len(ok) / wall if wall else 0.0,
                **report.latency_stats(ok),
            }
        if tr:
            lv["app"]["server_queue_wait_p50"] = report.pct(tr["queue_wait"], 50)
            lv["app"]["server_fn_call_p50"] = report.pct(tr["fn_call"], 50)
        lv["clients"] = n
        lv["ratio_rps"] = lv["app"]["rps"] / lv["floor"]["rps"] if lv["floor"]["rps"] else float("nan")
        levels[str(n)] = lv
        print(
            f"  {n:>2} clients: floor {lv['floor']['rps']:.1f} req/s, app {lv['app']['rps']:.1f} req/s "
            f"({lv['ratio_rps']:.2f}×), app p95 {lv['app']['p95'] * 1000:.0f} ms",
            flush=True,
        )
    await app_c.aclose()
    await floor_c.aclose()
    return {"seconds_per_level": plan.seconds_per_level, "levels": levels}


def trace_of(traces: dict, ep: Endpoint):
    """An endpoint's GRADIO_PROFILING traces: they are keyed by the handler's function name, which app.py
    gives the api_name (an older app.py called the slider handler slider_decode); the floor's is `echo`."""
    for name in (ep.api_name, {"slider_update": "slider_decode"}.get(ep.api_name)):
        if name in traces:
            return traces[name]
    return None


def gradio_client_phase(
    app_url: str, floor_url: str, eps: list, floor_ep: Endpoint, plan: Plan, tmp: Path, failures: list
) -> dict:
    """The same calls through gradio_client (it also downloads every output file, as its default does)."""
    from gradio_client import Client, handle_file

    dl = tmp / "gradio_client_downloads"
    app = Client(app_url, verbose=False, download_files=str(dl))
    floor = Client(floor_url, verbose=False, download_files=str(dl))
    chosen = [floor_ep] + [ep for ep in eps if ep.name in ("reconstruct", "decode")]
    runs = {ep.name: [] for ep in chosen}
    for i in range(plan.client_calls + 1):  # the first round is a warm-up
        for ep in chosen:
            c = floor if ep is floor_ep else app
            args = ep.build([handle_file(p) for p in ep.uploads], i)
            t0 = time.perf_counter()
            try:
                c.predict(*args, api_name="/" + ep.api_name)
                ok, err = True, None
            except Exception as e:  # gradio_client raises AppError, httpx errors, ValueError...
                ok, err = False, f"{type(e).__name__}: {e}"[:300]
                failures.append(f"gradio_client /{ep.api_name}: {err}")
            if i:
                runs[ep.name].append((time.perf_counter() - t0, ok))
    for c in (app, floor):
        c.close()
    return runs


# --- the run ----------------------------------------------------------------------------------


def bundled(app_dir: Path) -> list:
    """Every model bundled in app_dir/checkpoints (vae_demo.loading.bundled_models' rule: a folder with config.json
    and model.safetensors; not imported, since that would import torch here), mnist first: the app's default
    model is the first one, and the example images are MNIST digits."""
    names = sorted(
        p.name
        for p in (app_dir / "checkpoints").iterdir()
        if (p / "config.json").is_file() and (p / "model.safetensors").is_file()
    )
    return sorted(names, key=lambda n: n != "mnist") or ["mnist"]


def git_state(app_dir: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=app_dir, capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=app_dir, capture_output=True, text=True, check=False
        ).stdout
        return (head or "not a git checkout") + (" + uncommitted changes" if dirty.strip() else "")
    except OSError:
        return "unknown"


def summarise_latency(lat: dict, labels: dict, eps: list, floor_ep: Endpoint) -> dict:
    runs = lat["runs"]

    def secs(name):
        return [t.seconds if t.ok else None for t in runs[name]]

    f_ok = [s for s in secs("floor") if s is not None]
    floor = {"api_name": floor_ep.api_name, "failures": sum(not t.ok for t in runs["floor"]), **report.latency_stats(f_ok)}
    out = {"rounds": lat["rounds"], "floor": floor, "endpoints": {}, "server_phases": {}}
    for ep in eps:
        a = secs(ep.name)
        ok = [s for s in a if s is not None]
        st = report.latency_stats(ok)
        r, ci = report.ratio_ci(a, secs(ep.floor))
        out["endpoints"][ep.name] = {
            "api_name": ep.api_name,
            "label": labels[ep.name],
            "failures": len(a) - len(ok),
            **st,
            "ratio_p50": r,
            "ratio_p50_ci": list(ci),
            "ratio_p95": st["p95"] / report.latency_stats([s for s in secs(ep.floor) if s is not None])["p95"] if ok and f_ok else float("nan"),
            "floor": ep.floor,
        }
    for name, ep, traces in [("floor", floor_ep, lat["floor_traces"])] + [(ep.name, ep, lat["app_traces"]) for ep in eps]:
        tr = trace_of(traces, ep)
        if tr:
            client = floor["p50"] if name == "floor" else out["endpoints"][name]["p50"]
            out["server_phases"][name] = {k: report.pct(v, 50) for k, v in tr.items()} | {"client_p50": client}
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = SMOKE if args.smoke else FULL
    app_dir = args.app_dir.resolve()
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="vae-demo-bench-"))
    out = args.out or (tmp / "PERFORMANCE.md" if args.smoke else REPO / "docs" / "PERFORMANCE.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    env = server_env(tmp, not args.no_gradio_profiling)
    ex = examples(app_dir)
    models = bundled(app_dir)
    failures: list = []
    res: dict = {"smoke": args.smoke}
    loadavg_start = _loadavg()
    print(f"run folder {tmp}; models {models}; device {args.device}", flush=True)

    def say(msg):
        print(f"[{time.perf_counter() - t_start:5.1f} s] {msg}", flush=True)

    floor_ep = floor_endpoint(ex)
    cold = {"floor": [], "app": []}
    app = floor = None
    try:
        # 1. both servers, one after the other so their start-ups do not overlap (the first cold start of each)
        floor = start_floor(tmp, env, tmp, args.floor_concurrency_limit)
        cold["floor"].append(asyncio.run(first_answer(floor, floor_ep)))
        floor_rss0 = floor.status_kib("VmRSS")
        app = start_app(app_dir, models, args.device, env, tmp, args.launcher)
        probe = Endpoint("reconstruct", "reconstruct", ex[:1], lambda files, i: [files[0], models[0]])
        cold["app"].append(asyncio.run(first_answer(app, probe)))
        app_rss0 = app.status_kib("VmRSS")
        say(f"cold start: floor {cold['floor'][0]:.1f} s, app {cold['app'][0]:.1f} s")

        async def _discover():
            c = GradioHTTP(app.url)
            try:
                return await discover(c, models[0], ex, sketch_file(ex, tmp))
            finally:
                await c.aclose()

        eps, labels, _ = asyncio.run(_discover())

        # 2. latency, one client, interleaved with the floor
        say(f"latency: {plan.rounds} rounds of {len(eps) + 1} calls")
        warm = {}  # the app's memory once every endpoint has run: later growth is per-call, not first-use

        def after_warmup():
            warm.update(rss_kib=app.status_kib("VmRSS") or 0, calls=GradioHTTP.calls[app.url])

        lat = asyncio.run(latency_phase(app.url, floor.url, eps, floor_ep, plan, failures, after_warmup))
        mid = {"rss_kib": app.status_kib("VmRSS") or 0, "calls": GradioHTTP.calls[app.url]}
        res["latency"] = summarise_latency(lat, labels, eps, floor_ep)
        res["latency"]["warmup_rounds"] = plan.warmup_rounds
        for name, e in res["latency"]["endpoints"].items():
            print(
                f"  {name:<20} p50 {e['p50'] * 1000:7.1f} ms  p95 {e['p95'] * 1000:7.1f} ms  {e['ratio_p50']:.2f}× floor",
                flush=True,
            )

        # 2b. gradio_client, secondary
        say("gradio_client")
        gc_runs = gradio_client_phase(app.url, floor.url, eps, floor_ep, plan, tmp, failures)
        gc_floor = [s for s, ok in gc_runs["floor"] if ok]
        res["gradio_client"] = {"endpoints": {}}
        for name, runs in gc_runs.items():
            ok = [s for s, good in runs if good]
            st = report.latency_stats(ok)
            raw = res["latency"]["floor"]["p50"] if name == "floor" else res["latency"]["endpoints"][name]["p50"]
            res["gradio_client"]["endpoints"][name] = {
                **st,
                "failures": len(runs) - len(ok),
                "ratio_p50": st["p50"] / report.pct(gc_floor, 50) if gc_floor else float("nan"),
                "overhead_p50": st["p50"] - raw,
            }

        # 3. concurrency on /reconstruct
        say("concurrency")
        rec = next(ep for ep in eps if ep.name == "reconstruct")
        res["concurrency"] = asyncio.run(concurrency_phase(app.url, floor.url, rec, floor_ep, plan, failures))

        # 3b. train your own: the trainer against a plain loop, the first picture, /reconstruct while a run trains
        say("training")
        res["training"] = training.run(app.url, Path(ex[0]), args.smoke)
        t = res["training"]
        say(f"  trainer {t['trainer']['ratio']:.2f}x a plain loop; first picture {t['first_picture_warm_s']:.1f} s "
            f"(cold {t['first_picture_cold_s']:.1f} s); /reconstruct while training {t['busy_ratio']:.2f}x idle")

        # 6. memory, after all of the load; every raw HTTP call left a Gradio session behind
        calls = GradioHTTP.calls[app.url]
        mem = {
            "app_rss_start_mib": (app_rss0 or 0) / 1024,
            "app_rss_warm_mib": warm["rss_kib"] / 1024,
            "app_rss_end_mib": (app.status_kib("VmRSS") or 0) / 1024,
            "app_peak_rss_mib": (app.status_kib("VmHWM") or 0) / 1024,
            "sessionless_calls": calls,
            "floor_rss_start_mib": (floor_rss0 or 0) / 1024,
            "floor_peak_rss_mib": (floor.status_kib("VmHWM") or 0) / 1024,
        }
        mem["app_peak_rss_gib"] = mem["app_peak_rss_mib"] / 1024
        if calls > mid["calls"]:
            # The growth rate of the last calls (the concurrency phase): ~0 once an app caps its session store
            # (launch(state_session_capacity=...)) below the calls made so far, ~250 KiB per call when it does not.
            per_call = (mem["app_rss_end_mib"] - mid["rss_kib"] / 1024) / (calls - mid["calls"])
            mem["growth_kib_per_call"] = per_call * 1024
            mem["growth_calls"] = calls - mid["calls"]
            rest = max(0, report.GRADIO_SESSION_CAPACITY - calls)  # sessions Gradio's default store still takes
            mem["projected_full_store_gib"] = (mem["app_rss_end_mib"] + max(0.0, per_call) * rest) / 1024
        res["memory"] = mem
        app.stop()
        floor.stop()

        # 5. model-only time, in this process, with the servers gone
        say("model-only (in-process)")
        res["model_only"] = model_only.run(app_dir, models, args.device, ex, plan.model_iters, plan.model_cap_s, tmp)

        # 4. more cold starts, alternating, so the median has company
        for _ in range(plan.cold_starts - 1):
            with start_floor(tmp, env, tmp, args.floor_concurrency_limit) as s:
                cold["floor"].append(asyncio.run(first_answer(s, floor_ep)))
            with start_app(app_dir, models, args.device, env, tmp, args.launcher) as s:
                cold["app"].append(asyncio.run(first_answer(s, probe)))
        res["cold_start"] = {
            **cold,
            "floor_median": statistics.median(cold["floor"]),
            "app_median": statistics.median(cold["app"]),
        }
        res["cold_start"]["ratio"] = res["cold_start"]["app_median"] / res["cold_start"]["floor_median"]
        say(f"cold start medians: floor {res['cold_start']['floor_median']:.1f} s, app {res['cold_start']['app_median']:.1f} s")
    except Exception as e:
        failures.append(f"run aborted: {type(e).__name__}: {e}")
        print(f"FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        if app is not None:
            print(f"--- app log tail ---\n{app.log_tail()}", file=sys.stderr)
    finally:
        for s in (app, floor):
            if s is not None:
                s.stop()

    import gradio
    import gradio_client

    res["failures"] = failures
    res["machine"] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench.py" + (" " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else ""),
        "duration_s": time.perf_counter() - t_start,
        "cpu": f"{_cpu_name()} ({platform.machine()})",
        "cores": os.cpu_count(),
        "loadavg_start": loadavg_start,
        "loadavg_end": _loadavg(),
        "torch_threads": res.get("model_only", {}).get("torch_threads", "?"),
        "device": args.device,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "gradio": gradio.__version__,
        "gradio_client": gradio_client.__version__,
        "httpx": httpx.__version__,
        "app_dir": str(app_dir),
        "git": git_state(app_dir),
        "models": models,
        "floor_concurrency_limit": args.floor_concurrency_limit,
        "gradio_profiling": not args.no_gradio_profiling,
    }
    if "latency" in res:
        plots = {"latency": out.parent / "performance_latency.png", "concurrency": out.parent / "performance_concurrency.png"}
        report.plot_latency(res, plots["latency"])
        if res.get("concurrency"):
            report.plot_concurrency(res, plots["concurrency"])
        report.write_doc(out, res, {k: v.name for k, v in plots.items()})
        print(f"wrote {out} and {', '.join(str(p) for p in plots.values())}")
    json_path = args.json or tmp / "results.json"
    json_path.write_text(json.dumps(res, indent=1, default=str))
    print(f"raw results: {json_path}")
    if not args.keep:
        shutil.rmtree(tmp / "gradio-cache", ignore_errors=True)
        shutil.rmtree(tmp / "gradio_client_downloads", ignore_errors=True)
        shutil.rmtree(tmp / "png-cache", ignore_errors=True)
        shutil.rmtree(tmp / "tmp", ignore_errors=True)
        shutil.rmtree(tmp / "gifs", ignore_errors=True)
    if failures:
        print(f"{len(failures)} failed call(s); first: {failures[0]}", file=sys.stderr)
        return 1
    return 0


def _loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def _cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def _version(mod: str) -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version(mod)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
