"""Dataset images re-made the way people upload them -- drawn in a paint program, sketched on a transparent
canvas, photographed on paper -- so the app's framing can be measured on uploads whose label is known.

A 28 x 28 digit (light on black) is upsampled smoothly, thresholded into pen strokes, redrawn thinner or
thicker (never broken apart, loops never filled), tilted, and sized to 25-70 % of a 300-1200 px canvas,
anywhere on it. Photos add paper colour, uneven light, blur, sensor noise and JPEG. Fashion items become
product photos, a dark object on a light background (pixel = background * (1 - v) + dark * v).
"""

import io

import numpy as np
from PIL import Image, ImageFilter

KINDS = ("drawn", "drawn-thin", "drawn-thick", "offcentre-small", "transparent-sketch", "tilted",
         "photo-paper", "photo-blue-ink", "jpeg-phone")
PHOTO_KINDS = ("photo-paper", "photo-blue-ink", "jpeg-phone")  # photographed: light, noise, saved as JPEG
DATASETS = ("mnist", "fashion-mnist")
_WORK = 8  # the stroke filters work at 8x: a digit ~160 px high, strokes ~20 px wide
_PAD = 6  # dataset pixels of margin around the item: room for thick strokes and tilt


def _unit(image) -> np.ndarray:
    """uint8 or float image with 28 x 28 pixels (any singleton axes) -> (28, 28) float32 in [0, 1]"""
    a = np.asarray(image)
    a = a.reshape(28, 28) if a.size == 28 * 28 else a
    if a.shape != (28, 28):
        raise ValueError(f"as_upload takes a 28 x 28 dataset image, got shape {np.shape(image)}.")
    a = a.astype(np.float32) / (255.0 if a.dtype == np.uint8 or a.max() > 1.0 else 1.0)
    if a.max() < 0.2:
        raise ValueError("The image has no ink: pass a light item on black, as MNIST stores it.")
    return np.clip(a, 0.0, 1.0)


