"""Frame an upload the way the training data was framed, so a digit a person draws or photographs reaches the
model looking like a dataset digit.

MNIST (LeCun et al.): each digit's bounding box was fitted into 20 × 20 px (aspect kept, anti-aliased) and placed
in 28 × 28 with its centre of mass at the centre. Fashion-MNIST (Xiao et al. 2017): the product photo was trimmed,
its long side fitted to 28 px, centred, and negated (a dark product on white becomes light on black).

Finding the ink: the page's light is estimated by a robust smooth (quadratic) fit to the bright part of each block
of the image, the image is divided by it (paper colour, shadows and vignetting go away), ink is what absorbs light
in any channel (blue ballpoint as well as pencil), and Otsu's threshold separates it from the paper's noise.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vae_demo.imaging.uploads import ImageError, ImageInput, equal_channels, open_image, to_grey_or_rgb

FRAMINGS = ("none", "mnist", "fashion", "faces")
# The faces data (vae_demo/datasets/faces.py): an Avataaars canvas of 264 x 280 whose view box (x, y, w, h) is drawn
AVATAAARS_CANVAS, FACES_VIEWBOX = (264, 280), (32, 24, 200, 200)
WORK_SIDE = 192  # the image is analysed at this long side: enough for strokes, cheap to filter
MNIST_BOX = 20  # the digit's bounding box is fitted into 20 x 20 of the 28 x 28 frame
MIN_CONTRAST = 0.12  # ink must absorb at least this share of the paper's light, else the image is blank
NO_DRAWING = ("No drawing was found: the image is blank (or nearly one flat colour). Draw or upload a dark digit on a "
              "light background, or a light one on a dark background.")


class SceneError(ImageError):
    """The upload is a picture of a scene, not of one drawing or product on a plain background."""


@dataclass
class Framed:
    image: torch.Tensor  # (1, C, S, S) in [0, 1]: light ink on black as MNIST stores it; faces in colour
    box: tuple  # (left, top, right, bottom) of the ink in the decoded upload's pixels (after open_image's whole-factor shrink)
    inverted: bool  # True when the upload was dark ink on a light page


def frame(src: ImageInput, framing: str, image_size: int = 28) -> Framed:
    """Any image -> the model's input framed like its training data (see the module's docstring).

    Raises ImageError with a sentence for the uploader when there is no ink to find (a blank canvas) or the ink
    fills the picture to its borders (a photo of a scene, not of a digit or a product on a plain background)."""
    if framing not in FRAMINGS[1:]:
        raise ValueError(f"framing must be one of {FRAMINGS[1:]}, got {framing!r}.")
    if framing == "faces":
        return frame_face(src, image_size)
    img = open_image(src, max_side=WORK_SIDE)
    framed = _already_framed(img, framing, image_size)
    if framed is not None:
        return framed
    grey = img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # one channel is enough: 3x less work
    if not grey and equal_channels(img):  # colour in name only (the page's black pen): the same ink on one channel
        img, grey = img.convert("LA" if img.mode == "RGBA" else "L"), True
    pixels = _work_image(to_grey_or_rgb(img, 1 if grey else 3))
    if pixels.ndim == 3 and (pixels[..., :1] == pixels[..., 1:]).all():
        pixels = pixels[..., 0]  # grey once flattened (a grey palette, a colour hidden under alpha 0): the same ink
    scale = max(img.size) / max(pixels.shape[:2])
    arr = pixels.astype(np.float32).reshape(*pixels.shape[:2], -1) / 255.0  # (H, W, 1 or 3)
    inverted = _light_background(arr)
    if not inverted:  # light ink on a dark page (MNIST itself, chalk on a board): make it dark on light
        arr = 1.0 - arr
    ink = _ink(arr, framing)
    mask, level = _ink_mask(ink)
    left, top, right, bottom = _box(mask)
    enlarged = max(pixels.shape[:2]) / max(img.size)  # > 1 for a small upload (up to 4x)
    if max(right - left, bottom - top) < 3 * max(1.0, enlarged):  # a speck in the upload's own pixels, not a drawing
        raise ImageError("No drawing was found: only a speck of a few pixels differs from the background. Draw the "
                         "digit larger.")
    if max(img.size) > 2 * image_size and _fills_the_frame(mask):
        raise SceneError("Your picture is full to its borders, like a photo of a scene, not one "
                         f"{'digit' if framing == 'mnist' else 'product'} on a plain background, so it could not be framed "
                         "like the training data.")
    crop = ink[top:bottom, left:right]
    if framing == "mnist":
        # strokes at full strength, as MNIST's are; what is fainter than half the threshold is paper noise
        lo, hi = 0.5 * level, max(float(np.quantile(crop[crop > level], 0.9)) if (crop > level).any() else 1.0, level + 1e-3)
        crop = np.clip((crop - lo) / (hi - lo), 0.0, 1.0)
        out = _fit_and_centre_by_mass(crop, MNIST_BOX * image_size / 28, image_size)
    else:
        # keep the product's grey levels, stretched so its darkest part is at full strength (95 % of Fashion-MNIST's
        # items reach 1.0: a camera's black is never black); the paper's noise floor goes
        lo = min(0.5 * level, float(np.quantile(ink[~mask], 0.95))) if (~mask).any() else 0.0
        hi = max(float(np.quantile(crop, 0.995)), lo + 1e-3)
        crop = np.clip((crop - lo) / (hi - lo), 0.0, 1.0)
        out = _fit_and_centre(crop, image_size, image_size)
    box = tuple(int(round(v * scale)) for v in (left, top, right, bottom))
    return Framed(image=torch.from_numpy(out)[None, None].contiguous(), box=box, inverted=inverted)


def _already_framed(img: Image.Image, framing: str, side: int):
    """A grey side x side image framed as the dataset's are (light on black; for MNIST the ink's box 19-21 px on its
    long side and its centre of mass within a pixel of the centre) -> Framed as it is; anything else -> None.
    Framing it again would only resample it (the bundled examples, a client sending test digits)."""
    if img.size != (side, side) or img.mode not in ("L", "1"):
        return None
    x = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    if np.median(border) > 0.05 or x.max() < 0.5:
        return None  # a light page or faint ink: let the full framing decide
    rows, cols = np.flatnonzero(x.max(1) > 0.1), np.flatnonzero(x.max(0) > 0.1)
    long = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    if framing == "mnist":  # in its 20 x 20 box, off the border, centred by mass
        box = round(MNIST_BOX * side / 28)
        if border.max() > 0.2 or not box - 1 <= long <= box + 1 or max(abs(c - side / 2) for c in centre_of_mass(x)) > 1:
            return None
    elif long < side - 2:  # Fashion-MNIST: the long side fills the frame
        return None
    return Framed(image=torch.from_numpy(x)[None, None].contiguous(), box=(0, 0, side, side), inverted=False)


def _work_image(img: Image.Image) -> np.ndarray:
    """PIL L or RGB -> (H, W) or (H, W, 3) uint8 with the long side WORK_SIDE; a small image (a 28-px digit) is
    enlarged 4 times at most, so the filters below see strokes a few pixels wide whatever the upload's size."""
    s = min(WORK_SIDE, 4 * max(img.size)) / max(img.size)
    if abs(s - 1) > 1e-3:
        size = (max(1, round(img.width * s)), max(1, round(img.height * s)))
        img = img.resize(size, Image.BILINEAR if s > 1 else Image.BOX)
    return np.asarray(img)


