"""Does the app's memory grow with API calls? RSS of the server every --step calls of /decode.

    python benchmarks/rss_growth.py [--calls 3000] [--step 500] [--clients 4] [--session-hash] [--variant capacity200]

Without --session-hash every call is a new Gradio session, as it is for a plain HTTP client; Gradio keeps
up to `state_session_capacity` (10,000 by default) sessions. --variant starts the app through
benchmarks/variants.py.
"""

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench
from gradio_http import Endpoint, GradioHTTP, timed_call
from servers import server_env, start_app


async def run(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="vae-demo-rss-"))
    app_dir = args.app_dir.resolve()
    ex, models = bench.examples(app_dir), bench.bundled(app_dir)
    launcher = [sys.executable, str(Path(__file__).resolve().parent / "variants.py"), args.variant] if args.variant else None
    app = start_app(app_dir, models, "cpu", server_env(tmp, False), tmp, launcher)
    try:
        await bench.first_answer(app, Endpoint("reconstruct", "reconstruct", ex[:1], lambda f, i: [f[0], models[0]]))
        c = GradioHTTP(app.url)
        latent_dim = next(m["latent_dim"] for m in (await c.call("models", []))[0] if m["name"] == models[0])
        await c.aclose()
        ep = Endpoint("decode", "decode", [], lambda f, i: [json.dumps([0.1] * latent_dim), models[0]])
        print(
            f"{'session_hash per client' if args.session_hash else 'no session_hash'}"
            f"{', variant ' + args.variant if args.variant else ''}: RSS after start {app.status_kib('VmRSS') // 1024} MiB"
        )
        done = 0
        while done < args.calls:
            per = args.step // args.clients

            async def worker(k, per=per):
                client = GradioHTTP(app.url, session_hash=f"rss-{k}" if args.session_hash else None)
                try:
                    for i in range(per):
                        t = await timed_call(client, ep, i)
                        if not t.ok:
                            raise RuntimeError(t.error)
                finally:
                    await client.aclose()

            await asyncio.gather(*(worker(k) for k in range(args.clients)))
            done += per * args.clients
            print(f"after {done} calls: RSS {app.status_kib('VmRSS') // 1024} MiB", flush=True)
    finally:
        app.stop()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="RSS of the app as API calls accumulate.")
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--step", type=int, default=500)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--session-hash", action="store_true", help="each client sends one session_hash on every call")
    p.add_argument("--variant", help="a name from benchmarks/variants.py, e.g. capacity200")
    p.add_argument("--app-dir", type=Path, default=bench.REPO)
    asyncio.run(run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
