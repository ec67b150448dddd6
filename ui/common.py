"""What every tab shares: the error wrapper, the concurrency group, the example lists, the sketchpad."""

import functools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

import gradio as gr
from gradio.context import LocalContext
from gradio.components.image_editor import EditorData
from gradio.data_classes import FileData, GradioModel, GradioRootModel
from PIL import Image

from vae_demo.device import gpu_decorator, request_threads
from vae_demo.errors import USER_ERRORS
from vae_demo.imaging.uploads import ImageError, check_image
from vae_demo.serving.registry import as_owner
from vae_demo.serving.service import DemoService

from .gradio_departures import sketch_picture

log = logging.getLogger("vae_demo.app")
# One concurrency group for everything that runs a model: at most 2 at once (2 cores), the rest queue.
MODEL_QUEUE = dict(concurrency_id="model")
NOT_IN_API = dict(api_visibility="private")
# On a Hugging Face ZeroGPU Space a GPU exists only inside functions decorated with spaces.GPU; elsewhere a no-op.
GPU = gpu_decorator()
SKETCH_SIDE = 280  # the drawing canvas, in CSS pixels: ten times MNIST's 28


@dataclass
class Tab:
    outputs: list  # components that show something as soon as the page opens, refreshed when the model changes
    refresh: Callable[[str], list]  # model name -> one value (or gr.update) per output


_OWNERS: "OrderedDict[str, str]" = OrderedDict()  # Gradio session -> the owner token its page keeps in the browser
_OWNERS_KEPT = 10_000
_owners_lock = threading.Lock()


def link_owner(session_hash: str, token: str) -> None:
    """A page arrived (Gradio session `session_hash`) with the owner token its browser keeps: the run-time models of
    that token are this session's (a reload is a new session with the same token)"""
    with _owners_lock:
        _OWNERS[session_hash] = token
        _OWNERS.move_to_end(session_hash)
        while len(_OWNERS) > _OWNERS_KEPT:
            _OWNERS.popitem(last=False)


def request_owner() -> Optional[str]:
    """the owner of the request being served: its page's token, or (an API client) its Gradio session"""
    request = LocalContext.request.get(None)
    session = getattr(request, "session_hash", None)
    if session is None:
        return None
    with _owners_lock:
        return _OWNERS.get(session, session)