def _light_background(arr: np.ndarray) -> bool:
    """Is the page light (dark ink on paper)? Decided by the image's border, where the page shows."""
    border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]).mean(axis=-1)
    return float(np.median(border)) > 0.5


def _ink(arr: np.ndarray, framing: str) -> np.ndarray:
    """(H, W, 3) dark ink on a light page -> (H, W) share of the page's light the ink absorbs, 0 (paper) .. 1."""
    light = _page_light(arr)
    absorbed = np.clip(1.0 - arr / np.maximum(light, 1e-3), 0.0, 1.0)
    if absorbed.shape[2] == 1:
        return absorbed[:, :, 0]
    if framing == "fashion":  # a product's grey levels, as Fashion-MNIST's greyscale conversion saw them
        return absorbed @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return absorbed.max(axis=2)  # a pen of any colour is ink


def _page_light(arr: np.ndarray, block: int = 12) -> np.ndarray:
    """(H, W, C) -> (H, W, C) the light falling on the page: per channel, a quadratic surface fitted to the bright
    part (80th percentile) of each block, refitted without the blocks that are much darker than the fit (ink)."""
    h, w, c = arr.shape
    bh, bw, sh, sw = (h // block, w // block, block, block) if h >= block and w >= block else (1, 1, h, w)
    blocks = arr[: bh * sh, : bw * sw].reshape(bh, sh, bw, sw, c).transpose(0, 2, 4, 1, 3).reshape(bh * bw, c, sh * sw)
    k = int(0.8 * (sh * sw - 1))
    bright = np.partition(blocks, k, axis=2)[:, :, k]  # (bh * bw, C)
    by, bx = (np.arange(bh) + 0.5) / bh - 0.5, (np.arange(bw) + 0.5) / bw - 0.5
    yy, xx = np.meshgrid(by, bx, indexing="ij")
    design = np.stack([np.ones_like(xx), xx, yy, xx * yy, xx**2, yy**2], -1).reshape(-1, 6)
    ring = np.zeros((bh, bw), bool)
    ring[[0, -1]] = ring[:, [0, -1]] = True
    keep = ring.reshape(-1)  # the page shows at the border first; blocks that agree with the fit join it
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(design[keep], bright[keep], rcond=None)
        keep_next = (bright > 0.85 * (design @ coef)).all(axis=1)
        if keep_next.sum() < 6 or (keep_next == keep).all():
            break
        keep = keep_next
    y = ((np.arange(h) + 0.5) / h - 0.5)[:, None, None]
    x = ((np.arange(w) + 0.5) / w - 0.5)[None, :, None]
    full = coef[0] + coef[1] * x + coef[2] * y + coef[3] * x * y + coef[4] * x**2 + coef[5] * y**2  # (H, W, C)
    return np.clip(full, 1e-3, None).astype(np.float32)


def _otsu(values: np.ndarray, bins: int = 128) -> tuple:
    """values in [0, 1] -> (threshold, between-class separation: mean of the upper class minus the lower's)"""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist.astype(np.float64) / max(1, hist.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    w0, m = np.cumsum(p), np.cumsum(p * centres)
    w1 = 1.0 - w0
    between = (m[-1] * w0 - m) ** 2 / np.maximum(w0 * w1, 1e-12)
    k = int(np.argmax(between[:-1]))
    mu0, mu1 = m[k] / max(w0[k], 1e-12), (m[-1] - m[k]) / max(w1[k], 1e-12)
    return float(edges[k + 1]), float(mu1 - mu0)


def _ink_mask(ink: np.ndarray) -> tuple:
    """(H, W) ink -> (boolean mask of the ink with paper specks removed, the threshold used); ImageError if blank."""
    level, separation = _otsu(ink)
    level = max(level, MIN_CONTRAST / 2)
    if float(np.quantile(ink, 0.999)) < MIN_CONTRAST or separation < MIN_CONTRAST:
        raise ImageError(NO_DRAWING)
    mask = torch.from_numpy(ink > level)[None, None].float()
    # specks of noise go: a pixel stays with at least 2 of its 8 neighbours inked (any line, even 1 px wide, keeps them)
    neighbours = F.avg_pool2d(mask, 3, 1, 1, count_include_pad=True) * 9 - mask
    clean = ((mask > 0) & (neighbours >= 2))[0, 0].numpy()
    if clean.sum() < 4:
        raise ImageError("No drawing was found: only a few specks differ from the background. Draw the digit larger or darker.")
    return clean, level


def _fills_the_frame(mask: np.ndarray) -> bool:
    """Ink on all four borders, along a quarter of them or over 40 % of the picture: a scene, not one object on a
    plain page (a digit or a product may touch a border or two; a cropped one may touch all four, but only here and there)."""
    sides = [float(s.mean()) for s in (mask[0], mask[-1], mask[:, 0], mask[:, -1])]
    return min(sides) > 0.02 and (sum(sides) / 4 > 0.25 or float(mask.mean()) > 0.4)


def _box(mask: np.ndarray) -> tuple:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _resize_to_fit(crop: np.ndarray, box: float) -> np.ndarray:
    """(h, w) -> the same aspect ratio with the long side `box` px, area-averaged (anti-aliased)"""
    h, w = crop.shape
    s = box / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    t = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None, None]
    mode = dict(mode="area") if s < 1 else dict(mode="bilinear", align_corners=False)
    return F.interpolate(t, size=(size[1], size[0]), **mode)[0, 0].clamp(0, 1).numpy()


def _fit_and_centre_by_mass(crop: np.ndarray, box: float, side: int) -> np.ndarray:
    """MNIST: fit into box x box, then translate so the centre of mass lies at the frame's centre."""
    digit = _resize_to_fit(crop, box)
    h, w = digit.shape
    cy, cx = centre_of_mass(digit) or (h / 2, w / 2)
    top = int(np.clip(round(side / 2 - cy), 0, side - h))
    left = int(np.clip(round(side / 2 - cx), 0, side - w))
    out = np.zeros((side, side), np.float32)
    out[top : top + h, left : left + w] = digit
    return out


def _fit_and_centre(crop: np.ndarray, box: float, side: int) -> np.ndarray:
    """Fashion-MNIST: long side to the frame's size, centred."""
    item = _resize_to_fit(crop, box)
    h, w = item.shape
    out = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = item
    return out


def centre_of_mass(x: np.ndarray) -> Optional[tuple]:
    """(H, W) non-negative -> (row, col) of its centre of mass in pixel-centre coordinates, None for an empty image."""
    m = float(x.sum())
    if m <= 0:
        return None
    h, w = x.shape
    return float(x.sum(axis=1) @ (np.arange(h) + 0.5)) / m, float(x.sum(axis=0) @ (np.arange(w) + 0.5)) / m


def frame_face(src: ImageInput, image_size: int = 64) -> Framed:
    """A face picture -> (1, 3, S, S) as the faces data was made: what is transparent on white; a picture with the
    Avataaars canvas's own proportions (264 x 280, as python-avatars and the Avataaars site export) cropped to the data's
    view box; anything else padded to a square with white, centred; then fitted to S x S by area."""
    img = to_grey_or_rgb(open_image(src, max_side=4 * WORK_SIDE), 3, background=(255, 255, 255))
    w, h = img.size
    box = (0, 0, w, h)
    if abs(w * AVATAAARS_CANVAS[1] - h * AVATAAARS_CANVAS[0]) <= max(w, h) // 50:  # the canvas's shape, within 2 %
        x, y, bw, bh = FACES_VIEWBOX
        sx, sy = w / AVATAAARS_CANVAS[0], h / AVATAAARS_CANVAS[1]
        box = (round(x * sx), round(y * sy), round((x + bw) * sx), round((y + bh) * sy))
        img = img.crop(box)
    side = max(img.size)
    square = img
    if img.width != img.height:
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(square).transpose(2, 0, 1)))[None].float().div_(255.0)
    if side != image_size:
        mode = "area" if side > image_size else "bilinear"
        t = torch.nn.functional.interpolate(t, size=(image_size, image_size), mode=mode,
                                            **({} if mode == "area" else {"align_corners": False})).clamp_(0, 1)
    return Framed(image=t, box=box, inverted=False)
