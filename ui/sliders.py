"""The Latent sliders tab: one slider per latent dimension (most informative first), from an image, a drawing or z."""

import math
from types import SimpleNamespace

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, caps, drawable, example_rows, has_strokes, memo, sketchpad, user_errors
from .gradio_departures import answered, png_file

MAX_SLIDERS = 64
MAX_KNOBS = 10  # named directions (vae_demo/analysis/directions.py): mnist has 4, fashion-mnist one per class
SLIDER_RANGE = 4.0  # raw dimensions and knobs alike: -4 .. +4 (standard deviations of the prior, or along a knob)


def checked(values) -> list:
    """The sliders' values as an API client may send them -> floats in the sliders' range (None: left alone);
    anything else gets the sentence Gradio's own check would give, as gr.Error."""
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise gr.Error(f"Slider {i + 1} must be a number from {-SLIDER_RANGE:g} to {SLIDER_RANGE:g}; got {v!r}.")
        if not -SLIDER_RANGE <= v <= SLIDER_RANGE:
            raise gr.Error(f"Slider {i + 1}: {v:g} is outside its range, {-SLIDER_RANGE:g} to {SLIDER_RANGE:g}.")
        out.append(float(v))
    return out


def handlers(service: DemoService, first: str, n_sliders: int) -> SimpleNamespace:
    """The tab's handlers. `model` defaults to the first loaded model in the API's signatures, which is why they are
    made here and not at module level. Each returns what its event's outputs take (to_sliders: base z, μ, the image,
    then every raw slider and knob)."""

    def zero_z(m):
        d = service.registry.get(m).config.latent_dim
        return [0.0] * d if d else []

    def slider_updates(m, z):
        order, labels = service.slider_order(m), service.slider_labels(m)
        knobs = service.knobs(m)
        return [gr.update(visible=True, label=labels[i], value=round(float(z[order[i]]), 3)) if i < len(order)
                else gr.update(visible=False) for i in range(n_sliders)] + [
            gr.update(visible=True, label=knobs[i][1], value=0) if i < len(knobs) else gr.update(visible=False, value=0)
            for i in range(MAX_KNOBS)]

    @user_errors
    def encode(image, model: str = first):
        return service.encode(image, model)

    @user_errors
    def from_image(image, m):
        z = service.encode(image, m)
        return [z, z, service.decode(z, m), *slider_updates(m, z)]

    def from_upload(image, m):
        return from_image(image, m) if image is not None else [gr.skip()] * (3 + n_sliders + MAX_KNOBS)

    def from_sketch(sketch, m):
        return from_image(sketch, m) if has_strokes(sketch) else [gr.skip()] * (3 + n_sliders + MAX_KNOBS)

    @user_errors
    def random(m, seed):
        z = service.random_latent(m, seed)
        return [z, z, service.decode(z, m), *slider_updates(m, z)]

    @user_errors
    def reset(m, base):
        z = base if base else zero_z(m)
        return [service.decode(z, m), *slider_updates(m, z)]

    def moved_z(m, base, values):  # the raw sliders' z, then each named knob's amount along its direction
        z = service.current_z(m, base, list(values[:n_sliders]))
        return service.knob_offset(m, z, list(values[n_sliders:]))

    @user_errors
    def slider_update(model, base, *values):  # not preprocessed (43 inputs): their check is here
        return png_file(service.decode(moved_z(model, base, checked(values)), model))

    @user_errors
    def traverse_current(m, base, *values):
        return png_file(service.traverse(moved_z(m, base, values), m))

    @user_errors
    def edit(image, model: str = first, attribute: str = "thickness", amount: float = 2.0):
        edited, measured = service.edit(image, model, attribute, amount)
        return png_file(edited), measured

    @user_errors
    def knob_grid(model: str = first, attribute: str = "smile", image=None, n_faces: int = 4, seed: int = 0):
        picture, info = service.knob_grid(model, attribute, image, n_faces, seed)
        return png_file(picture), info

    return SimpleNamespace(zero_z=zero_z, slider_updates=slider_updates, encode=encode, from_image=from_image,
                           from_upload=from_upload, from_sketch=from_sketch, random=random, reset=reset,
                           slider_update=slider_update, traverse_current=traverse_current, edit=edit, knob_grid=knob_grid)


def knob_panel(knob_list: list) -> SimpleNamespace:
    """The named knobs, and the /edit panel that measures what one of them changed."""
    gr.Markdown(texts.KNOBS)
    with gr.Row(elem_id="knobs"):
        knobs = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.1, min_width=160, elem_classes="knob",
                           label=knob_list[i][1] if i < len(knob_list) else f"knob {i}", visible=i < len(knob_list))
                 for i in range(MAX_KNOBS)]
    with gr.Accordion("Edit the start image along one knob, and measure what changed (the /edit endpoint)",
                      open=False, visible=bool(knob_list)) as edit_box:
        with gr.Row():
            attribute = gr.Dropdown(choices=[(lab, name) for name, lab in knob_list],
                                    value=knob_list[0][0] if knob_list else None, label="Attribute", scale=2)
            amount = gr.Slider(-4.0, 4.0, value=2.0, step=0.1, label="Amount (standard deviations)", scale=2)
            edit_btn = gr.Button("Edit", scale=1)
        with gr.Row():
            edited = gr.Image(label="edited", format="png", interactive=False, height=200, elem_classes="pixelated",
                              elem_id="edited")
            measured = gr.JSON(label="Measured before and after (Morpho-MNIST; the classifier's reading)", elem_id="measured")
    return SimpleNamespace(knobs=knobs, edit_box=edit_box, attribute=attribute, amount=amount, edit_btn=edit_btn,
                           edited=edited, measured=measured)


