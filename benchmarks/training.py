"""Train your own, measured: a phase of bench.py (against its running app) and a standalone command.

    python benchmarks/training.py [--seconds 15] [--rounds 2]      # the trainer against a plain loop only

1. **The trainer against a plain PyTorch loop** over the same model, the same batch and the same data (the bundled
   digits), each in a process of its own with the same threads and niceness, alternated A B A B: images per second.
2. **The first live sample**: from the POST of /train to the first streamed update that carries a picture, for a
   client whose server has no training process ready (cold) and for one whose has (the page readies one when a
   visitor opens the Train tab, and after every run).
3. **The rest of the app while a run trains**: /reconstruct's p50 while a run trains, against its p50 idle
   (before and after), one client, calls one after another.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gradio_http import API, GradioHTTP  # noqa: E402

TRAINER_TARGET = 0.9  # in-app images/s over the plain loop's: at least
FIRST_SAMPLE_TARGET_S = 5.0  # from pressing Train to the first picture: at most
BUSY_TARGET = 2.0  # /reconstruct p50 while training over idle: at most
SETTINGS = dict(source="digits", latent_dim=16, beta=1.0, image_size=32, seed=0)


# --- 1. the trainer against a plain loop ----------------------------------------------------------------------
def plain_loop(seconds: float) -> dict:
    """The plain PyTorch loop: the trainer's model, batch and data, nothing else (no loss rows, no pictures)"""
    import torch

    from vae_demo.datasets.sources import digits
    from vae_demo.models.recipe import TrainSettings, model_config
    from vae_demo.models.vae import VAE
    from vae_demo.training.in_app import default_threads

    os.nice(10)
    torch.set_num_threads(default_threads())
    s = TrainSettings(seconds=seconds, **SETTINGS)
    data = digits(s.image_size, s.seed)
    torch.manual_seed(s.seed)
    model = VAE(model_config(s, data.channels, data.likelihood, data.dataset)).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    model.train()
    seen, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        x = data.batch(s.batch_size).contiguous(memory_format=torch.channels_last)
        loss = model(x, compute_loss=True, beta=s.beta).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
    return {"images_per_second": seen / (time.perf_counter() - start)}