def user_errors(fn):
    """Turn the package's readable errors into gr.Error (shown in the page and returned by the API).
    Every handler that runs a model goes through here, so this is also where ZeroGPU's decorator is applied and
    where a request's CPU threads are set (vae_demo/device.py: request_threads) and its visitor (the owner of the
    run-time models it may use: vae_demo/serving/registry.py)."""
    fn = GPU(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            # one torch thread per request, a share of the cores for a large batch; the visitor whose models it sees
            with request_threads(), as_owner(request_owner()):
                return fn(*args, **kwargs)
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from None
        except gr.Error:
            raise
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong on the server while doing this; the error was logged.") from None

    return wrapper


def streamed_user_errors(fn):
    """user_errors for a generator handler (a run's live updates): the visitor is read once, when it starts, and
    every step of the generator runs as that visitor; a DemoError at any step becomes gr.Error. A page that goes
    away closes the inner generator."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        owner = request_owner()
        gen = None
        try:
            with as_owner(owner):
                gen = fn(*args, **kwargs)
            while True:
                with as_owner(owner):
                    try:
                        value = next(gen)
                    except StopIteration:
                        return
                yield value
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from None
        except (gr.Error, GeneratorExit):
            raise
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong on the server while doing this; the error was logged.") from None
        finally:
            if gen is not None:
                gen.close()

    return wrapper


def caps(service: DemoService, model) -> frozenset:
    return service.registry.get(model).capabilities


def drawable(service: DemoService, model) -> bool:
    """Small grey models (digits, clothes, sprites) can be drawn for; photo models cannot."""
    c = service.registry.get(model).config
    return c.latent_dim is not None and c.channels == 1


def example_rows(service: DemoService, model) -> list:
    return [[p] for p in service.examples(model)]


def pair_rows(service: DemoService, model) -> list:
    ex = service.examples(model)
    return [[ex[i], ex[(i + 1) % len(ex)]] for i in range(len(ex))] if len(ex) >= 2 else []


def blank_canvas() -> dict:
    """A white page to draw on: with a background set, the sketchpad opens with its pen in hand."""
    return {"background": Image.new("RGB", (SKETCH_SIDE, SKETCH_SIDE), "white"), "layers": [], "composite": None}


MALFORMED_SKETCH = ("A sketch must be a dict with 'composite' (an image file) or 'background' and 'layers' (a list of "
                    "image files), as Gradio's Sketchpad sends it.")


class _SketchFields(GradioModel):
    """What an API client may send as a sketch, as the API page describes it: Gradio's EditorData, any values."""
    background: Any = None
    layers: Any = []
    composite: Any = None
    id: Optional[str] = None


class _AnySketch(GradioRootModel):
    """Anything at all, so that Sketchpad.preprocess, not pydantic, answers a malformed sketch with a sentence."""
    root: Any = None


class Sketchpad(gr.Sketchpad):
    """Gradio's Sketchpad whose malformed API input gets the sentences /reconstruct gives (gr.Error): not a dict, a
    part that is not an image, a picture over the pixel limit. Each picture's header is checked before Gradio decodes
    it (vae_demo.imaging.uploads.check_image)."""
    data_model = _AnySketch

    def get_block_name(self) -> str:  # the same page component as Gradio's own sketchpad
        return "imageeditor"

    def api_info(self) -> dict:
        return _SketchFields.model_json_schema()

    def preprocess(self, payload):
        raw = None if payload is None else payload.root
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise gr.Error(MALFORMED_SKETCH)
        try:
            value = EditorData.model_validate(raw, context={"validate_meta": True})
        except ValueError:  # pydantic's ValidationError is one
            raise gr.Error(MALFORMED_SKETCH) from None
        for part in [value.background, *(value.layers or []), value.composite]:
            if part is not None:
                try:
                    check_image(part.path if isinstance(part, FileData) else part)
                except ImageError as e:
                    raise gr.Error(str(e)) from None
        return super().preprocess(value)

    def convert_and_format_image(self, file, flatten_on_white: bool = False):
        """Gradio's, or a picture decoded when first used (a departure: ui/gradio_departures.sketch_picture)."""
        picture = sketch_picture(self, file)
        return picture if picture is not None else super().convert_and_format_image(file, flatten_on_white)


def sketchpad(label: str, **kw) -> gr.Sketchpad:
    """Black pen on white, one layer, PNG (lossless), the pen about as wide relative to the canvas as MNIST's strokes."""
    pad = Sketchpad(value=blank_canvas(), label=label, type="pil", image_mode="RGBA", format="png", layers=False,
                       canvas_size=(SKETCH_SIDE, SKETCH_SIDE), fixed_canvas=True, transforms=(),
                       brush=gr.Brush(colors=["#000000"], default_color="#000000", default_size=11, color_mode="fixed"),
                       eraser=gr.Eraser(default_size=14), buttons=[], **kw)
    # after the bin, the page comes back white with the pen in hand (else Gradio leaves no tool selected)
    pad.clear(blank_canvas, None, pad, **NOT_IN_API, queue=False)
    return pad


def upload_or_draw(service: DemoService, model, image_label: str, sketch_label: str, sketch_id: str) -> tuple:
    """Two small tabs, "Upload" (an image box and the model's examples) and "Draw" (a sketchpad), for a tab that runs
    its own model on one image -> (image, examples, sketch)"""
    with gr.Tabs():
        with gr.Tab("Upload"):
            image = gr.Image(label=image_label, type="filepath", sources=["upload", "clipboard", "webcam"], height=180,
                             format="png", elem_classes="upscale")
            examples = gr.Dataset(components=[image], samples=example_rows(service, model) if model else [],
                                  label="Examples", samples_per_page=12)
        with gr.Tab("Draw"):
            sketch = sketchpad(sketch_label, elem_id=sketch_id)
    return image, examples, sketch


def has_strokes(value) -> bool:
    """Does a sketchpad value hold a drawing? The pad reports its blank page when the page opens and after the bin
    (no layer drawn on, no composite); an API client may send a composite alone."""
    if not isinstance(value, dict):
        return False
    try:
        return _has_strokes(value)
    except Exception:  # a picture that will not decode: the handler's own reading of it says why, in a sentence
        return True


def _has_strokes(value: dict) -> bool:
    layers = [im for im in value.get("layers") or [] if isinstance(im, Image.Image)]
    composite = value.get("composite")
    if layers and isinstance(composite, Image.Image):
        # What the page sends: the composite is the background with every layer drawn over it, so ink on it is a
        # stroke (or a picture given as the background). One picture decoded, the one that is reconstructed.
        return has_ink(composite)
    if any(im.mode != "RGBA" or im.getchannel("A").getextrema()[1] > 0 for im in layers):
        return True
    if composite is not None and not layers:
        return True  # an API client's composite alone
    bg = value.get("background")  # a picture given as the background (not the pad's own white page)
    return isinstance(bg, Image.Image) and min(lo for lo, _ in bg.convert("RGB").getextrema()) < 250


def has_ink(img: Image.Image) -> bool:
    """Anything darker than near-white where the picture is not transparent (seen on white: a pen's trace)?"""
    rgba = img if img.mode == "RGBA" else img.convert("RGBA")
    (r, _), (g, _), (b, _), (alpha_lo, alpha_hi) = rgba.getextrema()
    if alpha_lo == 255:  # opaque, as the page's composite is: its darkest pixel decides
        return min(r, g, b) < 250
    if alpha_hi == 0:
        return False
    on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
    return on_white.convert("L").getextrema()[0] < 250


def memo(fn: Callable[[str], list]) -> Callable[[str], list]:
    """Remember a refresh per model: every visitor's page opens on the same example, computed once."""
    cache, lock = {}, threading.Lock()

    def fresh(values: list) -> list:  # Gradio pops keys from an update dict as it sends it: each visitor gets copies
        return [dict(v) if isinstance(v, dict) else v for v in values]

    @functools.wraps(fn)
    def wrapper(model):
        with lock:
            if model in cache:
                return fresh(cache[model])
        value = fn(model)
        with lock:
            return fresh(cache.setdefault(model, value))

    return wrapper
