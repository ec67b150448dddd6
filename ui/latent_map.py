"""The Latent map tab: the test set's μ in 2-D, coloured by class (faces: by a factor the visitor picks); click to
decode a point, mark your own image."""

from types import SimpleNamespace

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, caps, example_rows, memo, user_errors


def handlers(service: DemoService) -> SimpleNamespace:
    """the tab's handlers: a map position, a click, a drag of the sliders, a marked image, a new colouring -> the
    map, the decoded point, the two sliders and the point; refresh: what the tab shows for a model on arrival"""

    def map_outputs(m, point=None, image=None, colour=None):
        if not service.has_latent_map(m):
            return gr.update(value=None), gr.update(value=None), gr.update(), gr.update(), None
        (xlo, xhi), (ylo, yhi) = service.map_range(m)
        colour = colour if colour in service.map_colourings(m) else None  # a choice left from another model: its classes
        img, decoded, pt = service.map_view(m, point, image, colour)
        u = gr.update(minimum=round(xlo, 2), maximum=round(xhi, 2), value=round(pt[0], 3) if pt else 0)
        v = gr.update(minimum=round(ylo, 2), maximum=round(yhi, 2), value=round(pt[1], 3) if pt else 0)
        return img, decoded, u, v, pt

    @user_errors
    def click(m, colour, evt: gr.SelectData):
        return map_outputs(m, service.map_pixel_to_point(m, *evt.index), colour=colour)

    @user_errors
    def moved(m, u, v, colour):
        return map_outputs(m, (u, v), colour=colour)

    @user_errors
    def mark(m, image, colour):
        return map_outputs(m, None, image, colour)

    def mark_upload(m, image, colour):
        return mark(m, image, colour) if image is not None else [gr.skip()] * 5

    @user_errors
    def recolour(m, colour, point):
        return map_outputs(m, point, colour=colour)

    @memo
    def refresh(m):
        has = service.has_latent_map(m)
        grid = service.manifold(m) if has else None
        axes = ("z0", "z1") if grid is not None else ("PC 1", "PC 2")
        img_, out_, u_, v_ = map_outputs(m, (0.0, 0.0) if has else None)[:4]  # the page opens on the centre, decoded
        img_ = img_ if has else None  # (without a map, map_outputs answers with an update, not a picture)
        if isinstance(u_, dict):
            u_, v_ = {**u_, "label": axes[0]}, {**v_, "label": axes[1]}
        options = service.map_colourings(m)
        return [gr.update(visible="latent_map" in caps(service, m)), gr.Dataset(samples=example_rows(service, m)),
                gr.update(choices=options, value=options[0] if options else None, visible=bool(options)),
                gr.update(visible=has), gr.update(visible=not has),
                gr.update(value=img_, label="Test-set means μ: the whole latent space (click to decode exactly that z)" if grid
                          is not None else "Test-set means, PCA of μ (click to decode a point)"), out_, u_, v_,
                gr.update(visible=grid is not None), grid]

    return SimpleNamespace(click=click, moved=moved, mark=mark, mark_upload=mark_upload, recolour=recolour,
                           refresh=refresh)


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    first = service.model_names()[0]

    h = handlers(service)

    with gr.Tab("Latent map", id="map", visible="latent_map" in caps(service, first)) as tab:
        gr.Markdown(texts.LATENT_MAP)
        no_map = gr.Markdown("This model has no stored latent map (it is made by `python -m vae_demo.training.evaluate`).",
                             visible=not service.has_latent_map(first))
        with gr.Row(visible=service.has_latent_map(first)) as row:
            with gr.Column(scale=3):
                first_colourings = service.map_colourings(first)
                colour = gr.Radio(first_colourings, value=first_colourings[0] if first_colourings else None,
                                  label="Colour the map by", visible=bool(first_colourings), elem_id="map-colour")
                img = gr.Image(label="Test-set means, PCA of μ (click to decode a point)", format="png",
                               interactive=False, elem_id="map-image")
            first_manifold = service.manifold(first)
            with gr.Column(scale=2, min_width=240, visible=first_manifold is not None) as manifold_col:
                manifold = gr.Image(label="The manifold: decode(z) over the prior's quantiles 5 % … 95 % (z0 →, z1 ↑)",
                                    format="png", interactive=False, value=first_manifold, elem_id="manifold")
            with gr.Column(scale=2, min_width=240):
                out = gr.Image(label="decode(point)", format="png", interactive=False, height=220, elem_classes="pixelated")
                u = gr.Slider(-3, 3, value=0, step=0.01, label="PC 1")
                v = gr.Slider(-3, 3, value=0, step=0.01, label="PC 2")
                image = gr.Image(label="Mark your own image on the map", type="filepath", sources=["upload", "clipboard"], height=150)
                mark_btn = gr.Button("Mark it")
                examples = gr.Dataset(components=[image], samples=example_rows(service, first), label="Examples", samples_per_page=12)
        point = gr.State(None)

    outs = [img, out, u, v, point]
    examples.click(lambda row: row[0], examples, image, **NOT_IN_API).then(h.mark, [model, image, colour], outs, preprocess=False,
                                                                         **NOT_IN_API, **MODEL_QUEUE)
    img.select(h.click, [model, colour], outs, **NOT_IN_API, **MODEL_QUEUE)
    gr.on([u.input, v.input], h.moved, [model, u, v, colour], outs, trigger_mode="always_last", show_progress="hidden", **NOT_IN_API, **MODEL_QUEUE)
    mark_btn.click(h.mark, [model, image, colour], outs, preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    image.input(h.mark_upload, [model, image, colour], outs, preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    colour.input(h.recolour, [model, colour, point], outs, **NOT_IN_API, **MODEL_QUEUE)

    return Tab(outputs=[tab, examples, colour, row, no_map, img, out, u, v, manifold_col, manifold], refresh=h.refresh)
