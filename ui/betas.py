"""The What β does tab: one image through models that differ only in β, their rate and distortion (/compare_betas)."""

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, has_strokes, memo, upload_or_draw, user_errors
from .gradio_departures import answered

def build(service: DemoService, model: gr.Dropdown) -> Tab:
    family = service.beta_family()
    first = family[0][1] if family else None

    @user_errors
    def compare_betas(image, seed: int = 0):
        return service.compare_betas(image, 8, seed)

    def from_upload(image, seed):
        return compare_betas(image, seed) if image is not None else [gr.skip()] * 4

    def from_sketch(sketch, seed):
        return compare_betas(sketch, seed) if has_strokes(sketch) else [gr.skip()] * 4

    with gr.Tab("What β does", id="betas", visible=bool(family)) as tab:
        gr.Markdown(texts.BETAS)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                image, examples, sketch = upload_or_draw(service, first, "Image to compare", "Draw a digit", "betas-sketch")
                seed = gr.Number(value=0, precision=0, label="Seed of the samples")
                button = gr.Button("Compare", variant="primary")
            with gr.Column(scale=2):
                recon = gr.Image(label="input | reconstruction, per β (R: rate, D: distortion, nats)", format="png",
                                 interactive=False, elem_id="betas-recon")
            with gr.Column(scale=3):
                chart = gr.Image(label="Rate–distortion", format="png", interactive=False, elem_id="betas-chart")
        samples = gr.Image(label="Samples from the prior, the same z for every β", format="png", interactive=False,
                           elem_classes="pixelated")
        with gr.Accordion("The figures (JSON)", open=False):
            table = gr.JSON(label="rate and distortion per model")
    outs = [recon, chart, samples, table]
    # answered(...): outputs postprocessed in the handler's thread (ui/gradio_departures.py)
    answered(button.click, compare_betas, [image, seed], outs, api_name="compare_betas", preprocess=False, **MODEL_QUEUE)
    answered(image.input, from_upload, [image, seed], outs, preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    answered(examples.click(lambda r: r[0], examples, image, **NOT_IN_API).then, compare_betas, [image, seed], outs,
             preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    sketch.input(from_sketch, [sketch, seed], outs, trigger_mode="always_last", show_progress="hidden", **NOT_IN_API, **MODEL_QUEUE)

    @memo
    def refresh(_m):  # its own models, whatever the page's
        if not first or not service.examples(first):
            return [gr.skip()] * 5
        ex = service.examples(first)[0]
        return [ex, *compare_betas(ex, 0)]

    return Tab(outputs=[image, *outs], refresh=refresh)
