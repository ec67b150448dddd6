"""Run app.py with proposed changes applied from outside, to measure a change before anyone makes it.

    python benchmarks/variants.py VARIANT[,VARIANT...] --port P --device D --model mnist ...

Everything after the variant list goes to app.py unchanged. bench.py and ab.py start it through
`--launcher`. Each variant imitates one change to app.py / vae_demo as closely as it can from outside;
none of this is meant to be shipped.
"""

import runpy
import sys
from pathlib import Path


def threads1():
    """torch.set_num_threads(1) in the server: no OpenMP team per request (2 cores, 2 handlers at once)."""
    import torch

    torch.set_num_threads(1)


def png1():
    """Gradio's PNG save with zlib level 1 instead of PIL's default 6."""
    from gradio import processing_utils

    original = processing_utils.encode_pil_to_bytes

    def encode(pil_image, format="png"):
        if format.lower() != "png":
            return original(pil_image, format)
        import io

        with io.BytesIO() as out:
            pil_image.save(out, "png", compress_level=1)
            return out.getvalue()

    processing_utils.encode_pil_to_bytes = encode


def sample_grid():
    """/sample returns one grid image (DemoService.sample_grid) in the gallery instead of n separate images."""
    from vae_demo import service

    def sample(self, model=None, n=16, seed=0, temperature=1.0):
        return [self.sample_grid(model, n, seed, temperature)]

    service.DemoService.sample = sample


def native_px():
    """Images at the model's own size (28x28) instead of enlarged 8x on the server; the page's `.pixelated` CSS
    enlarges them in the browser. (Changes what API callers get: README documents the 224x224 images.)"""
    from vae_demo import service

    service.display_scale = lambda image_size, target=224: 1


def interp_strip():
    """/interpolate returns its frames as one filmstrip image in the gallery instead of `steps` separate images."""
    from PIL import Image

    from vae_demo import service

    original = service.DemoService.interpolate

    def interpolate(self, image_a, image_b, model=None, steps=8, method="lerp"):
        frames, gif = original(self, image_a, image_b, model, steps, method)
        strip = Image.new(frames[0].mode, (sum(f.width for f in frames), frames[0].height))
        x = 0
        for f in frames:
            strip.paste(f, (x, 0))
            x += f.width
        return [strip], gif

    service.DemoService.interpolate = interpolate


def lazy_session():
    """What a per-call session costs: skip SessionState's eager config copy of every block (gradio/state_holder.py).

    Not a proposal to patch gradio: it bounds what fewer blocks in the page (or an upstream fix) could save
    for API callers, who get a new session on every call.
    """
    from copy import copy

    from gradio import state_holder

    def init(self, blocks):
        self.blocks_config = copy(blocks.default_config)
        self.config_values = {}
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 3600

    state_holder.SessionState.__init__ = init


def _on_launch(change):
    """Apply `change(demo)` to the built demo just before it launches."""
    import gradio as gr

    original = gr.Blocks.launch

    def launch(self, *args, **kwargs):
        change(self)
        return original(self, *args, **kwargs)

    gr.Blocks.launch = launch


def _concurrency(limit):
    def variant():
        _on_launch(lambda demo: demo.queue(max_size=64, default_concurrency_limit=limit))

    variant.__doc__ = f"demo.queue(default_concurrency_limit={limit}) instead of 2."
    return variant


def batch():
    """/reconstruct, /encode, /decode as batched events (batch=True, max_batch_size=8), items run in one call.

    The batched function loops over the items with the existing handler, so it measures what Gradio's
    batching saves (queue jobs, thread hops), not a stacked torch forward (which the profile shows is small).
    """

    def change(demo):
        for fn in demo.fns.values():
            if fn.api_name in ("reconstruct", "encode", "decode"):
                single = fn.fn

                n_out = len(fn.outputs)

                def batched(*columns, _single=single, _n_out=n_out):
                    rows = [_single(*args) for args in zip(*columns, strict=True)]
                    if _n_out == 1:
                        return [list(rows)]
                    return [list(col) for col in zip(*rows, strict=True)]

                fn.fn, fn.batch, fn.max_batch_size = batched, True, 8

    _on_launch(change)


def capacity200():
    """demo.launch(state_session_capacity=200) instead of Gradio's 10000: every API call without a session_hash
    leaves a session of ~240 KiB behind, kept until 10000 newer ones push it out."""
    import gradio as gr

    original = gr.Blocks.launch

    def launch(self, *args, **kwargs):
        return original(self, *args, **{**kwargs, "state_session_capacity": 200})

    gr.Blocks.launch = launch


VARIANTS = {
    "threads1": threads1,
    "png1": png1,
    "sample_grid": sample_grid,
    "lazy_session": lazy_session,
    "batch": batch,
    "native_px": native_px,
    "interp_strip": interp_strip,
    "capacity200": capacity200,
    "conc1": _concurrency(1),
    "conc4": _concurrency(4),
    "conc_none": _concurrency(None),
}


def main():
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else []
    unknown = [n for n in names if n not in VARIANTS and n != "base"]
    if not names or unknown:
        sys.exit(
            "usage: variants.py VARIANT[,VARIANT...] APP_ARGS...; variants: base, "
            + ", ".join(f"{k} ({v.__doc__.splitlines()[0]})" for k, v in VARIANTS.items())
        )
    app_dir = Path.cwd()  # bench.py starts servers in the app's folder
    sys.path.insert(0, str(app_dir))
    for n in names:
        if n != "base":
            VARIANTS[n]()
    sys.argv = [str(app_dir / "app.py"), *sys.argv[2:]]
    runpy.run_path(str(app_dir / "app.py"), run_name="__main__")


if __name__ == "__main__":
    main()