def in_app(seconds: float, folder: Path) -> dict:
    """The in-app trainer as the server runs it: its own process, loss rows and pictures included"""
    folder.mkdir(parents=True)
    from vae_demo.models.recipe import TrainSettings

    (folder / "settings.json").write_text(json.dumps(TrainSettings(seconds=seconds, **SETTINGS).to_dict()))
    subprocess.run([sys.executable, "-m", "vae_demo.training.in_app", str(folder)], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads((folder / "model" / "training.json").read_text())


def trainer_speed(seconds: float, rounds: int) -> dict:
    plain, app = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            out = subprocess.run([sys.executable, __file__, "plain-loop", "--seconds", str(seconds)], cwd=REPO,
                                 capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            plain.append(json.loads(out.stdout.strip().splitlines()[-1])["images_per_second"])
            app.append(in_app(seconds, Path(tmp) / f"run-{r}")["images_per_second"])
    return {"seconds": seconds, "rounds": rounds, "plain": plain, "in_app": app,
            "ratio": statistics.median(app) / statistics.median(plain)}


# --- 2 and 3: against a running app ---------------------------------------------------------------------------
async def _train_stream(client: GradioHTTP, seconds: float, started: dict) -> dict:
    """POST /train and read its updates -> {"first_picture_s", "final"}; started["t"] set when the run trains"""
    data = [[], SETTINGS["source"], SETTINGS["latent_dim"], SETTINGS["beta"], seconds, SETTINGS["image_size"], 0]
    body = {"data": data, "session_hash": client.session_hash}
    t0 = time.perf_counter()
    r = await client.http.post(f"{client.base}{API}/call/train", json=body)
    r.raise_for_status()
    event_id, first, last = r.json()["event_id"], None, None
    async with client.http.stream("GET", f"{client.base}{API}/call/train/{event_id}") as s:
        event = None
        async for line in s.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event in ("generating", "complete"):
                out = json.loads(line[5:])
                if out and out[-1] and out[-1].get("state") == "training":
                    started.setdefault("t", time.perf_counter())
                if first is None and out and out[4]:
                    first = time.perf_counter() - t0
                last = out
                if event == "complete":
                    break
            elif line.startswith("data:") and event == "error":
                raise RuntimeError(f"/train: {line[5:300]}")
    return {"first_picture_s": first, "final": last[-1] if last else None}


async def _reconstruct_p50(client: GradioHTTP, example: Path, n: int) -> list:
    content, times = example.read_bytes(), []
    for _ in range(n):
        t0 = time.perf_counter()
        f = await client.upload(example.name, content)
        await client.call("reconstruct", [f, "mnist"])
        times.append(time.perf_counter() - t0)
    return times


async def against_app(url: str, example: Path, calls: int, run_seconds: float) -> dict:
    """cold and warm first pictures, and /reconstruct idle / training / idle"""
    trainer = GradioHTTP(url, timeout=600, session_hash="bench-training")
    probe = GradioHTTP(url, timeout=120)
    try:
        idle = await _reconstruct_p50(probe, example, calls)
        cold = await _train_stream(trainer, 4, {})  # nothing ready: a fresh process imports torch
        await asyncio.sleep(8)  # the run's end readied the next process (as opening the Train tab does)
        started: dict = {}
        run = asyncio.create_task(_train_stream(trainer, run_seconds, started))
        while "t" not in started and not run.done():
            await asyncio.sleep(0.1)
        busy = await _reconstruct_p50(probe, example, calls)
        busy_done_before_run_end = not run.done()
        warm = await run
        idle += await _reconstruct_p50(probe, example, calls)
    finally:
        await trainer.aclose()
        await probe.aclose()
    p50 = lambda xs: statistics.median(xs)  # noqa: E731
    return {"first_picture_cold_s": cold["first_picture_s"], "first_picture_warm_s": warm["first_picture_s"],
            "cold_state": cold["final"]["state"], "warm_state": warm["final"]["state"],
            "reconstruct_idle_p50_s": p50(idle), "reconstruct_training_p50_s": p50(busy),
            "busy_ratio": p50(busy) / p50(idle), "calls": calls, "busy_calls_inside_run": busy_done_before_run_end,
            "run_images_per_second": (warm["final"] or {}).get("outcome", {}).get("images_per_second")}


def run(url: str, example: Path, smoke: bool) -> dict:
    """bench.py's phase: all three, the app at `url` serving mnist"""
    res = asyncio.run(against_app(url, example, 4 if smoke else 30, 20 if smoke else 60))
    res["trainer"] = trainer_speed(3 if smoke else 15, 1 if smoke else 2)
    return res


def targets_rows(t: dict, verdict, x) -> list:
    """rows for the report's targets table"""
    tr = t["trainer"]
    return [
        [f"in-app trainer images/s / a plain PyTorch loop's (same model, batch, data, threads; {tr['rounds']}× "
         f"{tr['seconds']:g} s each)", f"≥ {TRAINER_TARGET}×", x(tr["ratio"]), verdict(tr["ratio"], TRAINER_TARGET, None, True)],
        ["first live picture after pressing Train (a training process ready, as when the tab is open)",
         f"≤ {FIRST_SAMPLE_TARGET_S:g} s", f"{t['first_picture_warm_s']:.1f} s (none ready: {t['first_picture_cold_s']:.1f} s)",
         verdict(t["first_picture_warm_s"], FIRST_SAMPLE_TARGET_S, None)],
        ["`/reconstruct` p50 while a run trains / idle p50", f"≤ {BUSY_TARGET}×",
         f"{x(t['busy_ratio'])} ({t['reconstruct_training_p50_s'] * 1000:.0f} / {t['reconstruct_idle_p50_s'] * 1000:.0f} ms)",
         verdict(t["busy_ratio"], BUSY_TARGET, None)],
    ]


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", nargs="?", choices=["trainer", "plain-loop"], default="trainer")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    if a.command == "plain-loop":
        print(json.dumps(plain_loop(a.seconds)))
    else:
        print(json.dumps(trainer_speed(a.seconds, a.rounds), indent=1))
