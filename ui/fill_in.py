"""The Fill in tab: paint over part of an image (or pick a preset) and see the model's completions (/impute)."""

from collections import Counter
from types import SimpleNamespace
from typing import Any

import gradio as gr
from gradio.data_classes import GradioRootModel
from PIL import Image

from vae_demo.analysis.imputation import DEFAULT_STEPS, METHODS, PRESETS
from vae_demo.serving import texts
from vae_demo.serving.fill_in import MAX_CHAIN_STEPS, MAX_COMPLETIONS
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, example_rows, memo, user_errors
from .gradio_departures import answered, png_file

PAINT = "what I paint"
PEN = "#ea580c"  # the missing pixels' colour in the answer's first tile, so what is painted looks like what is missing
CANVAS = 280  # the painting canvas in CSS pixels; the image as the model sees it fills it


class _AnyMask(GradioRootModel):
    """A preset's name or an image file: the handler (not pydantic) answers anything else with a sentence."""
    root: Any = None


class MaskInput(gr.Textbox):
    """/impute's `mask`: a preset's name, or a picture (gradio_client's handle_file) in which painted pixels are
    missing. Never shown: the page paints its mask on an ImageEditor."""
    data_model = _AnyMask

    def api_info(self) -> dict:
        return {"anyOf": [{"type": "string", "enum": list(PRESETS)}, gr.Image(type="filepath").api_info()],
                "description": "a preset's name, or a picture of the model's size (or a whole multiple) whose painted "
                               "pixels (drawn on a transparent layer, or white on black) are missing"}

    def example_payload(self) -> Any:
        return PRESETS[0]

    def example_value(self) -> Any:
        return PRESETS[0]

    def preprocess(self, payload):
        return None if payload is None else payload.root

    def postprocess(self, value):
        return value


def painted_mask(layer: Image.Image, side: int) -> Image.Image:
    """the editor's paint layer (any size) -> side × side "L" picture, white where at least half of a model pixel was
    painted (the white-on-black mask /impute reads)"""
    alpha = layer.convert("RGBA").getchannel("A").point(lambda a: 255 if a > 0 else 0)
    return alpha.resize((side, side), Image.BOX).point(lambda a: 255 if a >= 128 else 0)


def painted_layers(editor) -> list:
    """the editor's paint layers (the page sends one)"""
    return [la for la in (editor or {}).get("layers") or [] if la is not None]


def handlers(service: DemoService, first: str) -> SimpleNamespace:
    """The tab's handlers; `model` defaults to the first model that can fill in, in /impute's API signature."""

    @user_errors
    def impute(image, model: str = first, mask: str = PRESETS[0], method: str = "metropolis", n: int = 8, seed: int = 0):
        row, info, spread = service.impute(image, model, mask, method, n, seed)
        return png_file(row), info, png_file(spread)

    @user_errors
    def fill(editor, m, choice, method, n, seed, steps):
        """the page: the editor's background is the image as the model sees it, its layer what was painted"""
        if not isinstance(editor, dict) or editor.get("background") is None:
            return gr.skip(), gr.skip(), gr.skip(), "Pick an example or upload an image first."
        layers = painted_layers(editor)
        mask = choice
        if choice == PAINT:
            mask = painted_mask(layers[0], service.registry.get(m).config.image_size) if layers else None
            if mask is None or mask.getextrema()[1] == 0:
                return gr.skip(), gr.skip(), gr.skip(), "Paint over part of the image: what you paint is missing."
        row, info, spread = service.impute(editor["background"].convert("RGB"), m, mask, method, n, seed, steps, frame=False)
        return row, spread, info, caption(info)

    def stroke(editor, m, choice, method, n, seed, steps):
        """a stroke on the editor: fill in what is painted. The editor also reports a value the server set (an example
        loaded), with nothing painted: that changes nothing."""
        layers = painted_layers(editor)
        if not layers or layers[0].convert("RGBA").getchannel("A").getextrema()[1] == 0:
            return [gr.skip()] * 5
        return [PAINT, *fill(editor, m, PAINT, method, n, seed, steps)]

    @user_errors
    def load(image, m):
        """an upload or an example -> the editor's background: the image as the model sees it, to paint on"""
        seen = service.as_seen(image, m)
        # one transparent layer to paint on: a value set from the server brings no layer of its own
        return {"background": seen.resize((CANVAS, CANVAS), Image.NEAREST),
                "layers": [Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))], "composite": None}

    return SimpleNamespace(impute=impute, fill=fill, stroke=stroke, load=load)


