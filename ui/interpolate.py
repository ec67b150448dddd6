"""The Interpolate tab: frames between two images' codes; the page opens on an example pair, animated."""

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, drawable, has_strokes, memo, pair_rows, sketchpad, user_errors
from .gradio_departures import answered, png_file
DEFAULT_STEPS, DEFAULT_METHOD = 10, "lerp"


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    first = service.model_names()[0]

    @user_errors
    def interpolate(image_a, image_b, model: str = first, steps: int = 8, method: str = "lerp"):
        sheet, gif, z = service.interpolate(image_a, image_b, model, steps, method)  # frames as one image, GIF, z
        return png_file(sheet), gif, z

    def when_both(a, b, model, steps, method):  # one side given so far: wait for the other
        return interpolate(a, b, model, steps, method) if a is not None and b is not None else [gr.skip()] * 3

    def drawing(sketch):
        if not has_strokes(sketch):
            raise gr.Error("Draw something first: the page is blank.")
        return sketch["composite"]

    with gr.Tab("Interpolate", id="interpolate"):
        gr.Markdown(texts.INTERPOLATE)
        with gr.Row():
            a = gr.Image(label="Image A", type="filepath", sources=["upload", "clipboard", "webcam"], height=180, format="png", elem_classes="upscale")
            b = gr.Image(label="Image B", type="filepath", sources=["upload", "clipboard", "webcam"], height=180, format="png", elem_classes="upscale")
            with gr.Column():
                steps = gr.Slider(2, 32, value=DEFAULT_STEPS, step=1, label="Steps")
                method = gr.Radio(["lerp", "slerp"], value=DEFAULT_METHOD, label="Path")
                button = gr.Button("Interpolate", variant="primary")
        with gr.Accordion("…or draw A or B", open=False) as draw_box:
            with gr.Row():
                sketch = sketchpad("Draw a digit, then use it as A or B", elem_id="interpolate-sketch")
                with gr.Column():
                    to_a, to_b = gr.Button("Use the drawing as A"), gr.Button("Use the drawing as B")
        examples = gr.Dataset(components=[a, b], samples=pair_rows(service, first), label="Example pairs", samples_per_page=5)
        frames = gr.Image(label="Frames from A to B (left to right, row by row)", format="png", interactive=False,
                          elem_classes="pixelated", buttons=["download", "fullscreen"], elem_id="frames")
        anim = gr.Image(label="Animation (the download button saves the GIF)", type="filepath", interactive=False,
                        height=240, elem_classes="pixelated", buttons=["download", "fullscreen"], elem_id="animation")
        with gr.Accordion("z of each frame (JSON: /decode one to get it back)", open=False):
            latents = gr.JSON(label="z")

    inputs, outputs = [a, b, model, steps, method], [frames, anim, latents]
    # answered(...): outputs postprocessed in the handler's thread (ui/gradio_departures.py)
    answered(button.click, interpolate, inputs, outputs, api_name="interpolate", preprocess=False, **MODEL_QUEUE)
    answered(examples.click(lambda row: (row[0], row[1]), examples, [a, b], **NOT_IN_API).then, interpolate, inputs, outputs,
             preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    answered([a.input, b.input, steps.release, method.input], when_both, inputs, outputs, preprocess=False,
             trigger_mode="always_last", **NOT_IN_API, **MODEL_QUEUE)
    for button_, side in ((to_a, a), (to_b, b)):
        answered(button_.click(drawing, [sketch], [side], **NOT_IN_API).success, when_both, inputs, outputs, preprocess=False,
                 **NOT_IN_API, **MODEL_QUEUE)

    @memo
    def refresh(m):
        pairs = pair_rows(service, m)
        rows, draw = gr.Dataset(samples=pairs), gr.update(visible=drawable(service, m))
        if not pairs:
            return [rows, None, None, None, None, None, draw]
        # the page's first pair: the PIL sheet (a path could outlive Gradio's cache) and a GIF kept for good
        return [rows, *pairs[0], *service.interpolate(*pairs[0], m, DEFAULT_STEPS, DEFAULT_METHOD, keep=True), draw]

    return Tab(outputs=[examples, a, b, frames, anim, latents, draw_box], refresh=refresh)
