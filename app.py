"""vae-demo: see what a variational autoencoder does. Wires the UI to vae_demo's plain functions.

    python app.py [--model mnist ...] [--device auto|cpu|cuda|mps] [--host 127.0.0.1] [--port 7860] [--share]
"""

import argparse
import functools
import logging
import os

import gradio as gr

from vae_demo.device import DEVICE_CHOICES, pick_device
from vae_demo.service import USER_ERRORS, DemoService

log = logging.getLogger("vae_demo.app")
MAX_SLIDERS = 64

INTRO = """# vae-demo — what a variational autoencoder does
An **encoder** maps an image to a Gaussian in latent space (mean μ, spread σ); the **decoder** maps a
latent vector z back to an image. Training maximises the ELBO = reconstruction − β·KL, which pulls every
image's Gaussian towards N(0, I) — so the latent space has no holes: you can sample from it, walk through
it and turn its dimensions like knobs."""

RECONSTRUCT_INFO = """Encoder → μ, σ → **z = μ + σ·ε** (the reparameterization trick) → decoder. The reconstruction below
decodes μ itself; the posterior samples decode random z drawn around μ — their blur and variety is the
uncertainty of q(z|x). The error map shows where the model could not reproduce the input."""
SAMPLE_INFO = """Because the KL term keeps every image's code close to N(0, I), the latent space is *complete*: a random
z ~ N(0, I) decodes to a plausible image. Temperature scales z: below 1 gives typical images, above 1 odd ones.
The same seed always gives the same images."""
INTERPOLATE_INFO = """The latent space is *continuous*: points between two codes decode to images between the two inputs.
**lerp** walks a straight line from μ_A to μ_B; **slerp** follows the sphere, keeping the norm of z where
Gaussian samples actually live."""
SLIDERS_INFO = """Each slider is one latent dimension, the most informative first (largest average KL on the test set).
Only a few dimensions carry information; the rest were pushed to the prior by the KL term and barely change
the image. Start from an image's μ or from a random z, then drag."""


