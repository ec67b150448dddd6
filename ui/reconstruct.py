"""The Reconstruct tab: draw or upload an image, see it as the model sees it, its reconstruction and why."""

from types import SimpleNamespace

import gradio as gr

from vae_demo.imaging.framing import NO_DRAWING
from vae_demo.serving import texts
from vae_demo.serving.inference import InputError
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, drawable, example_rows, has_strokes, memo, sketchpad, user_errors
from .gradio_departures import answered, png_file


def handlers(service: DemoService, first: str) -> SimpleNamespace:
    """The tab's handlers, named and typed as the HTTP API documents them (gradio_client keyword arguments; `model`
    defaults to the first loaded model, which is why they are made here and not at module level)."""

    @user_errors
    def reconstruct(image, model: str = first, frame: bool = True):
        image, metrics, summary = service.reconstruct(image, model, frame)
        return png_file(image), metrics, summary

    @user_errors
    def explain(image, model: str = first, frame: bool = True):
        seen, err, posterior, chart, pca = service.explain(image, model, frame=frame)
        return seen, err, posterior, chart, gr.update(value=pca, visible=pca is not None), service.bits(image, model, frame)[1]

    @user_errors
    def eigen(model: str = first):
        return png_file(service.eigen(model))

    n_out = {reconstruct: 3, explain: 6}

    def from_sketch(fn, source=None):
        """While drawing: a blank page (the page opening, the bin) changes nothing. With `source`, also records it."""
        def run(sketch, model: str = first, frame: bool = True):
            if not has_strokes(sketch):
                return [gr.skip()] * (n_out[fn] + (source is not None))
            return [*fn(sketch, model, frame), *([source] if source else [])]
        return run

    def from_upload(fn, source=None):
        """An upload cleared with its × is no question to answer. (Two helpers, not one: the API names its parameter
        after the function's, `sketch` or `image`.)"""
        def run(image, model: str = first, frame: bool = True):
            if image is None:
                return [gr.skip()] * (n_out[fn] + (source is not None))
            return [*fn(image, model, frame), *([source] if source else [])]
        return run

    @user_errors
    def reconstruct_sketch(sketch, model: str = first, frame: bool = True):
        """/reconstruct_sketch: what a sketchpad holds -> /reconstruct's three outputs. Through the API a blank pad is a
        question with no answer, so it gets a sentence; in the page it is the pad opening or the bin (from_sketch)."""
        if not has_strokes(sketch):
            raise InputError(NO_DRAWING)
        return reconstruct(sketch, model, frame)

    def rerun(fn):
        """The switch changed: run again on what the person gave last."""
        def run(source, image, sketch, model, frame):
            return from_sketch(fn)(sketch, model, frame) if source == "sketch" else from_upload(fn)(image, model, frame)
        return run

    return SimpleNamespace(reconstruct=reconstruct, explain=explain, eigen=eigen, from_sketch=from_sketch, from_upload=from_upload,
                           reconstruct_sketch=reconstruct_sketch, rerun=rerun)


def layout(service: DemoService, first: str) -> SimpleNamespace:
    """The tab's components, in the page's order."""
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
                bits = gr.Markdown(elem_id="bits")
                chart = gr.Image(label="μ ± σ and KL per latent dimension", format="png", interactive=False)
                post = gr.Gallery(label="Posterior samples: decode(μ + σ·ε), ε ~ N(0, I)", format="png", columns=8,
                                  height=150, object_fit="contain", elem_classes="pixelated")
                with gr.Accordion("All metrics (JSON)", open=False):
                    metrics = gr.JSON(label="Metrics")
        with gr.Accordion("PCA's axes beside the VAE's: eigenfaces, eigendigits (the /eigen endpoint)", open=False):
            gr.Markdown(texts.EIGEN)
            eigen_btn = gr.Button("Show the axes")
            eigen = gr.Image(label="PCA: the mean, then its axes · VAE: decode(0), then +2 along its top dimensions",
                             format="png", interactive=False, elem_classes="pixelated", elem_id="eigen")
        source = gr.State("upload")  # what the person gave last: "upload" (or an example) or "sketch"
        # The switch's value as a State: the API's /reconstruct keeps its two parameters (image, model), framing on.
        framed = gr.State(True)
        api_only = gr.Button(visible=False)  # /reconstruct_sketch's trigger: the page never presses it
    return SimpleNamespace(sketch=sketch, image=image, frame=frame, button=button, examples=examples, source=source,
                           eigen_btn=eigen_btn, eigen=eigen, framed=framed, api_only=api_only, answer=[out, metrics, summary], pictures=[seen, err, post, chart, pca, bits])


