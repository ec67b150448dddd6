"""The trainer behind the Train tab, `/train` and `python -m vae_demo.train`: a small VAE trained for a number of
seconds on a visitor's images or a generated set, reporting the two terms of its loss as it goes and a picture of a
fixed batch's reconstructions and of samples from fixed z every few seconds.

    python -m vae_demo.train --images my_photos.zip --seconds 120 --out my-vae
    python -m vae_demo.train --source shapes --latent-dim 8 --beta 4 --out shapes-vae

The server runs it as its own process (`python -m vae_demo.training.in_app RUN_DIR` or `--standby`, started by
vae_demo/serving/training_jobs.py), so a crash or a memory blow-up here never takes the server down: RUN_DIR holds
settings.json (and images.npy for the visitor's images) in, and events.jsonl, preview-*.png and model/ out. SIGTERM
is Stop: the step in hand finishes and the model is saved with what it learned.

Reads top to bottom: data, model, loop (the loss terms every half second, a preview every PREVIEW_EVERY seconds),
then the model folder: config.json, model.safetensors, a card with the settings and curves, the curves, examples.
"""

import argparse
import contextlib
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from safetensors.torch import save_file

from vae_demo.analysis.pca import fit_pca_lowrank, pca_tensors
from vae_demo.datasets.sources import Source, open_source
from vae_demo.imaging.charts import labelled_grid, loss_terms_chart
from vae_demo.models.recipe import DEFAULT_SECONDS, TrainSettings, check_settings, env_count, model_config
from vae_demo.models.vae import VAE
from vae_demo.training.stats import latent_statistics

PREVIEW_EVERY = 2.0  # seconds between pictures of the reconstructions and samples
FIRST_PREVIEW = 0.3  # the first picture after this much training: something to see at once
LOG_EVERY = 0.5  # seconds between rows of the loss curve
PREVIEW_COLUMNS = 8


def default_threads() -> int:
    """torch threads for a run: all cores but one, so the server beside it keeps a core (VAE_DEMO_TRAIN_THREADS)"""
    return env_count("VAE_DEMO_TRAIN_THREADS", max(1, (os.cpu_count() or 2) - 1))


class Preview:
    """a fixed batch of training images and fixed z: the same pictures redrawn as the model learns"""

    def __init__(self, source: Source, model: VAE, seed: int):
        self.images = source.batch(PREVIEW_COLUMNS)
        g = torch.Generator().manual_seed(seed + 1)
        self.z = torch.randn(PREVIEW_COLUMNS, model.config.latent_dim, generator=g)
        self.scale = max(1, 64 // model.config.image_size)

    @torch.inference_mode()
    def draw(self, model: VAE) -> Image.Image:
        model.eval()
        x = self.images.to(model.device)
        mu, _ = model.encode(x)
        rows = torch.cat([x, model.decode(mu), model.decode(self.z.to(model.device))]).float().cpu()
        model.train()
        return labelled_grid(rows, PREVIEW_COLUMNS, ["training images", "reconstructions", "samples (fixed z)"],
                             scale=self.scale, label_width=130, axis=None)


def train(settings: TrainSettings, source: Source, model_dir: Path, preview_dir: Path, emit: Callable[[dict], None] = lambda e: None,
          stop: Callable[[], bool] = lambda: False, device: torch.device = torch.device("cpu")) -> dict:
    """Train for settings.seconds (or until `stop()`), emitting {"kind": "loss" | "preview" | "saved", ...} events;
    save the model folder to model_dir (previews go to preview_dir) -> the run's outcome (what training.json records)"""
    torch.manual_seed(settings.seed)
    model = VAE(model_config(settings, source.channels, source.likelihood, source.dataset)).to(device)
    model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    preview = Preview(source, model, settings.seed)
    preview.draw(model)  # the first picture loads its font: before the clock starts, not in the first seconds of training
    rows, sums, steps, seen = [], {"rec": 0.0, "kl": 0.0, "n": 0}, 0, 0
    previews, start = 0, time.perf_counter()
    next_log, next_preview = LOG_EVERY, FIRST_PREVIEW

    def log_row(t: float) -> dict:
        """a row of the loss curve: the mean terms of the batches since the last row -> fresh sums"""
        rows.append({"t": round(t, 3), "step": steps, "seen": seen, "rec": sums["rec"] / sums["n"], "kl": sums["kl"] / sums["n"]})
        emit({"kind": "loss", **rows[-1]})
        return {"rec": 0.0, "kl": 0.0, "n": 0}
    model.train()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= settings.seconds or stop():
            break
        for group in opt.param_groups:  # cosine decay over the run's seconds, to a tenth: fast early, settled at the end
            group["lr"] = settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / settings.seconds))))
        x = source.batch(settings.batch_size).to(device).contiguous(memory_format=torch.channels_last)
        outp = model(x, compute_loss=True, beta=settings.beta)
        opt.zero_grad(set_to_none=True)
        outp.loss.backward()
        opt.step()
        source.after_step()
        steps, seen = steps + 1, seen + len(x)
        sums["rec"] += outp.rec_loss.sum().item()
        sums["kl"] += outp.kl.sum().item()
        sums["n"] += len(x)
        elapsed = time.perf_counter() - start
        if elapsed >= next_log:
            sums = log_row(elapsed)
            next_log = elapsed + LOG_EVERY
        if elapsed >= next_preview:
            previews += 1
            path = preview_dir / f"preview-{previews:04d}.png"
            preview.draw(model).save(path.with_suffix(".tmp.png"))
            os.replace(path.with_suffix(".tmp.png"), path)  # the server never reads half a picture
            emit({"kind": "preview", "t": round(elapsed, 3), "path": str(path)})
            next_preview = elapsed + PREVIEW_EVERY
    trained = time.perf_counter() - start
    if sums["n"]:
        log_row(trained)
    outcome = {**settings.to_dict(), "dataset": source.dataset, "channels": source.channels, "likelihood": source.likelihood,
               "images_seen": seen, "steps": steps, "seconds_trained": round(trained, 2), "stopped": trained < settings.seconds - 0.05,
               "distinct_images": source.size(), "images_per_second": round(seen / max(trained, 1e-9), 1),
               "device": str(device), "threads": torch.get_num_threads()}
    folder = save_model(model.eval(), model_dir, settings, source, rows, outcome, preview)
    emit({"kind": "saved", "folder": str(folder), "outcome": outcome})
    return outcome


