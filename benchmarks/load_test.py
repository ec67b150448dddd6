"""Load test: many clients mixing every endpoint, hostile inputs included, on 127.0.0.1 only.

    python benchmarks/load_test.py [--seconds 60] [--clients 32] [--warmup 10] [--burst 160] [--url URL --pid PID]
                                   [--state-session-capacity N] [--shared-concurrency N]

Starts `python app.py --host 127.0.0.1 --port P --device cpu --model mnist` (or attaches to --url), runs
--clients threads for --warmup + --seconds, each one a user calling the HTTP API in a fixed mix (reconstruct,
encode, decode, sample, interpolate, models, and inputs the app must refuse), then sends --burst calls at
once to check that the queue refuses overload quickly instead of piling it up. Prints p50/p95/max per
endpoint, throughput, the server's RSS after warm-up and at the end, and the burst's outcome.

Exit status 1 if any call failed other than the intended rejections, or RSS grew by 10 % or more after warm-up.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import httpx

REPO = Path(__file__).resolve().parent.parent
API = "/gradio_api"
EXAMPLES = sorted((REPO / "checkpoints" / "mnist" / "examples").glob("*.png"))


class Refused(Exception):
    """HTTP 503: the queue is full."""


@dataclass
class Call:
    name: str  # for the report
    api: str
    data: object  # list, or a function of the uploaded files -> list
    uploads: tuple = ()  # names of files in Client.files
    expect: Optional[str] = None  # regex of the error message for an intended rejection; None: must succeed


def mix(latent_dim: int) -> list:
    """(weight, Call): the traffic one client sends."""
    z = json.dumps([0.5] * latent_dim)
    return [
        (20, Call("reconstruct", "reconstruct", lambda f: [f[0], "mnist"], ("digit",))),
        (12, Call("encode", "encode", lambda f: [f[0], "mnist"], ("digit",))),
        (12, Call("decode", "decode", [z, "mnist"])),
        (14, Call("sample", "sample", ["mnist", 16, 7, 1.0])),
        (10, Call("interpolate", "interpolate", lambda f: [f[0], f[1], "mnist", 8, "slerp"], ("digit", "digit2"))),
        (6, Call("models", "models", [])),
        # intended rejections: each must come back as the app's readable error, and nothing else
        (6, Call("reject: text as .png", "encode", lambda f: [f[0], "mnist"], ("text",), "not an image this app can read")),
        (4, Call("reject: bomb", "reconstruct", lambda f: [f[0], "mnist"], ("bomb",), "megapixel limit")),
        (6, Call("reject: z length", "decode", ["[1, 2, 3]", "mnist"], expect="z must be a list of")),
        (5, Call("reject: n=1e9", "sample", ["mnist", 10**9, 0, 1.0], expect=r"64")),
        (5, Call("reject: steps=1e9", "interpolate", lambda f: [f[0], f[0], "mnist", 10**9, "lerp"], ("digit",), r"32")),
    ]


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels and holds almost no data: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def hostile_files() -> dict:
    return {
        "digit": (EXAMPLES[3].name, EXAMPLES[3].read_bytes()),
        "digit2": (EXAMPLES[7].name, EXAMPLES[7].read_bytes()),
        "text": ("notes.png", b"this is not an image\n" * 10),
        "bomb": ("bomb.png", png_header_only(10_000, 10_000)),  # 100 megapixels in 100 bytes
    }


class Client:
    """One user: its own connection pool; uploads its files once, as a browser session does."""

    def __init__(self, base: str, files: dict, timeout: float = 120.0):
        self.base = base.rstrip("/")
        self.http = httpx.Client(timeout=timeout, trust_env=False)  # no proxy between us and 127.0.0.1
        self.files = {k: self.upload(name, data) for k, (name, data) in files.items()}

    def upload(self, name: str, data: bytes) -> dict:
        r = self.http.post(f"{self.base}{API}/upload", files=[("files", (name, data, "image/png"))])
        r.raise_for_status()
        return {"path": r.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}

    def call(self, api: str, data: list):
        """-> ("complete", output) or ("error", message); raises Refused on a full queue, httpx errors on failures."""
        body = json.dumps({"data": data})  # NaN and Infinity as Python writes them: hostile clients send them too
        r = self.http.post(f"{self.base}{API}/call/{api}", content=body, headers={"Content-Type": "application/json"})
        if r.status_code == 503:
            raise Refused(r.text[:200])
        r.raise_for_status()
        event = None
        with self.http.stream("GET", f"{self.base}{API}/call/{api}/{r.json()['event_id']}") as s:
            s.raise_for_status()
            for line in s.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = json.loads(line[5:].strip())
                    if event == "complete":
                        return "complete", payload
                    return "error", (payload or {}).get("error") if isinstance(payload, dict) else payload
        return "error", "the event stream ended without an answer"

    def close(self):
        self.http.close()


@dataclass
class Stats:
    latencies: dict = field(default_factory=dict)  # name -> [seconds]
    ok: int = 0
    rejected: int = 0  # intended rejections with the intended message
    refused: int = 0  # 503 queue full
    failures: list = field(default_factory=list)  # (name, what happened)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, seconds: float, outcome: str, detail: str = ""):
        with self.lock:
            self.latencies.setdefault(name, []).append(seconds)
            if outcome == "ok":
                self.ok += 1
            elif outcome == "rejected":
                self.rejected += 1
            elif outcome == "refused":
                self.refused += 1
            else:
                self.failures.append((name, detail[:300]))


def one_call(client: Client, call: Call) -> tuple:
    data = call.data([client.files[u] for u in call.uploads]) if callable(call.data) else call.data
    try:
        event, payload = client.call(call.api, data)
    except Refused:
        return "refused", ""
    except (httpx.HTTPError, ValueError, KeyError) as e:
        return "failed", f"{type(e).__name__}: {e}"
    if call.expect is None:
        return ("ok", "") if event == "complete" else ("failed", f"error: {payload}")
    if event == "error" and payload and re.search(call.expect, str(payload)):
        return "rejected", ""
    return "failed", f"expected an error matching {call.expect!r}, got {event}: {str(payload)[:200]}"


def percentile(values: list, q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))] if s else float("nan")


def rss_kib(pid: Optional[int]) -> Optional[int]:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_load(base: str, clients: int, seconds: float, warmup: float, pid: Optional[int] = None, latent_dim: int = 32) -> dict:
    """`clients` threads for warmup + seconds; statistics of the measured part (after warm-up) only."""
    files = hostile_files()
    weighted = mix(latent_dim)
    calls = [c for w, c in weighted for _ in range(w)]
    users = [Client(base, files) for _ in range(clients)]
    stats, warm = Stats(), Stats()
    t_start = time.monotonic()
    t_measure, t_end = t_start + warmup, t_start + warmup + seconds
    rss = {"samples": []}

    def user(i: int):
        rng = random.Random(i)
        while (now := time.monotonic()) < t_end:
            call = rng.choice(calls)
            t0 = time.perf_counter()
            outcome, detail = one_call(users[i], call)
            (stats if now >= t_measure else warm).add(call.name, time.perf_counter() - t0, outcome, detail)

    def sampler():
        while time.monotonic() < t_end:
            r = rss_kib(pid)
            if r is not None:
                rss["samples"].append((time.monotonic() - t_start, r))
            time.sleep(1.0)

    threads = [threading.Thread(target=user, args=(i,), daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=sampler, daemon=True))
    for t in threads:
        t.start()
    if pid is not None:
        time.sleep(max(0.0, t_measure - time.monotonic()))
        rss["after_warmup_kib"] = rss_kib(pid)
    for t in threads:
        t.join()
    rss["end_kib"] = rss_kib(pid)
    for u in users:
        u.close()
    every = [s for v in stats.latencies.values() for s in v]
    result = {
        "clients": clients, "seconds": seconds, "warmup": warmup,
        "calls": len(every), "ok": stats.ok, "intended_rejections": stats.rejected, "queue_full": stats.refused,
        "failures": len(stats.failures), "failure_examples": stats.failures[:10],
        "warmup_failures": len(warm.failures), "warmup_failure_examples": warm.failures[:5],
        "throughput_per_s": len(every) / seconds if seconds else 0.0,
        "p50_s": percentile(every, 0.5), "p95_s": percentile(every, 0.95), "max_s": max(every, default=float("nan")),
        "per_endpoint": {k: {"n": len(v), "p50_s": percentile(v, 0.5), "p95_s": percentile(v, 0.95), "max_s": max(v)}
                         for k, v in sorted(stats.latencies.items())},
    }
    if pid is not None and rss.get("after_warmup_kib") and rss.get("end_kib"):
        result["rss_after_warmup_mib"] = rss["after_warmup_kib"] / 1024
        result["rss_end_mib"] = rss["end_kib"] / 1024
        result["rss_peak_mib"] = max(r for _, r in rss["samples"]) / 1024 if rss["samples"] else None
        result["rss_growth_pct"] = 100.0 * (rss["end_kib"] - rss["after_warmup_kib"]) / rss["after_warmup_kib"]
    return result


def burst(base: str, n: int, steps: int = 32) -> dict:
    """n heavy calls released at once: with a bounded queue some are refused (HTTP 503) at once, the rest answered."""
    files = hostile_files()
    client = Client(base, {"digit": files["digit"]})
    data = [client.files["digit"], client.files["digit"], "mnist", steps, "lerp"]
    gate = threading.Barrier(n)
    out = {"answered": 0, "refused": 0, "failed": 0, "refused_latency_s": [], "answered_latency_s": []}
    lock = threading.Lock()
    http = httpx.Client(timeout=300, trust_env=False, limits=httpx.Limits(max_connections=n + 4))

    def fire():
        gate.wait()
        t0 = time.perf_counter()
        try:
            r = http.post(f"{base}{API}/call/interpolate", json={"data": data})
            if r.status_code == 503:
                kind = "refused"
            else:
                r.raise_for_status()
                with http.stream("GET", f"{base}{API}/call/interpolate/{r.json()['event_id']}") as s:
                    text = "".join(s.iter_text())
                kind = "answered" if "event: complete" in text else "failed"
        except httpx.HTTPError:
            kind = "failed"
        with lock:
            out[kind] += 1
            if kind in ("refused", "answered"):
                out[f"{kind}_latency_s"].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=fire, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = client.call("models", [])  # the server still answers
    http.close()
    client.close()
    return {
        "sent": n, "answered": out["answered"], "refused": out["refused"], "failed": out["failed"],
        "refused_max_s": max(out["refused_latency_s"], default=None),
        "answered_p95_s": percentile(out["answered_latency_s"], 0.95),
        "serves_afterwards": after[0] == "complete",
    }


# app.py's demo launched with settings app.py does not (yet) choose, to measure a change before making it.
VARIANT = """
import sys
import app
port, capacity, shared = (int(a) for a in sys.argv[1:4])
demo = app.create_demo(["mnist"], "cpu")
if shared:  # one concurrency group for every event: at most `shared` model calls at once, whatever the endpoint
    for fn in demo.fns.values():
        fn.concurrency_id, fn.concurrency_limit = "model", shared
