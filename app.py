"""vae-demo: see what a variational autoencoder does. Wires the UI to vae_demo's plain functions.

    python app.py [--model mnist ...] [--device auto|cpu|cuda|mps] [--host 127.0.0.1] [--port 7860] [--share]
"""

import argparse
import functools
import logging
import os

import gradio as gr
from gradio.utils import get_upload_folder

import gradio_sessions
from vae_demo import texts
from vae_demo.device import DEVICE_CHOICES, gpu_decorator, pick_device

from vae_demo.images import MAX_UPLOAD_BYTES
from vae_demo.loading import CHECKPOINTS_DIR, bundled_models
from vae_demo.service import USER_ERRORS, DemoService

log = logging.getLogger("vae_demo.app")
MAX_SLIDERS = 64
LATEX = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
CSS = """
.pixelated img { image-rendering: pixelated; }
#map-image img { cursor: crosshair; }
"""


# On a Hugging Face ZeroGPU Space a GPU exists only inside functions decorated with spaces.GPU; elsewhere a no-op.
GPU = gpu_decorator()


def user_errors(fn):
    """Turn the package's readable errors into gr.Error (shown in the page and returned by the API).
    Every handler that runs a model goes through here, so this is also where ZeroGPU's decorator is applied."""
    fn = GPU(fn)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            raise gr.Error(str(e)) from None
        except gr.Error:
            raise
        except Exception:
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error("Something went wrong on the server while doing this; the error was logged.") from None

    return wrapper


