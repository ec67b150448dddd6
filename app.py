"""vae-demo: see what a variational autoencoder does. Wires the UI to vae_demo's plain functions.

    python app.py [--model mnist ...] [--device auto|cpu|cuda|mps] [--host 127.0.0.1] [--port 7860] [--share]
"""

import argparse
import logging
import os
import secrets
import tempfile
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from ui import analogy, api_tab, betas, channels, fill_in, interpolate, latent_map, reconstruct, sample, sliders, train
from ui.common import MODEL_QUEUE, NOT_IN_API, link_owner, user_errors
from ui import gradio_departures
from vae_demo.serving import texts
from vae_demo.device import DEVICE_CHOICES, pick_device, reuse_freed_memory
from vae_demo.imaging.uploads import MAX_UPLOAD_BYTES
from vae_demo.hub.loading import CHECKPOINTS_DIR, bundled_models
from vae_demo.serving.registry import Limits, as_owner
from vae_demo.serving.model_endpoints import RELOAD
from vae_demo.serving.service import DemoService

log = logging.getLogger("vae_demo.app")
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
TABS = (reconstruct, sample, interpolate, sliders, analogy, betas, channels, latent_map, fill_in, train, api_tab)  # in the page's order
CSS = """
.pixelated img { image-rendering: pixelated; }
.upscale img { width: 100% !important; height: 100% !important; object-fit: contain; image-rendering: pixelated; }
#map-image img { cursor: crosshair; }
"""


def build_demo(service: DemoService) -> gr.Blocks:
    first = service.model_names()[0]

    def capability_note(m) -> str:
        notes = service.registry.get(m).notes
        return "  \n".join(f"**{k}**: {v}" for k, v in notes.items() if k in ("sample", "sliders", "traverse"))

    @user_errors
    def load_model(source: str, progress=gr.Progress()):
        progress(0.1, desc=f"Loading {source} …")
        name = service.load_model(source)
        progress(1.0)
        return gr.update(choices=service.picker_choices(), value=name), f"Loaded **{name}** (for you: other visitors see their own)."

    @user_errors
    def unload_model(m):
        if not service.unload_model(m):  # a sentence, not an error: an error would cover the picker
            return gr.skip(), f"**{m}** is not a model you loaded: the bundled models stay. *Unload* lets go of one you loaded."
        return gr.update(choices=service.picker_choices(), value=first), f"Unloaded **{m}**."

    @user_errors
    def picked(m):
        """a visitor picked one of their evicted models in the list: load it again (one click)"""
        if not str(m).startswith(RELOAD):
            return gr.skip(), gr.skip()
        return load_model(str(m)[len(RELOAD):])

    @user_errors
    def choices():
        return gr.update(choices=service.picker_choices())

    def arrive(token, request: gr.Request):
        """a page opens: its browser's owner token (made on its first visit) names this session's run-time models"""
        if not isinstance(token, str) or len(token) != 32:
            token = secrets.token_hex(16)
        link_owner(request.session_hash, token)
        with as_owner(token):
            return token, gr.update(choices=service.picker_choices())

    with gr.Blocks(title="vae-demo: see what a VAE does", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(texts.INTRO)
        owner = gr.BrowserState(None, storage_key="vae-demo-owner", secret=os.environ.get("VAE_DEMO_SECRET") or None)
        load_box = service.registry.limits.load_box
        with gr.Row(equal_height=True):
            model = gr.Dropdown(choices=service.model_names(), value=first, label="Model", scale=2, interactive=True)
            hub_id = gr.Textbox(label="Load another model: Hub repo id or bundled name", placeholder="user/repo", scale=3,
                                visible=load_box)
            with gr.Column(scale=1, min_width=120, visible=load_box):
                load_btn = gr.Button("Load")
                unload_btn = gr.Button("Unload the picked model", size="sm")
        card = gr.Markdown(service.model_card(first))
        cap_note = gr.Markdown(capability_note(first))
        load_status = gr.Markdown()
        with gr.Accordion("How it works: the loss, the reparameterization trick, this model's β and latent size", open=False):
            how = gr.Markdown(service.how_it_works(first), latex_delimiters=LATEX)
        with gr.Tabs():
            tabs = [t.build(service, model) for t in TABS]

        # The cross-tab wiring: on arrival and on every change of model, each tab shows that model's result.
        outputs = [card, how, cap_note, *[c for t in tabs for c in t.outputs]]

        @user_errors
        def refresh(m):
            if str(m).startswith(RELOAD):  # picked() loads it and sets the picker to its name: refreshed then
                return [gr.skip()] * len(outputs)
            return [service.model_card(m), service.how_it_works(m), capability_note(m),
                    *[v for t in tabs for v in t.refresh(m)]]

        model.change(refresh, [model], outputs, **NOT_IN_API, **MODEL_QUEUE)
        demo.load(refresh, [model], outputs, **NOT_IN_API, **MODEL_QUEUE)
        demo.load(arrive, [owner], [owner, model], **NOT_IN_API, queue=False)
        model.focus(choices, None, [model], **NOT_IN_API, queue=False)  # evicted models show as "pick to load again"
        model.input(picked, [model], [model, load_status], **NOT_IN_API, concurrency_limit=1)
        load_btn.click(load_model, [hub_id], [model, load_status], api_name="load_model", concurrency_limit=1)
        hub_id.submit(load_model, [hub_id], [model, load_status], **NOT_IN_API, concurrency_limit=1)
        unload_btn.click(unload_model, [model], [model, load_status], api_name="unload_model", concurrency_limit=1)
    # model calls at once: the cores of the machine this project measured on (2); more cores, more (a larger Space)
    demo.queue(max_size=64, default_concurrency_limit=max(1, int(os.environ.get("VAE_DEMO_CONCURRENCY", "2"))))
    demo.vae_service = service  # for tests and the benchmark: what the page's handlers call
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="vae-demo: see what a variational autoencoder does.")
    p.add_argument("--model", nargs="+", default=None,
                   help="bundled names, local folders or Hub repo ids (default: every bundled model, mnist first)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    p.add_argument("--no-load-box", dest="load_box", action="store_false",
                   help="a locked-down demo: no box to load other models, /load_model refuses")
    return p.parse_args(argv)


