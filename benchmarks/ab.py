"""A/B: the app as it is against variants of it (benchmarks/variants.py), in one run beside the floor.

    python benchmarks/ab.py --variants threads1 no_posterior [--endpoints reconstruct sample_64] [--rounds 20]
                            [--concurrency 16 --seconds 8]

Every server runs at once (the base app, one app per variant, the floor), idle while another is called.
Latency: rounds in which each server answers each endpoint once, in a rotating order; the figure is
variant p50 / base p50 with a paired bootstrap interval. Concurrency: closed-loop clients on /reconstruct,
base and variant in turns (ABBA). Prints Markdown tables.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
import report
from gradio_http import GradioHTTP, timed_call
from servers import server_env, start_app, start_floor

VARIANTS_PY = Path(__file__).resolve().parent / "variants.py"


def launcher(variant: str) -> list:
    return [sys.executable, str(VARIANTS_PY), variant]


CLIENT_VARIANTS = {"client_session": "the base app, called by a client that sends one session_hash on every call"}


async def latency(servers: dict, eps: list, floor_ep, rounds: int, warmup: int) -> dict:
    clients = {
        name: GradioHTTP(s.url, session_hash="ab-session" if name in CLIENT_VARIANTS else None) for name, s in servers.items()
    }
    order = [("floor", floor_ep)] + [(name, ep) for ep in eps for name in servers if name != "floor"]
    runs = {(name, ep.name): [] for name, ep in order}
    for r in range(warmup + rounds):
        k = r % len(order)
        for name, ep in order[k:] + order[:k]:
            t = await timed_call(clients[name], ep, r)
            if r >= warmup:
                runs[(name, ep.name)].append(t.seconds if t.ok else None)
                if not t.ok:
                    print(f"  failed: {name} /{ep.api_name}: {t.error}", file=sys.stderr)
    for c in clients.values():
        await c.aclose()
    return runs


async def concurrency(servers: dict, ep, clients: int, seconds: float) -> dict:
    out = {}
    for name in servers:
        if name in ("floor", "base") or name in CLIENT_VARIANTS:
            continue
        acc = {"base": [[], 0.0], name: [[], 0.0]}
        for who in ("base", name, name, "base"):
            timings, wall = await bench.load(servers[who].url, ep, clients, seconds / 2, 5000)
            acc[who][0] += [t for t in timings if t.ok]
            acc[who][1] += wall
        out[name] = {
            who: {"rps": len(ts) / wall, "p95": report.pct([t.seconds for t in ts], 95)} for who, (ts, wall) in acc.items()
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="A/B the app against variants of it, beside the floor.")
    p.add_argument(
        "--variants",
        nargs="+",
        required=True,
        help="names from benchmarks/variants.py (a,b applies both), or client_session: the base app called with a session_hash",
    )
    p.add_argument("--endpoints", nargs="+", help="report names from bench.py (default: all)")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=0, help="also run this many clients on /reconstruct (0: skip)")
    p.add_argument("--seconds", type=float, default=8.0, help="per server and concurrency level")
    p.add_argument("--device", default="cpu")
    p.add_argument("--app-dir", type=Path, default=bench.REPO)
    args = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="vae-demo-ab-"))
    env = server_env(tmp, False)
    app_dir = args.app_dir.resolve()
    ex, models = bench.examples(app_dir), bench.bundled(app_dir)
    floor_ep = bench.floor_endpoint(ex)
    probe = bench.Endpoint("reconstruct", "reconstruct", ex[:1], lambda files, i: [files[0], models[0]])
    servers = {}
    try:
        servers["floor"] = start_floor(tmp, env, tmp, 2)
        asyncio.run(bench.first_answer(servers["floor"], floor_ep))
        for v in ["base", *args.variants]:
            if v in CLIENT_VARIANTS:
                servers[v] = servers["base"]
                continue
            servers[v] = start_app(app_dir, models, args.device, env, tmp, launcher(v))
            asyncio.run(bench.first_answer(servers[v], probe))

        async def _discover():
            c = GradioHTTP(servers["base"].url)
            try:
                return await bench.discover(c, models[0], ex)
            finally:
                await c.aclose()

        eps, _, _ = asyncio.run(_discover())
        eps = [ep for ep in eps if not args.endpoints or ep.name in args.endpoints]
        t0 = time.perf_counter()
        runs = asyncio.run(latency(servers, eps, floor_ep, args.rounds, args.warmup))
        print(f"latency: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        conc = {}
        if args.concurrency:
            rec = next(ep for ep in eps if ep.name == "reconstruct") if any(ep.name == "reconstruct" for ep in eps) else None
            if rec:
                conc = asyncio.run(concurrency(servers, rec, args.concurrency, args.seconds))
        rss = {name: (s.status_kib("VmHWM") or 0) / 1024 for name, s in servers.items()}
    finally:
        for s in {id(s): s for s in servers.values()}.values():
            s.stop()

    floor = runs[("floor", "floor")]
    print(
        f"\nfloor p50 {report.pct([x for x in floor if x], 50) * 1000:.1f} ms; {args.rounds} rounds; "
        f"load average {Path('/proc/loadavg').read_text().split()[0]}\n"
    )
    rows = []
    for ep in eps:
        base = runs[("base", ep.name)]
        b50 = report.pct([x for x in base if x], 50)
        rows.append([ep.name, "base", f"{b50 * 1000:.1f}", report.x(report.ratio_ci(base, floor)[0]), "1.00×", ""])
        for v in args.variants:
            var = runs[(v, ep.name)]
            r, ci = report.ratio_ci(var, base)
            rows.append(
                [
                    ep.name,
                    v,
                    f"{report.pct([x for x in var if x], 50) * 1000:.1f}",
                    report.x(report.ratio_ci(var, floor)[0]),
                    report.x(r),
                    f"{report.x(ci[0])}–{report.x(ci[1])}",
                ]
            )
    print(report.table(["endpoint", "server", "p50 ms", "p50 / floor", "p50 / base", "95% interval"], rows))
    if conc:
        print(f"\n{args.concurrency} clients on /reconstruct, {args.seconds:g} s each (ABBA)\n")
        print(
            report.table(
                ["variant", "base req/s", "variant req/s", "variant / base", "base p95 ms", "variant p95 ms"],
                [
                    [
                        v,
                        f"{c['base']['rps']:.1f}",
                        f"{c[v]['rps']:.1f}",
                        report.x(c[v]["rps"] / c["base"]["rps"]),
                        f"{c['base']['p95'] * 1000:.0f}",
                        f"{c[v]['p95'] * 1000:.0f}",
                    ]
                    for v, c in conc.items()
                ],
            )
        )
    print("\npeak RSS MiB: " + ", ".join(f"{k} {v:.0f}" for k, v in rss.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