def _loops(mask: np.ndarray) -> int:
    """Open areas of a stroke mask (the outside and each loop of at least ~18 x 18 px), counted on a 4x coarser
    grid where any ink closes a cell: cheap, and a loop that nearly closes counts as closed."""
    h, w = mask.shape[0] // 4, mask.shape[1] // 4
    free = ~mask[:4 * h, :4 * w].reshape(h, 4, w, 4).any(axis=(1, 3))
    lab = np.where(free, np.arange(h * w).reshape(h, w), -1)
    while True:  # 8-connected ids: take the neighbours' largest id, then jump to that cell's (pointer jumping)
        p = np.pad(lab, 1, constant_values=-1)
        nb = np.max([p[i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
        new = np.where(free, nb.ravel()[np.maximum(nb, 0)].reshape(h, w), -1)
        if np.array_equal(new, lab):
            break
        lab = new
    _, counts = np.unique(lab[free], return_counts=True)
    return int((counts >= 20).sum())


def _width(mask: np.ndarray) -> float:
    """Mean stroke width in pixels: a stroke of width w and length L has area w L and 2 L edge pixels."""
    p = np.pad(mask, 1)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return 2.0 * mask.sum() / max(1, (mask & ~inner).sum())


def _skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning: the 1-px centre line of each stroke, as connected as the strokes were."""
    m = np.pad(mask, 1).astype(np.uint8)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            c = m[1:-1, 1:-1]
            n = [m[:-2, 1:-1], m[:-2, 2:], m[1:-1, 2:], m[2:, 2:], m[2:, 1:-1], m[2:, :-2], m[1:-1, :-2], m[:-2, :-2]]
            b = sum(q.astype(np.int32) for q in n)
            a = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8))
            north, east, south, west = n[0], n[2], n[4], n[6]
            side = (north * east * south == 0) & (east * south * west == 0) if step == 0 else \
                (north * east * west == 0) & (north * south * west == 0)
            gone = (c == 1) & (b >= 2) & (b <= 6) & (a == 1) & side
            if gone.any():
                c[gone] = 0
                changed = True
    return m[1:-1, 1:-1].astype(bool)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    """Max filter with a round-ish (octagonal) pen: 3 x 3 square and plus-shaped steps in turn, 2 px each."""
    m = mask.copy()
    for i in range(steps):
        p = np.pad(m, 1)
        m = m | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
        if i % 2 == 0:
            m = m | p[:-2, :-2] | p[:-2, 2:] | p[2:, :-2] | p[2:, 2:]
    return m


def _restroke(mask: np.ndarray, target: float) -> np.ndarray:
    """Redraw a stroke mask with a pen of `target` px. Thinner: the centre line, widened again (eroding the
    dataset's uneven strokes would break them). Thicker: grown by a max filter, but never so far that a loop
    (the holes of 0, 4, 6, 8, 9) closes."""
    width = _width(mask)
    if target < width:  # a blob (a filled-in loop) has a short centre line: keep it, as a person colours it in
        s = int(round(1.5 * width))
        blobs = _dilate(~_dilate(~mask, s), s)
        return _dilate(_skeleton(mask), max(1, int(round((target - 1) / 2)))) | blobs
    ref = _loops(mask)
    lo, hi = 0, int(round((target - width) / 2))
    while lo < hi:  # the most growth that keeps every loop open
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _loops(_dilate(mask, mid)) == ref else (lo, mid - 1)
    return _dilate(mask, lo)


def _canvas(kind: str, rng: np.random.Generator) -> tuple:
    """(width, height): paint canvases 300-900 px of any common shape, phone photos 4:3 up to 1200 px."""
    if kind in PHOTO_KINDS:
        long = rng.uniform(1000, 1200) if kind == "jpeg-phone" else rng.uniform(600, 1200)
        short = long * rng.choice([0.75, 0.75, 1.0])
        w, h = (long, short) if rng.random() < 0.5 else (short, long)
    else:
        w = rng.uniform(300, 900)
        h = np.clip(w * (1.0 if rng.random() < 0.4 else rng.uniform(0.6, 1.6)), 300, 900)
    return int(w), int(h)


def _light(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w) brightness in [1 - g, 1], g 15-25 %: a linear fall-off in a random direction plus a vignette."""
    y, x = np.linspace(-1, 1, h, dtype=np.float32)[:, None], np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    a, k = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.0)
    reach = abs(np.cos(a)) + abs(np.sin(a))  # the ramp's extremes are at two corners, where the vignette peaks too
    ramp = (np.float32(np.cos(a) / reach) * x + np.float32(np.sin(a) / reach) * y + 1) * np.float32(k / 2)
    v = np.float32(rng.uniform(0, 0.5))
    return 1 - np.float32(rng.uniform(0.15, 0.25) / (k + v)) * (ramp + v * (x * x + y * y) / 2)


def _coverage(v: np.ndarray, kind: str, fashion: bool, photo: bool, rng: np.random.Generator) -> Image.Image:
    """(28, 28) item -> working-size 'L' coverage (255 = full ink), restroked and tilted."""
    v = np.pad(v, _PAD)
    side = (28 + 2 * _PAD) * _WORK
    up = Image.fromarray((v * 255).astype(np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    threshold, thin, thick = rng.uniform(0.3, 0.5), rng.uniform(0.035, 0.06), rng.uniform(0.17, 0.24)
    # A tilted drawing leans 4-12 degrees; a photo of a page is rarely square to it either.
    angle = rng.uniform(4, 12) * rng.choice([-1, 1]) if kind == "tilted" else rng.uniform(-4, 4) * photo
    if not fashion:
        # Thin pens follow the centre line, which keeps a loop only while the threshold leaves it open.
        thinned = kind in ("drawn-thin", "photo-blue-ink")
        mask = np.asarray(up) > max(threshold, 0.5 if thinned else 0.0) * 255
        rows = np.flatnonzero(mask.any(axis=1))
        height = rows[-1] - rows[0] + 1
        if kind == "drawn-thin":
            mask = _restroke(mask, thin * height)
        elif kind == "drawn-thick":
            mask = _restroke(mask, thick * height)
        elif kind == "photo-blue-ink":  # a ballpoint is thinner than the dataset's strokes
            mask = _restroke(mask, 1.5 * thin * height)
        # A soft edge here becomes a smooth contour once upscaled and sharpened, not a staircase.
        up = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.GaussianBlur(1.5))
    return up.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=0)


def as_upload(image: np.ndarray, kind: str, rng: np.random.Generator, dataset: str = "mnist") -> Image.Image:
    """A 28 x 28 dataset image (uint8, or float in [0, 1]; light on black) -> the same item as a person would
    upload it: RGB (paint program), RGBA (transparent sketch canvas) or a decoded JPEG (photo kinds)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}: choose one of {', '.join(KINDS)}.")
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}: choose 'mnist' or 'fashion-mnist'.")
    fashion, photo = dataset == "fashion-mnist", kind in PHOTO_KINDS
    v = _unit(image)
    w, h = _canvas(kind, rng)
    frac = rng.uniform(0.25, 0.35) if kind == "offcentre-small" else rng.uniform(0.25, 0.70)
    work = _coverage(v, kind, fashion, photo, rng)

    # Size the item by its core (half coverage, where a stroke's edge is); the faint halo must fit as well.
    left, top, right, bottom = work.point(lambda x: 255 * (x > 128)).getbbox()
    ch, cw = bottom - top, right - left
    mx, my = int(0.03 * w), int(0.03 * h)
    # Digits by their height (a 1 stays narrow); products by their long side, as Fashion-MNIST fitted them.
    scale = frac / max(ch / h, cw / w) if fashion else min(frac * h / ch, 0.9 * w / cw)
    box = work.getbbox()
    scale = min(scale, (w - 2 * mx) / (box[2] - box[0]), (h - 2 * my) / (box[3] - box[1]))
    part = work.crop(box)
    pw, ph = max(1, round(part.width * scale)), max(1, round(part.height * scale))
    c = np.asarray(part.resize((pw, ph), Image.Resampling.LANCZOS), dtype=np.float32) / 255
    if not fashion:  # sharpen the upscaled soft edge back into a pen's anti-aliased edge (~1.2 px, photos ~2.5)
        gain = max(1.0, 2.5 * scale / (2.5 if photo else 1.2))
        c = np.clip((c - 0.5) * gain + 0.5, 0, 1)

    # Anywhere on the canvas; offcentre-small hugs a corner.
    fx, fy = rng.random(), rng.random()
    if kind == "offcentre-small":
        fx, fy = (np.where(rng.random(2) < 0.5, 0, 0.7) + 0.3 * np.array([fx, fy]))
    x0, y0 = mx + int(fx * max(0, w - 2 * mx - pw)), my + int(fy * max(0, h - 2 * my - ph))
    patch = Image.fromarray(np.round(c * 255).astype(np.uint8))
    cover = Image.new("L", (w, h), 0)
    if kind == "transparent-sketch":  # Gradio's Sketchpad: a black pen on a transparent layer
        cover.paste(patch, (x0, y0))
        return Image.merge("RGBA", (*[Image.new("L", (w, h), 0)] * 3, cover))

    if fashion:
        ink = np.full(3, rng.uniform(10, 60)) + rng.uniform(-4, 4, 3)
    elif kind == "photo-blue-ink" or (kind == "jpeg-phone" and rng.random() < 0.5):
        ink = np.array([20, 30, 140]) + rng.uniform(-12, 12, 3) * np.array([1, 1, 2.5])
    elif photo:  # pencil or felt pen, a little warm
        ink = rng.uniform(25, 75) + np.array([4, 2, 0]) + rng.uniform(-3, 3, 3)
    else:
        ink = rng.uniform(0, 25, 3) if rng.random() < 0.3 else np.zeros(3)
    if photo:
        paper = np.array([235, 228, 210]) + rng.uniform(-10, 10) + rng.uniform(-4, 4, 3) if rng.random() < 0.7 else \
            np.full(3, rng.uniform(232, 250))
        blur = rng.uniform(0.6, 1.5) * max(1.0, w / 800)  # out of focus a little, more at higher resolution
        density = rng.uniform(0.85, 1.0)  # ink lets a little paper show through
        patch = patch.filter(ImageFilter.GaussianBlur(blur)).point(lambda x: round(x * density))
    else:
        paper = np.full(3, 255.0) if rng.random() < 0.8 else np.full(3, rng.uniform(240, 255))
    cover.paste(patch, (x0, y0))
    colour = lambda rgb: Image.new("RGB", (w, h), tuple(int(x) for x in np.clip(np.round(rgb), 0, 255)))  # noqa
    out = Image.composite(colour(ink), colour(paper), cover)  # paper (1 - cover) + ink cover
    if not photo:
        return out
    # Light falls on page and ink alike; a sensor's noise, after a phone's processing, is mostly in luma.
    rgb = np.asarray(out, dtype=np.float32) * _light(w, h, rng)[..., None]
    rgb += np.float32(rng.uniform(3, 8)) * rng.standard_normal((h, w, 1), dtype=np.float32)
    out = Image.fromarray((np.clip(rgb, 0, 255, out=rgb) + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=int(rng.integers(70, 86) if kind == "jpeg-phone" else rng.integers(80, 93)))
    decoded = Image.open(io.BytesIO(buf.getvalue()))
    decoded.load()
    return decoded


def corpus(images, labels, kinds=KINDS, seed: int = 0, per_image: int = 1, dataset: str = "mnist") -> list:
    """(N, 28, 28) images and N labels -> [(PIL image, label, kind)], image by image, then copy, then kind.
    Each entry has its own random stream from (seed, image, copy, kind), so a subset re-makes identically."""
    out = []
    for i, (image, label) in enumerate(zip(images, labels)):
        for copy in range(per_image):
            for kind in kinds:
                rng = np.random.default_rng([seed, i, copy, KINDS.index(kind)])
                out.append((as_upload(image, kind, rng, dataset), label, kind))
    return out


def to_bytes(img: Image.Image, kind: str) -> bytes:
    """The file a person would upload: JPEG for photographed kinds (the decoded JPEG's own quantisation tables,
    so no second round of loss), PNG for everything drawn on screen."""
    buf = io.BytesIO()
    if kind not in PHOTO_KINDS:
        img.save(buf, "PNG")
    elif getattr(img, "format", None) == "JPEG":
        img.save(buf, "JPEG", quality="keep")
    else:
        img.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()
