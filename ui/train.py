"""The Train tab: train a VAE on your images or a drawn set and watch the loss terms, reconstructions and samples
live (/train, /stop_training). The run is a process of its own (vae_demo/serving/training_jobs.py); this tab polls
it and draws what it reports."""

import time

import gradio as gr
import pandas as pd

from vae_demo.models.recipe import DEFAULT_SECONDS, IMAGE_SIZES, MAX_BETA, MAX_LATENT, max_seconds
from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import NOT_IN_API, Tab, streamed_user_errors, user_errors

POLL = 0.25  # seconds between looks at the run
SOURCE_LABELS = [("your images", "images"), ("digits (5,000 MNIST)", "digits"), ("cartoon faces (drawn now)", "faces"),
                 ("shapes (dSprites, drawn now)", "shapes")]
ORDINAL = {1: "1st", 2: "2nd", 3: "3rd"}


def curve(rows: list, key: str) -> pd.DataFrame:
    return pd.DataFrame({"seconds": [r["t"] for r in rows], "nats": [r[key] for r in rows]})


def status_line(snap: dict) -> str:
    s, rows = snap["settings"], snap["rows"]
    state = snap["state"]
    if state == "waiting":
        place = snap["place"]
        return (f"**Waiting: you are {ORDINAL.get(place, f'{place}th')} in line.** One run trains at a time on this server; "
                "yours starts when the runs before it end (each one at most its seconds).")
    seen = rows[-1]["seen"] if rows else 0
    terms = f" · reconstruction **{rows[-1]['rec']:.1f}** nats, KL **{rows[-1]['kl']:.1f}** nats" if rows else ""
    note = f" {snap['message']}" if snap["message"] else ""
    if state == "training":
        return (f"**Training on {s['source']}:** {snap['elapsed']:.0f} of {s['seconds']:g} s, {seen:,} images seen{terms}."
                + note)
    if state == "failed":
        return f"**The run ended without a model.** {snap['message']}"
    how = "Stopped" if state == "stopped" else "Done"
    o = snap["outcome"]
    done = (f"**{how}** after {o.get('seconds_trained', 0):.0f} s: {o.get('images_seen', 0):,} images seen{terms}." if o
            else f"**{how}.**")
    if snap["model"]:
        done += (f" **{snap['model']}** is in the Model list above (for you only): pick it to use it in every tab. "
                 "Download it below to keep it.")
    return done + (f" {snap['message']}" if snap["message"] and not snap["model"] else "")


def progress_bar(snap: dict) -> str:
    """the run's share of its seconds as a bar (waiting: empty; ended: full)"""
    share = 1.0 if snap["state"] in ("done", "stopped", "failed") else min(1.0, snap["elapsed"] / snap["settings"]["seconds"])
    colour = "#ef4444" if snap["state"] == "failed" else "#ea580c"
    return (f'<div role="progressbar" aria-valuenow="{share * 100:.0f}" aria-valuemin="0" aria-valuemax="100" '
            f'style="height:10px;border-radius:5px;background:#e5e7eb;overflow:hidden">'
            f'<div style="height:100%;width:{share * 100:.1f}%;background:{colour}"></div></div>')


def recorded_line(recorded: dict) -> str:
    """what the tab says before a visitor trains, over the recorded run's curves and picture"""
    r, rows = recorded["run"], recorded["rows"]
    return (f"**A recorded run** of this trainer, to show what you will see: {r['seconds_trained']:.0f} s on "
            f"{r['dataset']}, latent size {r['latent_dim']}, β {r['beta']:g}: "
            f"{r['images_seen']:,} images seen; reconstruction **{rows[-1]['rec']:.1f}** nats, KL **{rows[-1]['kl']:.1f}** "
            "nats at the end. Pick what to train on and press **Train** for a run of your own.")