def layout(service: DemoService, first: str, visible: bool) -> SimpleNamespace:
    """The tab's components, in the page's order."""
    with gr.Tab("Fill in", id="fill_in", visible=visible) as tab:
        gr.Markdown(texts.FILL_IN)
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                editor = gr.ImageEditor(label="Paint over what is missing", type="pil", image_mode="RGBA", format="png",
                                        layers=False, canvas_size=(CANVAS, CANVAS), fixed_canvas=True, transforms=(),
                                        sources=(), brush=gr.Brush(colors=[PEN], default_color=PEN, default_size=28,
                                                                   color_mode="fixed"),
                                        eraser=gr.Eraser(default_size=28), buttons=[], elem_id="fill-editor")
                image = gr.Image(label="Your image (it is framed as the model sees it)", type="filepath",
                                 sources=["upload", "clipboard"], height=150, format="png", elem_classes="upscale",
                                 render=False)
                examples = gr.Dataset(components=[image], samples=example_rows(service, first), label="Examples",
                                      samples_per_page=12)
                choice = gr.Radio([PAINT, *PRESETS], value=PRESETS[0], label="Missing", elem_id="fill-mask")
                method = gr.Radio(list(METHODS), value="metropolis", label="Method")
                with gr.Row():
                    n = gr.Slider(1, MAX_COMPLETIONS, value=8, step=1, label="Completions (n)")
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0)
                steps = gr.Slider(1, MAX_CHAIN_STEPS, value=DEFAULT_STEPS, step=1, label="Markov chain steps",
                                  info="more steps: closer to p(missing | seen), slower")
                button = gr.Button("Fill in", variant="primary")
                image.render()
            with gr.Column(scale=3):
                row = gr.Image(label="The masked input (orange: missing), then the completions", format="png",
                               interactive=False, elem_classes="pixelated", elem_id="fill-row")
                said = gr.Markdown(elem_id="fill-caption")
                spread = gr.Image(label="Where the completions disagree: the standard deviation of each pixel",
                                  format="png", interactive=False, height=224, elem_classes="pixelated", elem_id="fill-spread")
                with gr.Accordion("The answer as JSON (each completion's pixels in [0, 1])", open=False):
                    info = gr.JSON(label="/impute")
        api_mask = MaskInput(value=PRESETS[0], visible=False)  # /impute's mask: a preset or a picture (the page paints on the editor)
        api_only = gr.Button(visible=False)  # /impute's trigger: the page never presses it
    return SimpleNamespace(tab=tab, editor=editor, image=image, examples=examples, choice=choice, method=method, n=n,
                           seed=seed, steps=steps, button=button, row=row, said=said, spread=spread, info=info,
                           api_mask=api_mask, api_only=api_only)


def wire(c: SimpleNamespace, h: SimpleNamespace, model: gr.Dropdown) -> None:
    """Every event of the tab. answered(...): outputs postprocessed in the handler's thread (ui/gradio_departures.py)."""
    answered(c.api_only.click, h.impute, [c.image, model, c.api_mask, c.method, c.n, c.seed], [c.row, c.info, c.spread],
             api_name="impute", preprocess=False, **MODEL_QUEUE)
    ins, outs = [c.editor, model, c.choice, c.method, c.n, c.seed, c.steps], [c.row, c.spread, c.info, c.said]
    answered(c.button.click, h.fill, ins, outs, **NOT_IN_API, **MODEL_QUEUE)
    for ctl in (c.choice, c.method, c.n, c.seed, c.steps):
        answered(ctl.input, h.fill, ins, outs, **NOT_IN_API, **MODEL_QUEUE)
    # each stroke switches to the painted mask and fills in again; latest wins, so fast painting never queues up work
    answered(c.editor.input, h.stroke, ins, [c.choice, *outs], trigger_mode="always_last", show_progress="hidden",
             **NOT_IN_API, **MODEL_QUEUE)
    answered(c.image.input, h.load, [c.image, model], [c.editor], preprocess=False, **NOT_IN_API, **MODEL_QUEUE).success(
        h.fill, ins, outs, **NOT_IN_API, **MODEL_QUEUE)
    answered(c.examples.click(lambda r: r[0], c.examples, c.image, **NOT_IN_API).then, h.load, [c.image, model],
             [c.editor], preprocess=False, **NOT_IN_API, **MODEL_QUEUE).success(h.fill, ins, outs, **NOT_IN_API, **MODEL_QUEUE)


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    names = service.fill_in_models()
    first = names[0] if names else service.model_names()[0]
    h, c = handlers(service, first), layout(service, first, bool(names))
    wire(c, h, model)

    @memo
    def refresh(m):
        """The tab opens on the model's first example with its bottom half missing, already filled in."""
        if m not in names or not service.examples(m):
            return [gr.update(visible=m in names), gr.Dataset(samples=example_rows(service, m)), None, None, None, None,
                    "This model cannot fill in: pick mnist, fashion-mnist or faces." if m not in names else ""]
        pad = h.load(service.examples(m)[0], m)
        r, s, i, text = h.fill(pad, m, PRESETS[0], "metropolis", 8, 0, DEFAULT_STEPS)
        return [gr.update(visible=True), gr.Dataset(samples=example_rows(service, m)), pad, r, s, i, text]

    return Tab(outputs=[c.tab, c.examples, c.editor, c.row, c.spread, c.info, c.said], refresh=refresh)


def caption(info: dict) -> str:
    """what the reader sees in the masked input and in the completions, in words"""
    reads = [r["reads_as"] for r in info.get("reads_as") or []]
    text = f"**{info['missing_pixels']}** pixels missing ({info['missing_share']:.0%}), filled in by **{info['method']}**"
    if "acceptance_rate" in info:
        text += f" ({info['steps']} steps, {info['warmup_steps']} of them burn-in; {info['acceptance_rate']:.0%} of moves accepted)"
    if reads and info.get("masked_input_reads_as"):
        said = ", ".join(f"**{k}** ×{v}" for k, v in Counter(reads).most_common())
        text += f".  \nThe masked input reads as **{info['masked_input_reads_as']['reads_as']}**; the completions as {said}."
    return text
