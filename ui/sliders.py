"""The Latent sliders tab: one slider per latent dimension (most informative first), from an image, a drawing or z."""

import gradio as gr

from vae_demo import texts
from vae_demo.service import DemoService

from .common import M, PRIVATE, Tab, caps, drawable, example_rows, has_strokes, memo, sketchpad, user_errors

MAX_SLIDERS = 64


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    names = service.model_names()
    first = names[0]
    n_sliders = min(MAX_SLIDERS, max([service.registry.get(n).config.latent_dim or 1 for n in names]))

    def zero_z(m):
        d = service.registry.get(m).config.latent_dim
        return [0.0] * d if d else []

    def slider_updates(m, z):
        order, labels = service.slider_order(m), service.slider_labels(m)
        return [gr.update(visible=True, label=labels[i], value=round(float(z[order[i]]), 3)) if i < len(order)
                else gr.update(visible=False) for i in range(n_sliders)]

    @user_errors
    def encode(image, model: str = first):
        return service.encode(image, model)

    @user_errors
    def from_image(image, m):
        z = service.latent_from_image(image, m)
        return [z, z, service.decode(z, m), *slider_updates(m, z)]

    def from_upload(image, m):
        return from_image(image, m) if image is not None else [gr.skip()] * (3 + n_sliders)

    def from_sketch(sketch, m):
        return from_image(sketch, m) if has_strokes(sketch) else [gr.skip()] * (3 + n_sliders)

    @user_errors
    def random(m, seed):
        z = service.random_latent(m, seed)
        return [z, z, service.decode(z, m), *slider_updates(m, z)]

    @user_errors
    def reset(m, base):
        z = base if base else zero_z(m)
        return [service.decode(z, m), *slider_updates(m, z)]

    @user_errors
    def slider_update(model, base, *values):
        return service.decode_with_sliders(model, base, list(values))

    @user_errors
    def traverse_current(m, base, *values):
        return service.traverse(service.current_z(m, base, list(values)), m)

    with gr.Tab("Latent sliders", id="sliders", visible="sliders" in caps(service, first)) as tab:
        gr.Markdown(texts.SLIDERS)
        base_z = gr.State(zero_z(first))
        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                image = gr.Image(label="Start from an image", type="filepath", sources=["upload", "clipboard", "webcam"], height=180,
                                 format="png", elem_classes="upscale")
                enc = gr.Button("Use this image's μ", variant="primary")
                examples = gr.Dataset(components=[image], samples=example_rows(service, first), label="Examples", samples_per_page=12)
                with gr.Accordion("…or start from a drawing", open=False) as draw_box:
                    sketch = sketchpad("Draw: the sliders jump to its μ after every stroke", elem_id="sliders-sketch")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, label="Seed", min_width=80)
                    rand = gr.Button("Random z")
                reset_btn = gr.Button("Reset sliders")
            with gr.Column(scale=1, min_width=220):
                out = gr.Image(label="decode(z)", format="png", interactive=False, height=260, elem_classes="pixelated",
                               elem_id="slider-image")
                trav_btn = gr.Button("Traversal grid of the top dimensions")
            with gr.Column(scale=2):
                order, labels = service.slider_order(first), service.slider_labels(first)
                sliders = []
                with gr.Row():
                    for i in range(n_sliders):
                        sliders.append(gr.Slider(-4.0, 4.0, value=0.0, step=0.05, min_width=160,
                                                 label=labels[i] if i < len(order) else f"z{i}", visible=i < len(order)))
        trav = gr.Image(label="Traversal: each row sets one dimension from -3 to +3, the others stay at the current z",
                        format="png", interactive=False)
        with gr.Accordion("μ of the image (latent means, JSON)", open=False):
            mu = gr.JSON(label="μ")

    to_sliders = [base_z, mu, out, *sliders]
    enc.click(encode, [image, model], [mu], api_name="encode", preprocess=False, **M).success(
        from_image, [image, model], to_sliders, preprocess=False, **PRIVATE, **M)
    image.input(from_upload, [image, model], to_sliders, preprocess=False, **PRIVATE, **M)
    examples.click(lambda row: row[0], examples, image, **PRIVATE).then(from_image, [image, model], to_sliders, preprocess=False,
                                                                       **PRIVATE, **M)
    sketch.input(from_sketch, [sketch, model], to_sliders, trigger_mode="always_last", show_progress="hidden", **PRIVATE, **M)
    rand.click(random, [model, seed], to_sliders, **PRIVATE, **M)
    reset_btn.click(reset, [model, base_z], [out, *sliders], **PRIVATE, **M)
    # One endpoint for every slider: decode only (the image's mu is cached in base_z, never re-encoded).
    gr.on([s.input for s in sliders], slider_update, [model, base_z, *sliders], [out], api_name="slider_update",
          api_visibility="undocumented", trigger_mode="always_last", show_progress="hidden", **M)
    trav_btn.click(traverse_current, [model, base_z, *sliders], [trav], **PRIVATE, **M)

    @memo
    def refresh(m):
        c = caps(service, m)
        shown = "sliders" in c
        z = zero_z(m)
        return [gr.update(visible=shown), gr.Dataset(samples=example_rows(service, m)), z,
                service.decode(z, m) if shown else None, gr.update(visible=drawable(service, m)), *slider_updates(m, z)]

    return Tab(outputs=[tab, examples, base_z, out, draw_box, *sliders], refresh=refresh)