def wire(c: SimpleNamespace, h: SimpleNamespace, model: gr.Dropdown) -> None:
    """Every event of the tab. answered(...): outputs postprocessed in the handler's thread (ui/gradio_departures.py)."""
    answer, pictures, q = c.answer, c.pictures, MODEL_QUEUE
    answered(c.button.click, h.reconstruct, [c.image, model, c.framed], answer, api_name="reconstruct", preprocess=False, **q).success(
        h.explain, [c.image, model, c.framed], pictures, preprocess=False, **NOT_IN_API, **q)
    # An upload, a paste, a webcam shot or an example runs at once (input: a person's act, not a value set by code).
    answered(c.image.input, h.from_upload(h.reconstruct, "upload"), [c.image, model, c.framed], [*answer, c.source],
             preprocess=False, **NOT_IN_API, **q).success(
        h.from_upload(h.explain), [c.image, model, c.framed], pictures, preprocess=False, **NOT_IN_API, **q)
    answered(c.examples.click(lambda row: (row[0], "upload"), c.examples, [c.image, c.source], **NOT_IN_API).then,
             h.reconstruct, [c.image, model, c.framed], answer, preprocess=False, **NOT_IN_API, **q).success(
        h.explain, [c.image, model, c.framed], pictures, preprocess=False, **NOT_IN_API, **q)
    # Each stroke: latest wins, so a fast drawer never queues up work.
    # Preprocessed: a sketch may arrive as a reference to blobs the page sent before, which only Gradio resolves.
    answered(c.sketch.input, h.from_sketch(h.reconstruct, "sketch"), [c.sketch, model, c.framed], [*answer, c.source],
             trigger_mode="always_last", show_progress="hidden", **NOT_IN_API, **q).success(
        h.from_sketch(h.explain), [c.sketch, model, c.framed], pictures, trigger_mode="always_last", show_progress="hidden",
        **NOT_IN_API, **q)
    # The API's way to send what a sketchpad holds ({"background", "layers", "composite"}): /reconstruct's image
    # parameter takes a file only.
    answered(c.api_only.click, h.reconstruct_sketch, [c.sketch, model, c.framed], answer, api_name="reconstruct_sketch", **q)
    answered(c.eigen_btn.click, h.eigen, [model], [c.eigen], api_name="eigen", **q)
    c.frame.change(lambda on: on, c.frame, c.framed, **NOT_IN_API)
    inputs = [c.source, c.image, c.sketch, model, c.frame]
    answered(c.frame.input, h.rerun(h.reconstruct), inputs, answer, **NOT_IN_API, **q).success(
        h.rerun(h.explain), inputs, pictures, **NOT_IN_API, **q)


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    first = service.model_names()[0]
    h, c = handlers(service, first), layout(service, first)
    wire(c, h, model)

    @memo
    def refresh(m):
        """The page opens (or the model changes) on the model's first example, already reconstructed."""
        ex = service.examples(m)
        rows = gr.Dataset(samples=[[p] for p in ex])
        can_draw = gr.update(visible=drawable(service, m))
        # the switch comes back on with the example it explains (what the page shows is framed)
        switch = gr.update(value=True, visible=service.registry.get(m).config.framing != "none" if drawable(service, m) else False)
        if not ex:
            return [rows, None, None, None, "", None, None, [], None, gr.update(value=None, visible=False), "", can_draw, switch, True,
                    "upload"]
        return [rows, ex[0], *service.reconstruct(ex[0], m), *h.explain(ex[0], m), can_draw, switch, True, "upload"]

    return Tab(outputs=[c.examples, c.image, *c.answer, *c.pictures, c.sketch, c.frame, c.framed, c.source], refresh=refresh)
