"""The Every digit tab: a conditional VAE writes your digit as 0 to 9 in your own hand (/analogy)."""

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.augment import MAX_PER_CLASS
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, has_strokes, memo, upload_or_draw, user_errors
from .gradio_departures import answered, png_file
AUTO = "read by the classifier"


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    names = service.conditional_models()
    first = names[0] if names else None

    @user_errors
    def analogy(image, model: str = first or "mnist-cvae"):
        return png_file(service.analogy(image, model)[0])

    @user_errors
    def write(image, m, label):
        row, info = service.analogy(image, m, None if label in (None, AUTO) else label)
        how = "as the classifier reads it" if info["label_from"] == "classifier" else "as you said"
        return row, f"Encoded as a **{info['label']}** ({how}), then decoded with each label 0 … 9: same z, same hand."

    @user_errors
    def make_dataset(model: str = first or "mnist-cvae", per_class: int = 100, seed: int = 0, progress=gr.Progress()):
        path, sheet, info = service.augment(model, per_class, seed, progress=lambda f, what: progress(f, desc=what))
        said = f"**{info['images']:,}** images, {info['per_class']} per class."
        if "read_as_label" in info:
            worst = min(info["read_as_label_per_class"].items(), key=lambda kv: kv[1])
            said += (f" The classifier reads **{info['read_as_label']:.1%}** of them as their folder's label (the "
                     f"lowest: {worst[0]}, {worst[1]:.0%}).")
        return path, sheet, info, said

    def from_upload(image, m, label):
        return write(image, m, label) if image is not None else [gr.skip()] * 2

    def from_sketch(sketch, m, label):
        return write(sketch, m, label) if has_strokes(sketch) else [gr.skip()] * 2

    with gr.Tab("Every digit", id="analogy", visible=bool(names)) as tab:
        gr.Markdown(texts.ANALOGY)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                cmodel = gr.Dropdown(choices=names, value=first, label="Conditional model", interactive=True)
                image, examples, sketch = upload_or_draw(service, first, "Your digit",
                                                         "Draw a digit: it is written as every digit after each stroke",
                                                         "analogy-sketch")
                label = gr.Dropdown(choices=[AUTO] + [str(i) for i in range(10)], value=AUTO, label="Its label")
                button = gr.Button("Write it as every digit", variant="primary")
            with gr.Column(scale=3):
                row = gr.Image(label="Your z, decoded with the labels 0 to 9", format="png", interactive=False,
                               elem_classes="pixelated", elem_id="analogy-row")
                caption = gr.Markdown()
        with gr.Accordion("Make a dataset: a zip of new labelled digits for training (data augmentation, /augment)",
                          open=False):
            gr.Markdown(texts.AUGMENT)
            with gr.Row():
                per_class = gr.Slider(1, MAX_PER_CLASS, value=100, step=1, label="Images per class")
                seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
                make = gr.Button("Make the dataset", variant="primary")
            with gr.Row():
                preview = gr.Image(label="Eight of each class, one class per row", format="png", interactive=False,
                                   elem_classes="pixelated", elem_id="augment-preview")
                with gr.Column():
                    archive = gr.File(label="The dataset: a folder per label, PNGs, labels.csv", elem_id="augment-file")
                    said = gr.Markdown(elem_id="augment-said")
                    with gr.Accordion("What the classifier reads, per class (JSON)", open=False):
                        summary = gr.JSON(label="/augment")
    answered(make.click, make_dataset, [cmodel, per_class, seed], [archive, preview, summary, said], api_name="augment",
             preprocess=False, **MODEL_QUEUE)
    answered(button.click, analogy, [image, cmodel], [row], api_name="analogy", preprocess=False, **MODEL_QUEUE)  # ui/common.py
    image.input(from_upload, [image, cmodel, label], [row, caption], preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    label.input(from_upload, [image, cmodel, label], [row, caption], preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    examples.click(lambda r: r[0], examples, image, **NOT_IN_API).then(write, [image, cmodel, label], [row, caption],
                                                                    preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    sketch.input(from_sketch, [sketch, cmodel, label], [row, caption], trigger_mode="always_last", show_progress="hidden",
                 **NOT_IN_API, **MODEL_QUEUE)

    @memo
    def refresh(_m):  # the tab's own model, whatever the page's: the same result for every model
        if not first or not service.examples(first):
            return [gr.skip()] * 3
        ex = service.examples(first)[0]
        return [ex, *write(ex, first, AUTO)]

    return Tab(outputs=[image, row, caption], refresh=refresh)