def build_demo(service: DemoService) -> gr.Blocks:
    gradio_sessions.install()  # a sessionless API call no longer copies the config of all ~150 blocks
    names = service.model_names()
    first = names[0]
    n_sliders = min(MAX_SLIDERS, max([service.registry.get(n).config.latent_dim or 1 for n in names]))

    def caps(model) -> frozenset:
        return service.registry.get(model).capabilities

    def zero_z(model):
        d = service.registry.get(model).config.latent_dim
        return [0.0] * d if d else []

    def start_image(model):
        return service.decode(zero_z(model), model) if "sliders" in caps(model) else None

    def capability_note(model) -> str:
        notes = getattr(service.registry.get(model), "notes", {}) or {}
        return "  \n".join(f"**{k}**: {v}" for k, v in notes.items() if k in ("sample", "sliders", "traverse"))

    def example_rows(model):
        return [[p] for p in service.examples(model)]

    def pair_rows(model):
        ex = service.examples(model)
        return [[ex[i], ex[(i + 1) % len(ex)]] for i in range(len(ex))] if len(ex) >= 2 else []

    # --- handlers named and typed as the HTTP API documents them (gradio_client keyword arguments) ---
    @user_errors
    def reconstruct(image, model: str = first):
        return service.reconstruct(image, model)

    @user_errors
    def explain(image, model: str = first):
        seen, err, posterior, chart, pca = service.explain(image, model)
        return seen, err, posterior, chart, gr.update(value=pca, visible=pca is not None)

    @user_errors
    def sample(model: str = first, n: int = 16, seed: int = 0, temperature: float = 1.0):
        return service.sample_grid(model, n, seed, temperature)  # one image of n samples: one file, not n

    @user_errors
    def interpolate(image_a, image_b, model: str = first, steps: int = 8, method: str = "lerp"):
        return service.interpolate_sheet(image_a, image_b, model, steps, method)  # frames as one image, GIF

    @user_errors
    def encode(image, model: str = first):
        return service.encode(image, model)

    @user_errors
    def decode(z, model: str = first):
        return service.decode(z, model)

    @user_errors
    def traverse(z: str = "", model: str = first, n_dims: int = 8):
        return service.traverse(z, model, n_dims)

    @user_errors
    def models():
        return service.models()

    @user_errors
    def load_model(source: str, progress=gr.Progress()):
        progress(0.1, desc=f"Loading {source} …")
        name = service.load_model(source)
        progress(1.0)
        return gr.update(choices=service.model_names(), value=name), f"Loaded **{name}**."

    # --- sliders, map and model switching: UI-only events ---
    def slider_updates(model, z):
        order, labels = service.slider_order(model), service.slider_labels(model)
        return [gr.update(visible=True, label=labels[i], value=round(float(z[order[i]]), 3)) if i < len(order)
                else gr.update(visible=False) for i in range(n_sliders)]

    @user_errors
    def sliders_from_image(image, model):
        z = service.latent_from_image(image, model)
        return [z, service.decode(z, model), *slider_updates(model, z)]

    @user_errors
    def sliders_random(model, seed):
        z = service.random_latent(model, seed)
        return [z, z, service.decode(z, model), *slider_updates(model, z)]

    @user_errors
    def sliders_reset(model, base):
        z = base if base else zero_z(model)
        return [service.decode(z, model), *slider_updates(model, z)]

    @user_errors
    def channel_offsets(image, model, *offsets):
        return service.channel_offsets(image, model, *offsets)

    @user_errors
    def slider_update(model, base, *values):
        return service.decode_with_sliders(model, base, list(values))

    @user_errors
    def traverse_current(model, base, *values):
        return service.traverse(service.current_z(model, base, list(values)), model)

    def map_outputs(model, point=None, image=None):
        if not service.has_latent_map(model):
            return gr.update(value=None), gr.update(value=None), gr.update(), gr.update(), None
        (xlo, xhi), (ylo, yhi) = service.map_range(model)
        img, decoded, pt = service.map_view(model, point, image)
        u = gr.update(minimum=round(xlo, 2), maximum=round(xhi, 2), value=round(pt[0], 3) if pt else 0)
        v = gr.update(minimum=round(ylo, 2), maximum=round(yhi, 2), value=round(pt[1], 3) if pt else 0)
        return img, decoded, u, v, pt

    @user_errors
    def map_click(model, evt: gr.SelectData):
        u, v = service.map_pixel_to_point(model, *evt.index)
        return map_outputs(model, (u, v))

    @user_errors
    def map_sliders(model, u, v):
        return map_outputs(model, (u, v))

    @user_errors
    def map_mark(model, image):
        return map_outputs(model, None, image)

    @user_errors
    def on_model_change(model):
        z = zero_z(model)
        has_map = service.has_latent_map(model)
        c = caps(model)
        return [service.model_card(model), service.how_it_works(model), gr.Dataset(samples=example_rows(model)),
                gr.Dataset(samples=pair_rows(model)), gr.Dataset(samples=example_rows(model)),
                gr.Dataset(samples=example_rows(model)), z, start_image(model), gr.update(visible=has_map),
                gr.update(visible=not has_map), *map_outputs(model)[:4],
                gr.update(visible="sample" in c), gr.update(visible="sliders" in c), gr.update(visible="latent_map" in c),
                gr.update(visible="channel_offsets" in c), capability_note(model), *slider_updates(model, z)]

    # One concurrency group for everything that runs a model: at most 2 at once (2 cores), the rest queue.
    M = dict(concurrency_id="model")
    with gr.Blocks(title="vae-demo: see what a VAE does", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(texts.INTRO)
        with gr.Row(equal_height=True):
            model = gr.Dropdown(choices=names, value=first, label="Model", scale=2, interactive=True)
            hub_id = gr.Textbox(label="Load another model: Hub repo id or bundled name", placeholder="user/repo", scale=3)
            load_btn = gr.Button("Load", scale=1)
        card = gr.Markdown(service.model_card(first))
        cap_note = gr.Markdown(capability_note(first))
        load_status = gr.Markdown()
        with gr.Accordion("How it works: the loss, the reparameterization trick, this model's β and latent size", open=False):
            how = gr.Markdown(service.how_it_works(first), latex_delimiters=LATEX)

        with gr.Tabs():
            with gr.Tab("Reconstruct", id="reconstruct"):
                gr.Markdown(texts.RECONSTRUCT)
                with gr.Row():
                    with gr.Column(scale=1, min_width=240):
                        rec_in = gr.Image(label="Upload an image", type="filepath", sources=["upload", "clipboard"], height=220)
                        rec_btn = gr.Button("Reconstruct", variant="primary")
                        rec_ex = gr.Dataset(components=[rec_in], samples=example_rows(first), label="Examples (test set)", samples_per_page=12)
                    with gr.Column(scale=3):
                        with gr.Row():
                            rec_seen = gr.Image(label="As the model sees it", format="png", interactive=False, height=200, elem_classes="pixelated")
                            rec_out = gr.Image(label="Reconstruction: decode(μ)", format="png", interactive=False, height=200, elem_classes="pixelated")
                            rec_err = gr.Image(label="Squared error per pixel", format="png", interactive=False, height=200, elem_classes="pixelated")
                            rec_pca = gr.Image(label="PCA baseline (linear, same k)", format="png", interactive=False, height=200,
                                               elem_classes="pixelated", visible=False)
                        rec_summary = gr.Markdown()
                        rec_chart = gr.Image(label="μ ± σ and KL per latent dimension", format="png", interactive=False)
                        rec_post = gr.Gallery(label="Posterior samples: decode(μ + σ·ε), ε ~ N(0, I)", format="png", columns=8,
                                              height=150, object_fit="contain", elem_classes="pixelated")
                        with gr.Accordion("All metrics (JSON)", open=False):
                            rec_metrics = gr.JSON(label="Metrics")
            with gr.Tab("Sample", id="sample", visible="sample" in caps(first)) as tab_sample:
                gr.Markdown(texts.SAMPLE)
                with gr.Row():
                    with gr.Column(scale=1, min_width=220):
                        s_n = gr.Slider(1, 64, value=32, step=1, label="How many")
                        s_seed = gr.Number(value=0, precision=0, label="Seed")
                        s_temp = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
                        s_btn = gr.Button("Sample from the prior", variant="primary")
                    with gr.Column(scale=3):
                        s_grid = gr.Image(label="Samples: decode(z), z ~ N(0, T²·I)", format="png", interactive=False,
                                          elem_classes="pixelated", buttons=["download", "fullscreen"])
            with gr.Tab("Interpolate", id="interpolate"):
                gr.Markdown(texts.INTERPOLATE)
                with gr.Row():
                    i_a = gr.Image(label="Image A", type="filepath", sources=["upload", "clipboard"], height=180)
                    i_b = gr.Image(label="Image B", type="filepath", sources=["upload", "clipboard"], height=180)
                    with gr.Column():
                        i_steps = gr.Slider(2, 32, value=10, step=1, label="Steps")
                        i_method = gr.Radio(["lerp", "slerp"], value="lerp", label="Path")
                        i_btn = gr.Button("Interpolate", variant="primary")
                i_ex = gr.Dataset(components=[i_a, i_b], samples=pair_rows(first), label="Example pairs", samples_per_page=5)
                i_frames = gr.Image(label="Frames from A to B (left to right, row by row)", format="png", interactive=False,
                                    elem_classes="pixelated", buttons=["download", "fullscreen"])
                i_anim = gr.Image(label="Animation (the download button saves the GIF)", type="filepath", interactive=False,
                                  height=240, elem_classes="pixelated", buttons=["download", "fullscreen"])
            with gr.Tab("Latent sliders", id="sliders", visible="sliders" in caps(first)) as tab_sliders:
                gr.Markdown(texts.SLIDERS)
                base_z = gr.State(zero_z(first))
                with gr.Row():
                    with gr.Column(scale=1, min_width=220):
                        l_in = gr.Image(label="Start from an image", type="filepath", sources=["upload", "clipboard"], height=180)
                        l_enc = gr.Button("Use this image's μ", variant="primary")
                        l_ex = gr.Dataset(components=[l_in], samples=example_rows(first), label="Examples", samples_per_page=12)
                        with gr.Row():
                            l_seed = gr.Number(value=0, precision=0, label="Seed", min_width=80)
                            l_rand = gr.Button("Random z")
                        l_reset = gr.Button("Reset sliders")
                    with gr.Column(scale=1, min_width=220):
                        l_out = gr.Image(label="decode(z)", format="png", interactive=False, height=260, elem_classes="pixelated")
                        l_trav_btn = gr.Button("Traversal grid of the top dimensions")
                    with gr.Column(scale=2):
                        order, labels = service.slider_order(first), service.slider_labels(first)
                        sliders = []
                        with gr.Row():
                            for i in range(n_sliders):
                                sliders.append(gr.Slider(-4.0, 4.0, value=0.0, step=0.05, min_width=160,
                                                         label=labels[i] if i < len(order) else f"z{i}", visible=i < len(order)))
                l_trav = gr.Image(label="Traversal: each row sets one dimension from -3 to +3, the others stay at the current z",
                                  format="png", interactive=False)
                with gr.Accordion("μ of the image (latent means, JSON)", open=False):
                    l_mu = gr.JSON(label="μ")
            with gr.Tab("Latent channels", id="channels", visible="channel_offsets" in caps(first)) as tab_channels:
                gr.Markdown(texts.CHANNELS)
                with gr.Row():
                    with gr.Column(scale=1, min_width=240):
                        c_in = gr.Image(label="A photo", type="filepath", sources=["upload", "clipboard"], height=220)
                        c_offsets = [gr.Slider(-3, 3, value=0, step=0.1, label=f"latent channel {i}: offset") for i in range(4)]
                        c_btn = gr.Button("Decode with these offsets", variant="primary")
                    c_out = gr.Image(label="decode(μ + offset per channel)", format="png", interactive=False, scale=2)
            with gr.Tab("Latent map", id="map", visible="latent_map" in caps(first)) as tab_map:
                gr.Markdown(texts.LATENT_MAP)
                no_map = gr.Markdown("This model has no stored latent map (it is made by `python -m vae_demo.evaluate`).",
                                     visible=not service.has_latent_map(first))
                with gr.Row(visible=service.has_latent_map(first)) as map_row:
                    with gr.Column(scale=3):
                        m_img = gr.Image(label="Test-set means, PCA of μ (click to decode a point)", format="png",
                                         interactive=False, elem_id="map-image")
                    with gr.Column(scale=2, min_width=240):
                        m_out = gr.Image(label="decode(point)", format="png", interactive=False, height=220, elem_classes="pixelated")
                        m_u = gr.Slider(-3, 3, value=0, step=0.01, label="PC 1")
                        m_v = gr.Slider(-3, 3, value=0, step=0.01, label="PC 2")
                        m_in = gr.Image(label="Mark your own image on the map", type="filepath", sources=["upload", "clipboard"], height=150)
                        m_mark = gr.Button("Mark it")
                        m_ex = gr.Dataset(components=[m_in], samples=example_rows(first), label="Examples", samples_per_page=12)
                m_point = gr.State(None)
            with gr.Tab("API", id="api"):
                gr.Markdown(
                    "Every tab is an HTTP endpoint — `/reconstruct`, `/sample`, `/interpolate`, `/encode`, `/decode`, "
                    "`/traverse`, `/models` — callable with `gradio_client` (see *Use via API* at the bottom of the page). "
                    "Try `/decode` and `/traverse` here: paste a z from the sliders tab's μ."
                )
                with gr.Row():
                    api_z = gr.Textbox(label="z (JSON list; empty = all zeros for /traverse)", lines=3)
                    with gr.Column():
                        api_dims = gr.Slider(1, 16, value=8, step=1, label="Dimensions in the traversal")
                        api_dec = gr.Button("Decode z")
                        api_trav = gr.Button("Traverse around z")
                with gr.Row():
                    api_img = gr.Image(label="decode(z)", format="png", interactive=False, height=200, elem_classes="pixelated")
                    api_grid = gr.Image(label="Traversal", format="png", interactive=False)
                api_list = gr.Button("List loaded models")
                api_models = gr.JSON(label="Loaded models")

        # Model management.
        load_btn.click(load_model, [hub_id], [model, load_status], api_name="load_model", concurrency_limit=1)
        hub_id.submit(load_model, [hub_id], [model, load_status], api_visibility="private", concurrency_limit=1)
        model.change(on_model_change, [model],
                     [card, how, rec_ex, i_ex, l_ex, m_ex, base_z, l_out, map_row, no_map, m_img, m_out, m_u, m_v,
                      tab_sample, tab_sliders, tab_map, tab_channels, cap_note, *sliders],
                     api_visibility="private", **M)

        # Reconstruct: the API answer first, then the pictures that explain it.
        rec_ex.click(lambda row: row[0], rec_ex, rec_in, api_visibility="private")
        rec_btn.click(reconstruct, [rec_in, model], [rec_out, rec_metrics, rec_summary],
                      api_name="reconstruct", preprocess=False, **M).success(
            explain, [rec_in, model], [rec_seen, rec_err, rec_post, rec_chart, rec_pca], api_visibility="private", preprocess=False, **M)

        s_btn.click(sample, [model, s_n, s_seed, s_temp], [s_grid], api_name="sample", preprocess=False, **M)

        i_ex.click(lambda row: (row[0], row[1]), i_ex, [i_a, i_b], api_visibility="private")
        i_btn.click(interpolate, [i_a, i_b, model, i_steps, i_method], [i_frames, i_anim],
                    api_name="interpolate", preprocess=False, **M)

        l_ex.click(lambda row: row[0], l_ex, l_in, api_visibility="private")
        l_enc.click(encode, [l_in, model], [l_mu], api_name="encode", preprocess=False, **M).success(
            sliders_from_image, [l_in, model], [base_z, l_out, *sliders], api_visibility="private", preprocess=False, **M)
        l_rand.click(sliders_random, [model, l_seed], [base_z, l_mu, l_out, *sliders], api_visibility="private", **M)
        l_reset.click(sliders_reset, [model, base_z], [l_out, *sliders], api_visibility="private", **M)
        # One endpoint for every slider: decode only (the image's mu is cached in base_z, never re-encoded).
        gr.on([s.input for s in sliders], slider_update, [model, base_z, *sliders], [l_out], api_name="slider_update",
              api_visibility="undocumented", trigger_mode="always_last", show_progress="hidden", **M)
        l_trav_btn.click(traverse_current, [model, base_z, *sliders], [l_trav], api_visibility="private", **M)

        c_btn.click(channel_offsets, [c_in, model, *c_offsets], [c_out], api_visibility="private", preprocess=False, **M)
        m_ex.click(lambda row: row[0], m_ex, m_in, api_visibility="private")
        map_outs = [m_img, m_out, m_u, m_v, m_point]
        m_img.select(map_click, [model], map_outs, api_visibility="private", **M)
        gr.on([m_u.input, m_v.input], map_sliders, [model, m_u, m_v], map_outs, api_visibility="private",
              trigger_mode="always_last", show_progress="hidden", **M)
        m_mark.click(map_mark, [model, m_in], map_outs, api_visibility="private", preprocess=False, **M)

        api_dec.click(decode, [api_z, model], [api_img], api_name="decode", preprocess=False, **M)
        api_trav.click(traverse, [api_z, model, api_dims], [api_grid], api_name="traverse", **M)
        api_list.click(models, None, [api_models], api_name="models")

        def on_load(m):
            return [start_image(m), *map_outputs(m)[:4]]

        demo.load(user_errors(on_load), [model], [l_out, m_img, m_out, m_u, m_v], api_visibility="private", **M)
    demo.queue(max_size=64, default_concurrency_limit=2)
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="vae-demo: see what a variational autoencoder does.")
    p.add_argument("--model", nargs="+", default=None,
                   help="bundled names, local folders or Hub repo ids (default: every bundled model, mnist first)")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    return p.parse_args(argv)