def command_line(settings: TrainSettings, out: str = "MY_VAE") -> str:
    """the command that trains this model again from the command line"""
    data = "--images YOUR_IMAGES" if settings.source == "images" else f"--source {settings.source}"
    return (f"python -m vae_demo.train {data} --latent-dim {settings.latent_dim} --beta {settings.beta:g} "
            f"--seconds {settings.seconds:g} --image-size {settings.image_size} --seed {settings.seed} --out {shlex.quote(out)}")


def save_model(model: VAE, folder: Path, settings: TrainSettings, source: Source, rows: list, outcome: dict,
               preview: Preview) -> Path:
    """the folder `load_vae` and `python app.py --model` take: weights, config, card, curves, examples, latent stats"""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps(outcome, indent=1))
    (folder / "training_log.json").write_text(json.dumps(rows, indent=1))
    (folder / "train_commands.txt").write_text(command_line(settings, folder.name) + "\n")
    loss_terms_chart(rows, settings.beta).save(folder / "training_curves.png")
    examples = folder / "examples"
    examples.mkdir(exist_ok=True)
    for i, x in enumerate(preview.images[:6]):
        a = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(examples / f"{i}_example.png")
    stats_images = torch.cat([source.batch(512), source.batch(512)])
    (folder / "latent_stats.json").write_text(json.dumps(latent_statistics(model, stats_images)))
    # the linear baseline the Reconstruct tab shows beside the VAE's reconstruction: PCA with as many axes as z has
    save_file(pca_tensors(fit_pca_lowrank(stats_images.flatten(1), settings.latent_dim, settings.seed)),
              str(folder / "pca.safetensors"))
    write_card(folder, settings, rows, outcome)
    return folder


def write_card(folder: Path, settings: TrainSettings, rows: list, outcome: dict) -> None:
    last = rows[-1] if rows else {"rec": float("nan"), "kl": float("nan")}
    lines = [
        "---", "library_name: vae-demo", "tags: [vae, variational-autoencoder, vae-demo]", "license: mit", "---",
        f"# {folder.name}: a VAE trained in vae-demo on {outcome['dataset']}", "",
        f"Trained for {outcome['seconds_trained']:.0f} s" + (" (stopped early)" if outcome["stopped"] else "")
        + f" on {outcome['device']}, {outcome['threads']} thread(s): {outcome['steps']:,} steps of {settings.batch_size} images, "
        f"{outcome['images_seen']:,} images seen ({outcome['distinct_images']:,} distinct), {outcome['images_per_second']:,.0f} per second.",
        "",
        "| setting | value |", "|---|---|",
        f"| source | {settings.source} ({outcome['dataset']}) |",
        f"| image size | {settings.image_size}×{settings.image_size}, {'grey' if outcome['channels'] == 1 else 'colour'} |",
        f"| latent size | {settings.latent_dim} |",
        f"| β | {settings.beta:g} (loss = reconstruction + β · KL) |",
        f"| likelihood | {outcome['likelihood']}" + (" (grey levels as Bernoulli probabilities)" if outcome["likelihood"] == "bernoulli"
                                                     else f" with a fixed σ = 0.1 per pixel (colour)") + " |",
        f"| seconds | {settings.seconds:g} |", f"| seed | {settings.seed} |",
        f"| optimiser | Adam, learning rate {settings.lr:g} decayed to a tenth over the run's seconds (cosine), no KL warm-up |", "",
        f"Final loss terms (mean of the last half second's training batches): reconstruction {last['rec']:.2f} nats, "
        f"KL {last['kl']:.2f} nats per image.", "",
        "![the loss terms as it trained](training_curves.png)", "",
        "## Use it", "```bash", f"python app.py --model {folder.name}   # this folder, unzipped", "```",
        "```python", "from vae_demo.hub.loading import load_vae", f"vae = load_vae({folder.name!r})",
        f"vae.push_to_hub('your-name/{folder.name}')  # then anyone loads it by that repo id", "```", "",
        "## Train it again", "```bash", command_line(settings, folder.name), "```", "",
        "The loss curve's rows are in `training_log.json`; the settings and what the run did in `training.json`.",
    ]
    (folder / "README.md").write_text("\n".join(lines) + "\n")


