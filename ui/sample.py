"""The Sample tab: images decoded from z ~ N(0, T²·I); the page opens on a sheet of them."""

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, caps, memo, user_errors
from .gradio_departures import answered, png_file
DEFAULT_N, DEFAULT_SEED, DEFAULT_T = 32, 0, 1.0


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    first = service.model_names()[0]

    @user_errors
    def sample(model: str = first, n: int = 16, seed: int = 0, temperature: float = 1.0):
        sheet, z = service.sample(model, n, seed, temperature)  # one image of n samples (one file, not n), their z
        return png_file(sheet), z

    with gr.Tab("Sample", id="sample", visible="sample" in caps(service, first)) as tab:
        gr.Markdown(texts.SAMPLE)
        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                n = gr.Slider(1, 64, value=DEFAULT_N, step=1, label="How many")
                seed = gr.Number(value=DEFAULT_SEED, precision=0, label="Seed")
                temp = gr.Slider(0.1, 2.0, value=DEFAULT_T, step=0.05, label="Temperature")
                button = gr.Button("Sample from the prior", variant="primary")
            with gr.Column(scale=3):
                grid = gr.Image(label="Samples: decode(z), z ~ N(0, T²·I)", format="png", interactive=False,
                                elem_classes="pixelated", buttons=["download", "fullscreen"], elem_id="samples")
                with gr.Accordion("z of each sample, row by row (JSON: /decode one to get it back)", open=False):
                    latents = gr.JSON(label="z")
    # answered(...): outputs postprocessed in the handler's thread (ui/gradio_departures.py)
    answered(button.click, sample, [model, n, seed, temp], [grid, latents], api_name="sample", preprocess=False, **MODEL_QUEUE)
    # a new count, seed or temperature draws at once (a slider on release, the seed on Enter or leaving the box)
    answered([n.release, temp.release, seed.submit, seed.blur], sample, [model, n, seed, temp], [grid, latents],
             trigger_mode="always_last", show_progress="hidden", **NOT_IN_API, **MODEL_QUEUE)

    @memo
    def refresh(m):
        c = caps(service, m)
        return [gr.update(visible="sample" in c), *(service.sample(m, DEFAULT_N, DEFAULT_SEED, DEFAULT_T) if "sample" in c else (None, None))]

    return Tab(outputs=[tab, grid, latents], refresh=refresh)