demo.launch(server_name="127.0.0.1", server_port=port, state_session_capacity=capacity, quiet=True)
"""


def start_server(tmp: Path, state_session_capacity: Optional[int] = None, shared_concurrency: int = 0) -> tuple:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               GRADIO_TEMP_DIR=str(tmp / "gradio"))
    if state_session_capacity or shared_concurrency:
        argv = [sys.executable, "-c", VARIANT, str(port), str(state_session_capacity or 10000), str(shared_concurrency)]
    else:
        argv = [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--model", "mnist"]
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_answering(proc, f"{base}/config", 180, tmp / "server.log")
    return proc, base


def wait_until_answering(proc: subprocess.Popen, url: str, seconds: float, log) -> None:
    """Poll `url` until it answers 200 while the server process lives; RuntimeError if it exits or stays silent
    (then it is killed)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited; see {log}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the app did not answer within {seconds:.0f} s")


def report(load: dict, b: Optional[dict]) -> str:
    lines = [
        f"{load['clients']} clients x {load['seconds']:g} s (after {load['warmup']:g} s warm-up): {load['calls']} calls, "
        f"{load['throughput_per_s']:.1f}/s; ok {load['ok']}, intended rejections {load['intended_rejections']}, "
        f"queue full {load['queue_full']}, failures {load['failures']} (warm-up failures {load['warmup_failures']})",
        f"latency p50 {load['p50_s'] * 1000:.0f} ms, p95 {load['p95_s'] * 1000:.0f} ms, max {load['max_s'] * 1000:.0f} ms",
        f"{'endpoint':24} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}",
    ]
    for k, v in load["per_endpoint"].items():
        lines.append(f"{k:24} {v['n']:6d} {v['p50_s'] * 1000:8.0f} {v['p95_s'] * 1000:8.0f} {v['max_s'] * 1000:8.0f}")
    if "rss_growth_pct" in load:
        lines.append(f"server RSS: {load['rss_after_warmup_mib']:.0f} MiB after warm-up, "
                     f"{load['rss_end_mib']:.0f} MiB at the end (peak {load['rss_peak_mib']:.0f} MiB), "
                     f"growth {load['rss_growth_pct']:+.1f} %")
    for name, what in load["failure_examples"]:
        lines.append(f"FAILED {name}: {what}")
    if b:
        lines.append(f"burst of {b['sent']} interpolate calls at once: {b['answered']} answered "
                     f"(p95 {b['answered_p95_s']:.1f} s), "
                     f"{b['refused']} refused as queue full (slowest refusal {b['refused_max_s'] or 0:.2f} s), "
                     f"{b['failed']} failed; serves afterwards: {b['serves_afterwards']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measured duration (after the warm-up)")
    p.add_argument("--warmup", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--burst", type=int, default=160, help="calls released at once after the run (0: skip)")
    p.add_argument("--url", help="attach to a running app instead of starting one (127.0.0.1 only)")
    p.add_argument("--pid", type=int, help="with --url: the server's pid, for its RSS")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--state-session-capacity", type=int, help="variant: launch(state_session_capacity=N) (Gradio: 10000)")
    p.add_argument("--shared-concurrency", type=int, default=0, help="variant: every event in one concurrency group of N")
    args = p.parse_args(argv)
    if args.url and urlhost(args.url) not in ("127.0.0.1", "localhost", "::1"):
        p.error("the load test runs against loopback only")
    with tempfile.TemporaryDirectory(prefix="vae-load-") as tmp:
        proc = None
        base, pid = args.url, args.pid
        if base is None:
            proc, base = start_server(Path(tmp), args.state_session_capacity, args.shared_concurrency)
            pid = proc.pid
        try:
            load = run_load(base, args.clients, args.seconds, args.warmup, pid)
            b = burst(base, args.burst) if args.burst else None
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
    print(report(load, b))
    if args.json:
        args.json.write_text(json.dumps({"load": load, "burst": b}, indent=2))
    bad = load["failures"] > 0 or load.get("rss_growth_pct", 0) >= 10 or (b and (b["failed"] or not b["serves_afterwards"]))
    return 1 if bad else 0


def urlhost(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""


if __name__ == "__main__":
    sys.exit(main())