def summary(snap: dict) -> dict:
    return {"model": snap["model"], "state": snap["state"], "settings": snap["settings"], "outcome": snap["outcome"],
            "first_preview_after_s": snap["first_preview_after"], "message": snap["message"]}


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    @streamed_user_errors
    def train(images, source: str = "digits", latent_dim: float = 16, beta: float = 1.0, seconds: float = DEFAULT_SECONDS,
              image_size: float = 28, seed: float = 0):
        job = service.start_training(images, source, latent_dim, beta, seconds, image_size, seed)
        shown = None
        while True:
            snap = service.training_snapshot(job)
            key = (snap["state"], snap["place"], len(snap["rows"]), snap["preview"])
            if key != shown:
                shown = key
                yield (progress_bar(snap), status_line(snap), curve(snap["rows"], "rec"), curve(snap["rows"], "kl"),
                       snap["preview"], gr.update(value=snap["zip"], visible=bool(snap["zip"])), summary(snap))
            if job.finished:
                return
            time.sleep(POLL)

    @user_errors
    def stop():
        if service.stop_training():
            return "**Stopping:** the run saves what it has learned so far …"
        return "No run of yours is training or waiting."

    @user_errors
    def choices():
        return gr.update(choices=service.picker_choices())

    recorded = service.recorded_run()  # shown until the visitor trains: the tab has a result on arrival
    rows = recorded["rows"] if recorded else []
    with gr.Tab("Train", id="train") as tab:
        gr.Markdown(texts.TRAIN)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                source = gr.Radio(SOURCE_LABELS, value="digits", label="Train on")
                images = gr.File(file_count="multiple", file_types=["image", ".zip"], type="filepath", visible=False,
                                 label="Your images: a zip, or several PNG / JPEG files", elem_id="train-images")
                latent = gr.Slider(1, MAX_LATENT, value=16, step=1, label="Latent size")
                beta = gr.Number(value=1.0, minimum=0, maximum=MAX_BETA, step=0.25,
                                 label="β, the KL term's weight (1: the VAE; 4–16: smoother, blurrier)")
                seconds = gr.Slider(1, max_seconds(), value=min(DEFAULT_SECONDS, max_seconds()), step=1, label="Seconds")
                size = gr.Dropdown(list(IMAGE_SIZES), value=28, label="Image size (pixels)")
                seed = gr.Number(value=0, precision=0, label="Seed")
                with gr.Row():
                    go = gr.Button("Train", variant="primary", elem_id="train-button")
                    halt = gr.Button("Stop", variant="stop", elem_id="stop-button")
            with gr.Column(scale=2):
                bar = gr.HTML(elem_id="train-progress", padding=False)
                status = gr.Markdown(recorded_line(recorded) if recorded else "Pick what to train on and press **Train**.",
                                     elem_id="train-status")
                with gr.Row():
                    rec_plot = gr.LinePlot(curve(rows, "rec"), x="seconds", y="nats", title="reconstruction −log p(x|z)",
                                           x_title="seconds of training", y_title="nats per image", elem_id="rec-curve",
                                           y_axis_format="~s")  # -2k, not a number cut at the left edge
                    kl_plot = gr.LinePlot(curve(rows, "kl"), x="seconds", y="nats", title="KL(q(z|x) ‖ p(z))",
                                          x_title="seconds of training", y_title="nats per image", elem_id="kl-curve")
                preview = gr.Image(recorded["preview"] if recorded else None, label="A fixed batch, its reconstructions, and samples from fixed z", format="png",
                                   interactive=False, elem_id="train-preview", buttons=["download", "fullscreen"])
                download = gr.File(label="Download the model (a zip: unzip, then python app.py --model FOLDER)",
                                   interactive=False, elem_id="train-download", visible=False)
                with gr.Accordion("The run's settings and figures (JSON)", open=False):
                    info = gr.JSON(label="run")

    # digits at MNIST's own 28 px (framed like MNIST, so drawings work on the model); the others at 32 px, a minute's work
    source.change(lambda s: (gr.update(visible=s == "images"), 28 if s == "digits" else 32), source, [images, size],
                  **NOT_IN_API, queue=False)
    tab.select(lambda: service.jobs.warm(), None, None, **NOT_IN_API, queue=False)  # a training process made ready
    run = go.click(train, [images, source, latent, beta, seconds, size, seed],
                   [bar, status, rec_plot, kl_plot, preview, download, info], api_name="train", concurrency_id="train",
                   concurrency_limit=16, show_progress="hidden")
    run.then(choices, None, [model], **NOT_IN_API, queue=False)  # the trained model joins this visitor's picker
    halt.click(stop, None, [status], api_name="stop_training", concurrency_id="train-stop", concurrency_limit=None)
    return Tab(outputs=[], refresh=lambda m: [])
