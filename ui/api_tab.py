"""The API tab: /decode, /traverse and /models to try in the page; every other tab is an endpoint too."""

import json

import gradio as gr

from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, Tab, caps, memo, user_errors
from .gradio_departures import answered, png_file

def build(service: DemoService, model: gr.Dropdown) -> Tab:
    first = service.model_names()[0]

    @user_errors
    def decode(z, model: str = first):
        return service.decode(z, model)

    @user_errors
    def traverse(z: str = "", model: str = first, n_dims: int = 8):
        return png_file(service.traverse(z, model, n_dims))

    @user_errors
    def models():
        return service.models()

    with gr.Tab("API", id="api"):
        gr.Markdown(
            "Every tab is an HTTP endpoint — `/reconstruct`, `/sample`, `/interpolate`, `/encode`, `/decode`, "
            "`/traverse`, `/models` — callable with `gradio_client` (see *Use via API* at the bottom of the page). "
            "Try `/decode` and `/traverse` here: paste a z from the sliders tab's μ."
        )
        with gr.Row():
            z = gr.Textbox(label="z (JSON list; empty = all zeros for /traverse)", lines=3)
            with gr.Column():
                dims = gr.Slider(1, 16, value=8, step=1, label="Dimensions in the traversal")
                dec_btn = gr.Button("Decode z")
                trav_btn = gr.Button("Traverse around z")
        with gr.Row():
            img = gr.Image(label="decode(z)", format="png", interactive=False, height=200, elem_classes="pixelated")
            grid = gr.Image(label="Traversal", format="png", interactive=False)
        list_btn = gr.Button("List loaded models")
        listed = gr.JSON(label="Loaded models")
    # answered(...): outputs postprocessed in the handler's thread (ui/gradio_departures.py)
    answered(dec_btn.click, decode, [z, model], [img], api_name="decode", preprocess=False, **MODEL_QUEUE)
    answered(trav_btn.click, traverse, [z, model, dims], [grid], api_name="traverse", **MODEL_QUEUE)
    list_btn.click(models, None, [listed], api_name="models")

    @memo
    def refresh(m):
        """the page opens on z = 0 (the prior's mean) decoded and traversed"""
        if "traverse" not in caps(service, m):  # a photo model's latent is a grid of channels: nothing to paste here
            return ["", None, None]
        z0 = [0.0] * service.registry.get(m).config.latent_dim
        return [json.dumps(z0), service.decode(z0, m), service.traverse(z0, m, min(8, len(z0)))]  # mnist-2d has two

    return Tab(outputs=[z, img, grid], refresh=refresh)
