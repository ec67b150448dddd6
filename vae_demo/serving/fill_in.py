"""/impute, fill in what is missing: an image and a mask (a preset or a painted picture) -> n completions drawn from
the model's p(x_m | x_o), the masked input, what the reader sees in each, and where they disagree.
The algorithms are in vae_demo/analysis/imputation.py; this module checks what a visitor sends and draws the answer."""

import math
from typing import Optional

import numpy as np
import torch
from PIL import Image

from vae_demo.analysis import imputation
from vae_demo.analysis.evaluation_files import evaluation_of
from vae_demo.device import batch_threads
from vae_demo.imaging.render import display_scale, heatmap, tile_sheet
from vae_demo.imaging.uploads import ImageError, image_arg, open_image
from vae_demo.serving.inference import InputError, _int, check_seed, framed_tensor, is_spatial
from vae_demo.serving.verdicts import reads

MAX_COMPLETIONS = 16
MAX_CHAIN_STEPS = 500
MISSING_COLOUR = (234, 88, 12)  # how a missing pixel shows in the masked input's tile (the app's marker orange)


def check_model(vae) -> None:
    """Fill in needs a likelihood over pixels and an unconditional code: a sentence for every model without them."""
    if is_spatial(vae):
        raise InputError(f"{vae.info.name} is a photo autoencoder: its decoder defines no p(x|z), so there is no "
                         "distribution of the missing pixels to draw from. Pick mnist, fashion-mnist or faces to fill in.")
    if vae.config.num_labels:
        raise InputError(f"{vae.info.name} is conditional: it needs the label of the whole image to encode it. "
                         "Pick mnist (or fashion-mnist, faces) to fill in.")


def check_method(method) -> str:
    m = str(method or "").strip().lower()
    if m not in imputation.METHODS:
        raise InputError(f"method must be one of {', '.join(imputation.METHODS)}; got {method!r}.")
    return m


def mask_of(mask, size: int, seed: int, roots=None) -> tuple:
    """A preset's name or a picture (path, FileData dict, PIL, array) -> ((1, 1, S, S) bool, True = missing; the
    preset's name or "picture"). In a picture the painted pixels are missing: where it has transparency, the
    pixels drawn on (alpha ≥ 50 %); where it is opaque, the light ones (a white-on-black mask, as inpainting tools
    make). It covers the image as the model sees it, so it is square: S × S or a whole multiple (the page's 280 × 280)."""
    if mask is None or (isinstance(mask, str) and not mask.strip()):
        raise InputError(f"Give a mask: one of {', '.join(imputation.PRESETS)}, or a picture with the missing part painted.")
    if isinstance(mask, str) and mask.strip().lower() in imputation.PRESETS:
        name = mask.strip().lower()
        g = torch.Generator().manual_seed(seed)
        return imputation.preset_mask(name, size, g)[None, None], name
    if isinstance(mask, str) and not any(c in mask for c in "/\\."):
        raise InputError(f"mask must be one of {', '.join(imputation.PRESETS)}, or a picture; got {mask!r}.")
    img = open_image(image_arg(mask, roots))
    w, h = img.size
    if w != h or w % size:
        raise ImageError(f"The mask is {w}×{h} pixels; it covers the image as the model sees it, so it must be "
                         f"{size}×{size} or a whole multiple of that ({size * 10}×{size * 10} as the page paints it).")
    rgba = img.convert("RGBA")
    alpha = np.asarray(rgba.getchannel("A"), np.float32) / 255
    painted = alpha if alpha.min() < 1 else np.asarray(rgba.convert("L"), np.float32) / 255
    k = w // size  # a model pixel is missing when at least half of its k × k block is painted
    share = painted.reshape(size, k, size, k).mean((1, 3))
    return torch.from_numpy(share >= 0.5)[None, None], "picture"


