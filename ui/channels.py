"""The Latent channels tab (photo autoencoders): shift each latent channel of a photo's code and decode."""

import gradio as gr

from vae_demo.serving import texts
from vae_demo.serving.service import DemoService

from .common import MODEL_QUEUE, NOT_IN_API, Tab, caps, user_errors


def build(service: DemoService, model: gr.Dropdown) -> Tab:
    first = service.model_names()[0]

    @user_errors
    def channel_offsets(image, m, *offsets):
        return service.channel_offsets(image, m, *offsets)

    def when_given(image, m, *offsets):
        return channel_offsets(image, m, *offsets) if image is not None else gr.skip()

    with gr.Tab("Latent channels", id="channels", visible="channel_offsets" in caps(service, first)) as tab:
        gr.Markdown(texts.CHANNELS)
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                image = gr.Image(label="A photo", type="filepath", sources=["upload", "clipboard", "webcam"], height=220)
                offsets = [gr.Slider(-3, 3, value=0, step=0.1, label=f"latent channel {i}: offset") for i in range(4)]
                button = gr.Button("Decode with these offsets", variant="primary")
            out = gr.Image(label="decode(μ + offset per channel)", format="png", interactive=False, scale=2)
    button.click(channel_offsets, [image, model, *offsets], [out], preprocess=False, **NOT_IN_API, **MODEL_QUEUE)
    gr.on([image.input, *[o.release for o in offsets]], when_given, [image, model, *offsets], [out], preprocess=False,
          trigger_mode="always_last", **NOT_IN_API, **MODEL_QUEUE)

    def refresh(m):
        return [gr.update(visible="channel_offsets" in caps(service, m))]

    return Tab(outputs=[tab], refresh=refresh)