def layout(service: DemoService, first: str, n_sliders: int, z0: list) -> SimpleNamespace:
    """The tab's components, in the page's order."""
    with gr.Tab("Latent sliders", id="sliders", visible="sliders" in caps(service, first)) as tab:
        gr.Markdown(texts.SLIDERS)
        base_z = gr.State(z0)
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
                panel = knob_panel(service.knobs(first))
                gr.Markdown("**Raw latent dimensions** (most informative first)")
                with gr.Row():
                    sliders = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.05, min_width=160,
                                         label=labels[i] if i < len(order) else f"z{i}", visible=i < len(order))
                               for i in range(n_sliders)]
        trav = gr.Image(label="Traversal: each row sets one dimension from -3 to +3, the others stay at the current z",
                        format="png", interactive=False)
        with gr.Accordion("Vector arithmetic: faces against a knob (the /knob_grid endpoint)", open=True,
                          visible=bool(service.knobs(first)), elem_id="knob-grid-box") as grid_box:
            gr.Markdown(texts.KNOB_GRID)
            with gr.Row():
                grid_n = gr.Slider(0, 8, value=4, step=1, label="Example faces (rows)", scale=2)
                grid_btn = gr.Button("Grid along the knob picked above", variant="primary", scale=1)
            grid_img = gr.Image(label="rows: faces · columns: −2 … +2 along the knob", format="png", interactive=False,
                                elem_classes="pixelated", elem_id="knob-grid")
            grid_read = gr.JSON(label="What each tile reads as, row by row", open=False)
        with gr.Accordion("μ of the image (latent means, JSON)", open=False):
            mu = gr.JSON(label="μ")
    return SimpleNamespace(tab=tab, base_z=base_z, image=image, enc=enc, examples=examples, draw_box=draw_box,
                           sketch=sketch, seed=seed, rand=rand, reset_btn=reset_btn, out=out, trav_btn=trav_btn,
                           sliders=sliders, trav=trav, mu=mu, grid_box=grid_box, grid_n=grid_n, grid_btn=grid_btn,
                           grid_img=grid_img, grid_read=grid_read, **vars(panel))


def wire(c: SimpleNamespace, h: SimpleNamespace, model: gr.Dropdown) -> None:
    """Every event of the tab. answered(...): outputs postprocessed in the handler's thread (ui/gradio_departures.py)."""
    q, moved = MODEL_QUEUE, [*c.sliders, *c.knobs]
    to_sliders = [c.base_z, c.mu, c.out, *moved]
    answered(c.enc.click, h.encode, [c.image, model], [c.mu], api_name="encode", preprocess=False, **q).success(
        h.from_image, [c.image, model], to_sliders, preprocess=False, **NOT_IN_API, **q)
    c.image.input(h.from_upload, [c.image, model], to_sliders, preprocess=False, **NOT_IN_API, **q)
    c.examples.click(lambda row: row[0], c.examples, c.image, **NOT_IN_API).then(
        h.from_image, [c.image, model], to_sliders, preprocess=False, **NOT_IN_API, **q)
    c.sketch.input(h.from_sketch, [c.sketch, model], to_sliders, trigger_mode="always_last", show_progress="hidden",
                   **NOT_IN_API, **q)
    c.rand.click(h.random, [model, c.seed], to_sliders, **NOT_IN_API, **q)
    c.reset_btn.click(h.reset, [model, c.base_z], [c.out, *moved], **NOT_IN_API, **q)
    # One endpoint for every slider and knob: decode only (the image's mu is cached in base_z, never re-encoded).
    # preprocess=False: Gradio would check each of the 43 values in a thread of its own; `checked` does it instead.
    answered([s.input for s in moved], h.slider_update, [model, c.base_z, *moved], [c.out],
             api_name="slider_update", api_visibility="undocumented", trigger_mode="always_last", show_progress="hidden",
             preprocess=False, **q)
    c.trav_btn.click(h.traverse_current, [model, c.base_z, *moved], [c.trav], **NOT_IN_API, **q)
    answered(c.edit_btn.click, h.edit, [c.image, model, c.attribute, c.amount], [c.edited, c.measured], api_name="edit",
             preprocess=False, **q)
    answered(c.grid_btn.click, h.knob_grid, [model, c.attribute, c.image, c.grid_n, c.seed], [c.grid_img, c.grid_read],
             api_name="knob_grid", preprocess=False, **q)


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    names = service.model_names()
    first = names[0]
    n_sliders = min(MAX_SLIDERS, max([service.registry.get(n).config.latent_dim or 1 for n in names]))
    h = handlers(service, first, n_sliders)
    c = layout(service, first, n_sliders, h.zero_z(first))
    wire(c, h, model)

    def knob_choices(m):
        knobs = service.knobs(m)
        return gr.update(choices=[(lab, name) for name, lab in knobs], value=knobs[0][0] if knobs else None)

    @memo
    def refresh(m):
        shown = "sliders" in caps(service, m)
        ex = service.examples(m) if shown else []
        z = service.encode(ex[0], m) if ex else h.zero_z(m)  # open on an example's μ: a knob then edits a digit
        return [gr.update(visible=shown), gr.Dataset(samples=example_rows(service, m)), z,
                service.decode(z, m) if shown else None, gr.update(visible=drawable(service, m)), knob_choices(m),
                gr.update(visible=bool(service.knobs(m))), gr.update(visible=bool(service.knobs(m))), ex[0] if ex else None,
                *h.slider_updates(m, z)]

    return Tab(outputs=[c.tab, c.examples, c.base_z, c.out, c.draw_box, c.attribute, c.edit_box, c.grid_box, c.image,
                        *c.sliders, *c.knobs],
               refresh=refresh)