def default_models() -> list:
    found = bundled_models()
    return (["mnist"] if "mnist" in found else []) + [m for m in found if m != "mnist"]


def create_demo(models=None, device: str = "auto") -> gr.Blocks:
    # Images are read only from Gradio's upload folder and the bundled examples, whatever path a client sends.
    roots = [get_upload_folder(), CHECKPOINTS_DIR]
    return build_demo(DemoService.from_sources(list(models or default_models()), pick_device(device), upload_roots=roots))


# Uploads over the limit are refused by Gradio (HTTP 413) before they are stored; sessions are capped so that
# API calls (each one a session) cannot grow memory without bound; internal error text is never shown.
LAUNCH_OPTIONS = dict(show_error=False, max_file_size=MAX_UPLOAD_BYTES, state_session_capacity=256, css=CSS)


def launch_kwargs(args) -> dict:
    return dict(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_OPTIONS)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    args = parse_args()
    demo = create_demo(args.model, args.device)
    demo.launch(**launch_kwargs(args))
else:
    # A module-level `demo` for `gradio app.py` and Hugging Face Spaces (which run this file as __main__).
    demo = create_demo(os.environ["VAE_DEMO_MODELS"].split(",") if os.environ.get("VAE_DEMO_MODELS") else None,
                       os.environ.get("VAE_DEMO_DEVICE", "auto"))