def default_models() -> list:
    found = bundled_models()
    return (["mnist"] if "mnist" in found else []) + [m for m in found if m != "mnist"]


def create_demo(models=None, device: str = "auto", load_box: bool = True) -> gr.Blocks:
    reuse_freed_memory()  # a forward's fresh tensors from the heap, not from the kernel page by page (vae_demo/device.py)
    # Images are read only from Gradio's upload folder and the bundled examples, whatever path a client sends.
    roots = [get_upload_folder(), CHECKPOINTS_DIR]
    # GIFs are written inside Gradio's cache, so that Gradio serves them where they are instead of hashing and
    # copying each into its cache on the event loop. Gradio's clean-up
    # deletes only files it copied there itself; the service prunes its own GIFs (GIF_KEEP).
    os.makedirs(get_upload_folder(), exist_ok=True)
    gifs = Path(tempfile.mkdtemp(prefix="vae-demo-gifs-", dir=get_upload_folder()))
    demo = build_demo(DemoService.from_sources(list(models or default_models()), pick_device(device), upload_roots=roots,
                                               gif_dir=gifs, limits=Limits.from_env(load_box)))
    gradio_departures.apply(demo)  # every departure from stock Gradio; VAE_DEMO_STOCK_GRADIO=1 turns them off
    return demo


# Uploads over the limit are refused by Gradio (HTTP 413) before they are stored; sessions are capped so that
# API calls (each one a session) cannot grow memory without bound; internal error text is never shown.
LAUNCH_OPTIONS = dict(show_error=False, max_file_size=MAX_UPLOAD_BYTES, state_session_capacity=256, css=CSS)


def launch_kwargs(args) -> dict:
    return dict(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_OPTIONS)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    args = parse_args()
    demo = create_demo(args.model, args.device, args.load_box)
    demo.launch(**launch_kwargs(args))
else:
    # A module-level `demo` for `gradio app.py` and Hugging Face Spaces (which run this file as __main__).
    demo = create_demo(os.environ["VAE_DEMO_MODELS"].split(",") if os.environ.get("VAE_DEMO_MODELS") else None,
                       os.environ.get("VAE_DEMO_DEVICE", "auto"), os.environ.get("VAE_DEMO_LOAD_BOX", "1") != "0")
