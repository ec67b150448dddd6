"""Model-only timings beside the end-to-end ones: the torch forward of each endpoint, the service call around
it (torch + PIL + files), and Gradio's own PNG save of the service's output images, in a fresh process.

    python benchmarks/model_only.py APP_DIR DEVICE ITERS CAP_S TMP MODEL[,MODEL] EXAMPLE_A EXAMPLE_B  -> one JSON line
"""

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import report


def model_phase(app_dir: Path, models: list, device: str, ex: list, iters: int, cap_s: float, tmp: Path) -> dict:
    """The torch forward of each endpoint, the service call around it, and Gradio's PNG save of its outputs:
    up to `iters` rounds of every measurement, for at most about cap_s seconds."""
    sys.path.insert(0, str(app_dir))
    import torch
    from gradio import processing_utils
    from PIL import Image

    from vae_demo.serving import inference
    from vae_demo.device import pick_device, reuse_freed_memory
    from vae_demo.serving.service import DemoService

    reuse_freed_memory()  # as app.py does: the figures are the app's
    dev = pick_device(device)
    svc = DemoService.from_sources(models, dev)
    svc.gif_dir = tmp / "gifs"
    svc.gif_dir.mkdir(exist_ok=True)
    model = models[0]
    vae = svc.registry.get(model)
    d = vae.config.latent_dim
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    xa, xb = inference.image_tensor(vae, ex[0]), inference.image_tensor(vae, ex[1])
    z1, z64, z16, z72 = (torch.randn(k, d, generator=g).to(dev) for k in (1, 64, 16, 72))
    z8 = torch.randn(8, d, generator=g).to(dev)
    with torch.inference_mode():
        mu_a = vae.encode(xa)[0]
    z_list = z1[0].tolist()
    values = [0.5] * min(64, d)

    def torch_reconstruct():  # the least a reconstruction with an ELBO needs: decode(mu) and one posterior sample
        mu, logvar = vae.encode(xa)
        vae.decode(mu)
        vae.decode(mu + z1 * torch.exp(0.5 * logvar))

    def torch_interpolate():
        vae.encode(xa)
        vae.encode(xb)
        vae.decode(z16)

    items = {  # name: (what the torch line times, torch fn, service fn)
        "reconstruct": (
            "encode(1) + decode(μ) + decode(1 posterior z)",
            torch_reconstruct,
            lambda i: svc.reconstruct(ex[0], model),
        ),
        "encode": ("encode(1)", lambda: vae.encode(xa), lambda i: svc.encode(ex[0], model)),
        "decode": ("decode(1)", lambda: vae.decode(z1), lambda i: svc.decode(z_list, model)),
        "slider_update": ("decode(1)", lambda: vae.decode(z1), lambda i: svc.decode_with_sliders(model, None, values)),
        "sample_64": ("decode(64)", lambda: vae.decode(z64), lambda i: svc.sample(model, 64, i, 1.0)),
        "interpolate_16_gif": (
            "encode(1) ×2 + decode(16)",
            torch_interpolate,
            lambda i: svc.interpolate(ex[0], ex[1], model, 16, "lerp"),
        ),
    }
    if hasattr(svc, "traverse"):
        items["traverse"] = ("decode(72)", lambda: vae.decode(z72), lambda i: svc.traverse(z_list, model))
    if hasattr(svc, "explain"):  # the browser chains it after /reconstruct; not an API endpoint
        items["explain (private, chained after /reconstruct)"] = (
            "encode(1) + decode(8 posterior z)",
            lambda: (vae.encode(xa), vae.decode(mu_a + z8)),
            lambda i: svc.explain(ex[0], model),
        )

    def pil_images(obj):
        if isinstance(obj, Image.Image):
            return [obj]
        if isinstance(obj, (list, tuple)):
            return [im for o in obj for im in pil_images(o)]
        return []

    png_dir = tmp / "png-cache"
    jobs = []  # (item, kind, fn): timed round-robin, so a burst of load elsewhere hits every item alike
    for name, (_, tfn, sfn) in items.items():
        imgs = pil_images(sfn(0))
        jobs += [(name, "torch", lambda i, f=tfn: f()), (name, "service", sfn)]
        if imgs:
            jobs.append(
                (
                    name,
                    "png",
                    lambda i, ims=imgs: [processing_utils.save_pil_to_cache(im, str(png_dir), format="png") for im in ims],
                )
            )
    times = {(name, kind): [] for name, kind, _ in jobs}
    t_end = time.perf_counter() + cap_s
    for i in range(iters + 1):  # round 0 is a warm-up
        for name, kind, fn in jobs:
            with torch.inference_mode() if kind == "torch" else contextlib.nullcontext():
                t0 = time.perf_counter()
                fn(i)
                sync()
                if i:
                    times[(name, kind)].append(time.perf_counter() - t0)
        if time.perf_counter() > t_end and i >= 2:
            break
    res = {"device": str(dev), "torch_threads": torch.get_num_threads(), "rounds": i, "items": {}}
    for name, (what, _, sfn) in items.items():
        png = times.get((name, "png"))
        res["items"][name] = {  # the best of the rounds too: on a loaded machine it is the steadier figure
            "torch_what": what,
            "torch_p50": report.pct(times[(name, "torch")], 50),
            "torch_min": min(times[(name, "torch")]),
            "service_p50": report.pct(times[(name, "service")], 50),
            "service_min": min(times[(name, "service")]),
            "n_images": len(pil_images(sfn(0))),
            "png_p50": report.pct(png, 50) if png else 0.0,
            "png_min": min(png) if png else 0.0,
        }
    return res


def run(app_dir: Path, models: list, device: str, ex: list, iters: int, cap_s: float, tmp: Path) -> dict:
    """model_phase in a fresh Python process, as clean as a server's (no client threads, no event loop)."""
    out = subprocess.run(
        [sys.executable, __file__, str(app_dir), device, str(iters), str(cap_s), str(tmp), ",".join(models), *ex[:2]],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp)},  # DemoService makes a GIF folder in the temporary directory
    )
    if out.returncode != 0:
        raise RuntimeError(f"model-only run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    app_dir, device, iters, cap_s, tmp, models, *examples = sys.argv[1:]
    result = model_phase(Path(app_dir), models.split(","), device, examples, int(iters), float(cap_s), Path(tmp))
    print(json.dumps(result))
