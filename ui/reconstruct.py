"""The Reconstruct tab: draw or upload an image, see it as the model sees it, its reconstruction and why."""

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import M, PRIVATE, Tab, answered, drawable, example_rows, has_strokes, memo, png_file, sketchpad, user_errors

def build(service: DemoService, model: gr.Dropdown) -> Tab:
    first = service.model_names()[0]

    # --- handlers named and typed as the HTTP API documents them (gradio_client keyword arguments) ---
    @user_errors
    def reconstruct(image, model: str = first, frame: bool = True):
        image, metrics, summary = service.reconstruct(image, model, frame)
        return png_file(image), metrics, summary

    @user_errors
    def explain(image, model: str = first, frame: bool = True):
        seen, err, posterior, chart, pca = service.explain(image, model, frame=frame)
        return seen, err, posterior, chart, gr.update(value=pca, visible=pca is not None)

    def from_sketch(fn, source=None):
        """While drawing: a blank page (the page opening, the bin) changes nothing. With `source`, also records it."""
        def run(sketch, model: str = first, frame: bool = True):
            if not has_strokes(sketch):
                return [gr.skip()] * (N_OUT[fn] + (source is not None))
            return [*fn(sketch, model, frame), *([source] if source else [])]
        return run

    def from_upload(fn, source=None):
        """An upload cleared with its × is no question to answer. (Two helpers, not one: the API names its parameter
        after the function's, `sketch` or `image`.)"""
        def run(image, model: str = first, frame: bool = True):
            if image is None:
                return [gr.skip()] * (N_OUT[fn] + (source is not None))
            return [*fn(image, model, frame), *([source] if source else [])]
        return run

    def rerun(fn):
        """The switch changed: run again on what the person gave last."""
        def run(source, image, sketch, model, frame):
            return from_sketch(fn)(sketch, model, frame) if source == "sketch" else from_upload(fn)(image, model, frame)
        return run

    N_OUT = {reconstruct: 3, explain: 5}

    with gr.Tab("Reconstruct", id="reconstruct"):
        gr.Markdown(texts.RECONSTRUCT)
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                sketch = sketchpad("Draw here", elem_id="sketch")
                image = gr.Image(label="…or upload an image (or paste one)", type="filepath", sources=["upload", "clipboard", "webcam"],
                                 height=200, elem_id="upload", format="png", elem_classes="upscale")
                frame = gr.Checkbox(value=True, label="Frame like the training data",
                                    info="crop to the ink, fit it into 20 × 20 px and centre it by mass in 28 × 28, as MNIST was made")
                button = gr.Button("Reconstruct the upload", variant="primary")
                examples = gr.Dataset(components=[image], samples=example_rows(service, first), label="Examples (test set)",
                                      samples_per_page=12)
            with gr.Column(scale=3):
                with gr.Row():
                    seen = gr.Image(label="As the model sees it", format="png", interactive=False, height=200, elem_classes="pixelated",
                                    elem_id="seen")
                    out = gr.Image(label="Reconstruction: decode(μ)", format="png", interactive=False, height=200,
                                   elem_classes="pixelated", elem_id="reconstruction")
                    err = gr.Image(label="Squared error per pixel", format="png", interactive=False, height=200, elem_classes="pixelated")
                    pca = gr.Image(label="PCA baseline (linear, same k)", format="png", interactive=False, height=200,
                                   elem_classes="pixelated", visible=False)
                summary = gr.Markdown(elem_id="summary")
                chart = gr.Image(label="μ ± σ and KL per latent dimension", format="png", interactive=False)
                post = gr.Gallery(label="Posterior samples: decode(μ + σ·ε), ε ~ N(0, I)", format="png", columns=8,
                                  height=150, object_fit="contain", elem_classes="pixelated")
                with gr.Accordion("All metrics (JSON)", open=False):
                    metrics = gr.JSON(label="Metrics")
        source = gr.State("upload")  # what the person gave last: "upload" (or an example) or "sketch"
        # The switch's value as a State: the API's /reconstruct keeps its two parameters (image, model), framing on.
        framed = gr.State(True)

    answer, pictures = [out, metrics, summary], [seen, err, post, chart, pca]
    # answered(...): the outputs' postprocessing in the handler's thread (ui/common.py)
    answered(button.click, reconstruct, [image, model, framed], answer, api_name="reconstruct", preprocess=False, **M).success(
        explain, [image, model, framed], pictures, preprocess=False, **PRIVATE, **M)
    # An upload, a paste, a webcam shot or an example runs at once (input: a person's act, not a value set by code).
    answered(image.input, from_upload(reconstruct, "upload"), [image, model, framed], [*answer, source], preprocess=False,
             **PRIVATE, **M).success(
        from_upload(explain), [image, model, framed], pictures, preprocess=False, **PRIVATE, **M)
    answered(examples.click(lambda row: (row[0], "upload"), examples, [image, source], **PRIVATE).then,
             reconstruct, [image, model, framed], answer, preprocess=False, **PRIVATE, **M).success(
        explain, [image, model, framed], pictures, preprocess=False, **PRIVATE, **M)
    # Each stroke: latest wins, so a fast drawer never queues up work. Also the API's way to send what a sketchpad
    # holds ({"background", "layers", "composite"}): /reconstruct's image parameter takes a file only.
    answered(sketch.input, from_sketch(reconstruct, "sketch"), [sketch, model, framed], [*answer, source],
             api_name="reconstruct_sketch", trigger_mode="always_last", show_progress="hidden", **M).success(
        from_sketch(explain), [sketch, model, framed], pictures, trigger_mode="always_last", show_progress="hidden", **PRIVATE, **M)
    # preprocessed: a sketch may arrive as a reference to blobs the page sent before, which only Gradio resolves
    frame.change(lambda on: on, frame, framed, **PRIVATE)
    answered(frame.input, rerun(reconstruct), [source, image, sketch, model, frame], answer, **PRIVATE, **M).success(
        rerun(explain), [source, image, sketch, model, frame], pictures, **PRIVATE, **M)

    @memo
    def refresh(m):
        """The page opens (or the model changes) on the model's first example, already reconstructed."""
        ex = service.examples(m)
        rows = gr.Dataset(samples=[[p] for p in ex])
        can_draw = gr.update(visible=drawable(service, m))
        # the switch comes back on with the example it explains (what the page shows is framed)
        switch = gr.update(value=True, visible=service.registry.get(m).config.framing != "none" if drawable(service, m) else False)
        if not ex:
            return [rows, None, None, None, "", None, None, [], None, gr.update(value=None, visible=False), can_draw, switch, True, "upload"]
        return [rows, ex[0], *service.reconstruct(ex[0], m), *explain(ex[0], m), can_draw, switch, True, "upload"]

    return Tab(outputs=[examples, image, *answer, *pictures, sketch, frame, framed, source], refresh=refresh)