def user_errors(fn):
    """Turn the package's readable errors into gr.Error (shown in the page and returned by the API)."""

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
    names = service.model_names()
    first = names[0]
    examples = service.examples(first)
    n_sliders = min(MAX_SLIDERS, max(service.registry.get(n).config.latent_dim for n in names))

    # Handlers named and typed as the HTTP API documents them (gradio_client keyword arguments).
    @user_errors
    def reconstruct(image, model: str = first):
        rec, seen, err, posterior, metrics, _ = service.reconstruct(image, model)
        summary = (
            f"**MSE** {metrics['mse']:.4f} · **PSNR** {metrics['psnr']:.1f} dB · "
            f"**ELBO** {metrics['elbo']:.1f} nats = −(reconstruction {metrics['reconstruction_nll']:.1f} + KL {metrics['kl']:.1f})"
        )
        return rec, seen, err, posterior, metrics, summary

    @user_errors
    def sample(model: str = first, n: int = 16, seed: int = 0, temperature: float = 1.0):
        return service.sample(model, n, seed, temperature)

    @user_errors
    def interpolate(image_a, image_b, model: str = first, steps: int = 8, method: str = "lerp"):
        frames, gif = service.interpolate(image_a, image_b, model, steps, method)
        return frames, gif, gif

    @user_errors
    def encode(image, model: str = first):
        return service.encode(image, model)

    @user_errors
    def decode(z, model: str = first):
        return service.decode(z, model)

    @user_errors
    def models():
        return service.models()

    @user_errors
    def load_model(source: str):
        name = service.load_model(source)
        gr.Info(f"Loaded {name}.")
        return gr.update(choices=service.model_names(), value=name), f"Loaded **{name}**."

    def slider_updates(model, z):
        order = service.slider_order(model)
        labels = service.slider_labels(model)
        ups = []
        for i in range(n_sliders):
            if i < len(order):
                ups.append(gr.update(visible=True, label=labels[i], value=round(float(z[order[i]]), 3)))
            else:
                ups.append(gr.update(visible=False))
        return ups

    @user_errors
    def sliders_from_image(image, model: str = first):
        z = service.latent_from_image(image, model)
        return [z, z, service.decode(z, model), *slider_updates(model, z)]

    @user_errors
    def sliders_random(model: str = first, seed: int = 0):
        z = service.random_latent(model, seed)
        return [z, z, service.decode(z, model), *slider_updates(model, z)]

    @user_errors
    def sliders_reset(model, base):
        z = base if base else [0.0] * service.registry.get(model).config.latent_dim
        return [z, service.decode(z, model), *slider_updates(model, z)]

    @user_errors
    def slider_decode(model, base, *values):
        return service.decode_with_sliders(model, base, list(values))

    @user_errors
    def on_model_change(model):
        z = [0.0] * service.registry.get(model).config.latent_dim
        return [service.model_card(model), z, z, service.decode(z, model), *slider_updates(model, z)]

    with gr.Blocks(title="vae-demo: what a VAE does") as demo:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=True):
            model = gr.Dropdown(choices=names, value=first, label="Model", scale=2, interactive=True)
            hub_id = gr.Textbox(label="Load another model (Hub repo id or bundled name)", placeholder="user/repo", scale=3)
            load_btn = gr.Button("Load", scale=1)
        card = gr.Markdown(service.model_card(first))
        load_status = gr.Markdown()

        with gr.Tabs():
            with gr.Tab("Reconstruct"):
                gr.Markdown(RECONSTRUCT_INFO)
                with gr.Row():
                    with gr.Column(scale=1):
                        rec_in = gr.Image(label="Upload an image", type="filepath", sources=["upload", "clipboard"], height=240)
                        rec_btn = gr.Button("Reconstruct", variant="primary")
                        gr.Examples(examples=examples, inputs=rec_in, label="MNIST test digits")
                    with gr.Column(scale=2):
                        with gr.Row():
                            rec_seen = gr.Image(label="As the model sees it", format="png", interactive=False, height=240)
                            rec_out = gr.Image(label="Reconstruction (decode μ)", format="png", interactive=False, height=240)
                            rec_err = gr.Image(label="Squared error per pixel", format="png", interactive=False, height=240)
                        rec_summary = gr.Markdown()
                        rec_post = gr.Gallery(label="Posterior samples: decode(μ + σ·ε)", format="png", columns=8, height="auto")
                        rec_metrics = gr.JSON(label="Metrics")
            with gr.Tab("Sample"):
                gr.Markdown(SAMPLE_INFO)
                with gr.Row():
                    with gr.Column(scale=1):
                        s_n = gr.Slider(1, 64, value=16, step=1, label="How many")
                        s_seed = gr.Number(value=0, precision=0, label="Seed")
                        s_temp = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="Temperature")
                        s_btn = gr.Button("Sample from the prior", variant="primary")
                    with gr.Column(scale=3):
                        s_gallery = gr.Gallery(label="Samples", format="png", columns=8, height="auto")
            with gr.Tab("Interpolate"):
                gr.Markdown(INTERPOLATE_INFO)
                with gr.Row():
                    i_a = gr.Image(label="Image A", type="filepath", sources=["upload", "clipboard"], height=200)
                    i_b = gr.Image(label="Image B", type="filepath", sources=["upload", "clipboard"], height=200)
                    with gr.Column():
                        i_steps = gr.Slider(2, 32, value=10, step=1, label="Steps")
                        i_method = gr.Radio(["lerp", "slerp"], value="lerp", label="Path")
                        i_btn = gr.Button("Interpolate", variant="primary")
                if len(examples) >= 2:
                    gr.Examples(examples=[[examples[i], examples[(i + 1) % len(examples)]] for i in range(len(examples))],
                                inputs=[i_a, i_b], label="Example pairs")
                i_gallery = gr.Gallery(label="Frames from A to B", format="png", columns=8, height="auto")
                with gr.Row():
                    i_anim = gr.Image(label="Animation", type="filepath", interactive=False, height=200)
                    i_file = gr.File(label="Download the GIF")
            with gr.Tab("Latent sliders"):
                gr.Markdown(SLIDERS_INFO)
                base_z = gr.State([0.0] * service.registry.get(first).config.latent_dim)
                with gr.Row():
                    with gr.Column(scale=1):
                        l_in = gr.Image(label="Start from an image", type="filepath", sources=["upload", "clipboard"], height=200)
                        l_enc = gr.Button("Use this image's μ", variant="primary")
                        gr.Examples(examples=examples, inputs=l_in, label="MNIST test digits")
                        with gr.Row():
                            l_seed = gr.Number(value=0, precision=0, label="Seed", min_width=80)
                            l_rand = gr.Button("Random z")
                        l_reset = gr.Button("Reset sliders")
                    with gr.Column(scale=1):
                        l_out = gr.Image(label="decode(z)", format="png", interactive=False, height=280)
                        l_mu = gr.JSON(label="μ of the image (latent means)")
                    with gr.Column(scale=2):
                        sliders = []
                        order = service.slider_order(first)
                        labels = service.slider_labels(first)
                        with gr.Row():
                            for i in range(n_sliders):
                                sliders.append(gr.Slider(-4.0, 4.0, value=0.0, step=0.05, label=labels[i] if i < len(order) else f"z{i}",
                                                         visible=i < len(order), min_width=160))
            with gr.Tab("API"):
                gr.Markdown(
                    "Every tab is an HTTP endpoint: `/reconstruct`, `/sample`, `/interpolate`, `/encode`, `/decode`, `/models`. "
                    "Use them from Python with `gradio_client` (see *Use via API* at the bottom of the page)."
                )
                with gr.Row():
                    api_z = gr.Textbox(label="z (JSON list)", lines=2)
                    api_img = gr.Image(label="decode(z)", format="png", interactive=False, height=200)
                api_dec = gr.Button("Decode")
                api_models = gr.JSON(label="Loaded models")
                api_list = gr.Button("List models")

        load_btn.click(load_model, [hub_id], [model, load_status], api_name="load_model")
        hub_id.submit(load_model, [hub_id], [model, load_status], api_visibility="private")
        model.change(on_model_change, [model], [card, base_z, l_mu, l_out, *sliders], api_visibility="private")

        rec_btn.click(reconstruct, [rec_in, model], [rec_out, rec_seen, rec_err, rec_post, rec_metrics, rec_summary],
                      api_name="reconstruct", preprocess=False)
        s_btn.click(sample, [model, s_n, s_seed, s_temp], [s_gallery], api_name="sample")
        i_btn.click(interpolate, [i_a, i_b, model, i_steps, i_method], [i_gallery, i_anim, i_file],
                    api_name="interpolate", preprocess=False)
        l_enc.click(encode, [l_in, model], [l_mu], api_name="encode", preprocess=False).then(
            sliders_from_image, [l_in, model], [base_z, l_mu, l_out, *sliders], api_visibility="private", preprocess=False)
        l_rand.click(sliders_random, [model, l_seed], [base_z, l_mu, l_out, *sliders], api_visibility="private")
        l_reset.click(sliders_reset, [model, base_z], [l_mu, l_out, *sliders], api_visibility="private")
        # One endpoint for every slider: decode only (the image's mu is cached in base_z, never re-encoded).
        gr.on([s.input for s in sliders], slider_decode, [model, base_z, *sliders], [l_out], api_name="slider_update",
              api_visibility="undocumented", trigger_mode="always_last", show_progress="hidden")
        api_dec.click(decode, [api_z, model], [api_img], api_name="decode")
        api_list.click(models, None, [api_models], api_name="models")
        demo.load(lambda m: service.decode([0.0] * service.registry.get(m).config.latent_dim, m), [model], [l_out],
                  api_visibility="private")
    demo.queue(max_size=64, default_concurrency_limit=2)
    return demo


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="vae-demo: see what a variational autoencoder does.")
    p.add_argument("--model", nargs="+", default=["mnist"], help="bundled names, local folders or Hub repo ids")
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    p.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    return p.parse_args(argv)


def create_demo(models=("mnist",), device: str = "auto") -> gr.Blocks:
    return build_demo(DemoService.from_sources(list(models), pick_device(device)))


# A module-level `demo` for `gradio app.py` and Hugging Face Spaces; the CLI below builds its own.
if __name__ != "__main__":
    demo = create_demo(os.environ.get("VAE_DEMO_MODELS", "mnist").split(","), os.environ.get("VAE_DEMO_DEVICE", "auto"))

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    args = parse_args()
    demo = create_demo(args.model, args.device)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=True)