def masked_tile(x: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W), (1, 1, H, W) bool -> (1, 3, H, W): the seen pixels in RGB, the missing ones in MISSING_COLOUR"""
    rgb = x.expand(1, 3, *x.shape[2:]) if x.shape[1] == 1 else x
    colour = torch.tensor(MISSING_COLOUR, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255
    return torch.where(missing, colour, rgb)


def impute(vae, image, mask="bottom half", method: str = "metropolis", n=8, seed=0, steps=None, frame: bool = True,
           roots=None) -> tuple:
    """-> (one row of equal tiles: the masked input then the n completions; the JSON answer; the per-pixel spread)"""
    check_model(vae)
    method = check_method(method)
    n = _int(n, "n", 1, MAX_COMPLETIONS)
    seed = check_seed(seed)
    steps = imputation.DEFAULT_STEPS if steps in (None, "") else _int(steps, "steps", 1, MAX_CHAIN_STEPS)
    if image is None:
        raise ImageError("Give an image (upload, drawing or example) to fill in.")
    pca = evaluation_of(vae).pca
    if method in ("pca", "mean") and pca is None:
        raise InputError(f"{vae.info.name} has no PCA baseline beside it (pca.safetensors), so {method!r} cannot run; "
                         "use metropolis or pseudo-gibbs.")
    c = vae.config
    x, _ = framed_tensor(vae, image, frame)
    missing, mask_name = mask_of(mask, c.image_size, seed, roots)
    missing = missing.to(x.device)
    share = float(missing.float().mean())
    if share == 0:
        raise InputError("The mask leaves every pixel seen: paint over part of the image, or pick a preset, to leave "
                         "something to fill in.")
    if share == 1:
        raise InputError("The mask covers every pixel: nothing is left to condition on. Leave part of the image "
                         "seen (with nothing seen, filling in is sampling: the Sample tab).")
    result = complete(vae, pca, x, missing, method, n, seed, steps)
    return answer(vae, x, missing, result, method, mask_name, n, seed)


def complete(vae, pca, x: torch.Tensor, missing: torch.Tensor, method: str, n: int, seed: int,
             steps: int) -> imputation.Imputation:
    """one image -> n completions by `method` (every method from the same seed)"""
    g = torch.Generator(device=x.device).manual_seed(seed)
    if method == "mean":
        return imputation.Imputation(imputation.mean_completion(pca, x, missing).expand(n, -1, -1, -1))
    if method == "pca":
        return imputation.Imputation(imputation.pca_completions(pca, x, missing, n, generator=g))
    start = imputation.pca_completions(pca, x, missing) if pca is not None and pca.variances is not None else None
    xs = x.expand(n, -1, -1, -1)
    # one thread per request even for 8 chains: many small forwards in a row gain less from a second thread than
    # they lose to the other requests and Gradio's own work on the same cores
    with torch.inference_mode(), batch_threads(n, min_batch=MAX_COMPLETIONS + 1):
        return imputation.markov_chain(vae, xs, missing, steps=steps, metropolis=method == "metropolis",
                                       generator=g, start=start, warmup=imputation.warmup_steps(steps))


def answer(vae, x, missing, result: imputation.Imputation, method: str, mask_name: str, n: int, seed: int) -> tuple:
    c = vae.config
    done = result.completions
    if not math.isfinite(float(done.sum())):
        raise InputError("The completions came out as NaN; this model cannot fill in this image.")
    scale = max(2, display_scale(c.image_size, 112))  # digits 4x (112 px tiles), faces 2x (128 px)
    tiles = torch.cat([masked_tile(x, missing), done.expand(-1, 3, -1, -1) if c.channels == 1 else done])
    row = tile_sheet(tiles, nrow=len(tiles), cell=c.image_size * scale)
    spread = done.std(0, unbiased=False).mean(0) if n > 1 else torch.zeros(c.image_size, c.image_size)
    spread_img = heatmap(spread, vmax=0.5).resize((c.image_size * display_scale(c.image_size),) * 2, Image.NEAREST)
    arrays = done.permute(0, 2, 3, 1).cpu().numpy().round(3)  # (n, H, W, C)
    read = reads(vae, torch.cat([torch.where(missing, torch.zeros_like(x), x), done]))  # one pass: the masked input, then each
    info = {
        "model": vae.info.name, "method": method, "mask": mask_name, "n": n, "seed": seed,
        "missing_pixels": int(missing.sum()), "missing_share": round(float(missing.float().mean()), 4),
        "masked_input_reads_as": read[0] if read else None,
        "reads_as": read[1:],
        "completions": [a[..., 0].tolist() if c.channels == 1 else a.tolist() for a in arrays],
    }
    if result.acceptance is not None:
        info.update(steps=result.steps, warmup_steps=imputation.warmup_steps(result.steps),
                    acceptance_rate=round(float(result.acceptance.mean()), 4))
    elif method == "pseudo-gibbs":
        info["steps"] = result.steps
    return row, info, spread_img