# --- the server's child process --------------------------------------------------------------------------------
def child_main(argv: list) -> int:
    """python -m vae_demo.training.in_app RUN_DIR: settings.json (+ images.npy) in, events.jsonl and model/ out.
    With --standby instead of RUN_DIR: import and warm up everything first, then wait for a RUN_DIR line on stdin,
    so that a visitor's run starts training at once (the server keeps one such process ready while its Train tab is
    open); stdin closing (the server gone) ends it."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    with contextlib.suppress(OSError):
        os.nice(10)  # the server's requests come first on a shared CPU
    torch.set_num_threads(default_threads())
    if argv == ["--standby"]:
        torch.optim.Adam(torch.nn.Linear(1, 1).parameters())  # the first optimiser imports torch._dynamo
        labelled_grid(torch.zeros(1, 1, 8, 8), 1, ["x"], axis=None)  # and the first picture loads its font
        line = sys.stdin.readline().strip()
        if not line or stopping:
            return 0
        run_dir = Path(line)
    else:
        run_dir = Path(argv[0])
    log = open(run_dir / "events.jsonl", "a", buffering=1)

    def emit(event: dict) -> None:
        log.write(json.dumps(event) + "\n")

    try:
        raw = json.loads((run_dir / "settings.json").read_text())
        settings = TrainSettings(**raw)
        images = np.load(run_dir / "images.npy", allow_pickle=False) if settings.source == "images" else None
        source = open_source(settings.source, settings.image_size, settings.seed, images)
        emit({"kind": "start", "distinct_images": source.size(), "threads": torch.get_num_threads()})
        train(settings, source, run_dir / "model", run_dir, emit, stop=lambda: bool(stopping))
        return 0
    except Exception as e:  # reported to the server as an event, then the process exits non-zero
        emit({"kind": "error", "message": f"{type(e).__name__}: {e}"})
        return 1
    finally:
        log.close()


# --- the command line ------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_demo.train", description="Train a small VAE on your images or a "
                                "generated set for a number of seconds, as the app's Train tab does.")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--images", nargs="+", help="a folder of images, a zip of images, or image files")
    data.add_argument("--source", choices=["digits", "faces", "shapes"], help="a set that needs no upload")
    p.add_argument("--latent-dim", type=float, default=16)
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    p.add_argument("--image-size", type=float, default=32)
    p.add_argument("--seed", type=float, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", required=True, help="the model folder to write")
    return p.parse_args(argv)


def image_files(paths: list) -> list:
    """folders -> the files in them (sorted, recursively); files and zips as they are"""
    files = []
    for p in map(Path, paths):
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return files


def main(argv=None) -> int:
    from vae_demo.imaging.image_sets import read_images
    from vae_demo.device import pick_device
    from vae_demo.errors import DemoError

    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        settings = check_settings("images" if args.images else args.source, args.latent_dim, args.beta, args.seconds,
                                  args.image_size, args.seed)
        own = read_images(image_files(args.images), settings.image_size) if args.images else None
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if own is not None:
        print(f"read {own.summary()}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = open_source(settings.source, settings.image_size, settings.seed, own.images if own else None)
    bar = tqdm(total=round(settings.seconds), unit="s", desc=f"training on {source.dataset}")

    def emit(event: dict) -> None:
        if event["kind"] == "loss":
            bar.n = min(round(event["t"]), bar.total)
            bar.set_postfix(rec=f"{event['rec']:.1f}", kl=f"{event['kl']:.1f}")
        elif event["kind"] == "preview":
            Path(event["path"]).replace(out / "preview.png")

    with tempfile.TemporaryDirectory(prefix="vae-demo-previews-") as previews:
        outcome = train(settings, source, out, Path(previews), emit, device=pick_device(args.device))
    bar.close()
    print(f"saved {out}: {outcome['images_seen']:,} images seen in {outcome['seconds_trained']:.0f} s "
          f"({outcome['images_per_second']:.0f}/s); python app.py --model {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 2 and (sys.argv[1] == "--standby" or Path(sys.argv[1]).is_dir()):
        sys.exit(child_main(sys.argv[1:]))
    sys.exit(main())
