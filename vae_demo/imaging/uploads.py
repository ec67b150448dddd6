"""Images in: any upload (a file, a sketch, an array) -> the tensor a model takes. The pictures the app answers
with are made in imaging/render.py.

Every rejection raises ImageError with a sentence meant for the person who uploaded the file.
"""

import io
import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from vae_demo.errors import DemoError

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # files larger than this are refused before decoding
MAX_PIXELS = 40_000_000  # width * height read from the header, checked before decoding the pixels
# PIL's own bomb guard raises at 2x its limit (and warns above it); ours refuses first, PIL's stays as a backstop.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]
_ORIENTATION = 0x0112  # EXIF tag: how the camera was held
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
_HIGH_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageError(DemoError, ValueError):
    """An input image that cannot be used, with a message for a person."""


def open_image(src: ImageInput, max_side: Optional[int] = None) -> Image.Image:
    """A path, bytes, PIL image or array -> a fully decoded PIL image (first frame, EXIF orientation applied).

    With `max_side`, a large image is shrunk by a whole factor (averaging pixel blocks; JPEG decodes at 1/2..1/8
    scale directly) while its long side stays >= max_side, so a 40-megapixel upload costs megabytes, not gigabytes.
    """
    img = check_image(src)
    try:
        if img.tell() != 0:  # animated GIF/WebP/PNG, multi-page TIFF: the first frame (files open on it)
            img.seek(0)
        orientation = img.getexif().get(_ORIENTATION)
        if max_side and img.format == "JPEG":
            img.draft(None, (max_side, max_side))
        img.load()
        if max_side:
            img = _shrink(img, max_side)
        if orientation in _TRANSPOSE:
            img = img.transpose(_TRANSPOSE[orientation])
    except MemoryError:
        raise ImageError("The image is too large to decode on this server.") from None
    except Exception:  # truncated data, broken chunks, bad EXIF: whatever a hostile file makes PIL raise
        raise ImageError("The image file is truncated or corrupt and could not be decoded.") from None
    return img


def check_image(src: ImageInput) -> Image.Image:
    """The checks made before any pixel is decoded: a path, bytes, PIL image or array -> a PIL image opened on its
    header only (not loaded); ImageError with a sentence for an empty or oversized file, a file that is not an image,
    or too many pixels."""
    if src is None:
        raise ImageError("No image was given. Upload an image or pick an example.")
    if isinstance(src, np.ndarray):
        img = _from_array(src)
    elif isinstance(src, Image.Image):
        img = src
    else:
        data = bytes(src) if isinstance(src, (bytes, bytearray, memoryview)) else _read_file(src)
        if len(data) == 0:
            raise ImageError("The file is empty (0 bytes).")
        if len(data) > MAX_UPLOAD_BYTES:
            raise ImageError(f"The file is larger than the {MAX_UPLOAD_BYTES // 2**20} MB limit.")
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise ImageError(f"The image has too many pixels, more than the {MAX_PIXELS // 1_000_000} megapixel limit.") from None
        except Exception:  # PIL raises many types on hostile headers; none of them is the uploader's to read
            raise ImageError("This file is not an image this app can read (PNG, JPEG, GIF, WebP, BMP or TIFF).") from None
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"The image is {w}x{h}, more than the {MAX_PIXELS // 1_000_000} megapixel limit.")
    if w < 1 or h < 1:
        raise ImageError("The image has no pixels.")
    return img


def _read_file(src) -> bytes:
    path = Path(src)
    if not path.is_file():  # also False for devices, pipes and names the OS cannot represent
        raise ImageError(f"The image file {path.name!r} could not be found.")
    try:
        if path.stat().st_size > MAX_UPLOAD_BYTES:
            raise ImageError(f"The file is larger than the {MAX_UPLOAD_BYTES // 2**20} MB limit.")
        with open(path, "rb") as f:
            return f.read(MAX_UPLOAD_BYTES + 1)  # capped: /proc-like files report size 0
    except OSError:
        raise ImageError(f"The image file {path.name!r} could not be read.") from None


def confined_path(path: Union[str, Path], roots: Sequence[Union[str, Path]]) -> Path:
    """A file path that must lie inside one of `roots` once symlinks and '..' are resolved -> the resolved path.

    For servers: an API client names a path, and only uploads (and shipped examples) may be read. A path
    outside gets the same answer whether it exists or not.
    """
    outside = ImageError("This server reads only uploaded images; send the image file itself, not a path.")
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        raise outside from None
    for root in roots:
        try:
            if real.is_relative_to(Path(root).resolve()):
                return real
        except (OSError, RuntimeError, ValueError):
            continue
    raise outside


def image_arg(image, roots=None):
    """What Gradio or a caller passes for an image (path, FileData dict, a sketchpad's {"background", "layers",
    "composite"} dict, PIL, array) -> what images.open_image takes.

    A dict's "path" is the only field read ("url" is never fetched), and with `roots` a path must lie inside
    one of them (Gradio's upload folder, the bundled examples): an API client cannot make us read other files.
    """
    if isinstance(image, dict) and "path" not in image and SKETCH_KEYS & image.keys():
        return sketch_image(image, roots)
    if isinstance(image, dict):
        image = image.get("path")
        if not image:
            raise ImageError("No image was given. Upload an image or pick an example.")
    if roots is not None and isinstance(image, (str, os.PathLike)):
        image = confined_path(image, roots)
    return image


SKETCH_KEYS = frozenset({"background", "layers", "composite"})
MAX_SKETCH_LAYERS = 8


def sketch_image(value: dict, roots=None) -> Image.Image:
    """A sketchpad's value -> one RGBA image: its composite, or else its background with its layers drawn over it.
    Each part may be a FileData dict, a path, a PIL image or an array; a malformed dict gets a sentence, not a trace."""
    malformed = ImageError("A sketch must be a dict with 'composite' (an image) or 'background' and 'layers' "
                           "(a list of images), as Gradio's Sketchpad sends it.")
    layers = value.get("layers") or []
    if not isinstance(layers, (list, tuple)):
        raise malformed
    if len(layers) > MAX_SKETCH_LAYERS:  # each is decoded whole: the count bounds the memory one call can take
        raise ImageError(f"A sketch may have at most {MAX_SKETCH_LAYERS} layers; this one has {len(layers)}.")

    def part(p):
        if p is None:
            return None
        if isinstance(p, dict) and not p.get("path"):
            raise malformed
        if not isinstance(p, (dict, str, os.PathLike, Image.Image, np.ndarray)):
            raise malformed
        return open_image(image_arg(p, roots)).convert("RGBA")

    if value.get("composite") is not None:
        return part(value["composite"])
    parts = [part(p) for p in [value.get("background"), *layers]]
    parts = [p for p in parts if p is not None]
    if not parts:
        raise ImageError("The sketch is empty: draw a digit first.")
    canvas = Image.new("RGBA", parts[0].size, (0, 0, 0, 0))
    for p in parts:
        canvas.alpha_composite(p if p.size == canvas.size else p.crop((0, 0, *canvas.size)))
    return canvas


def _shrink(img: Image.Image, max_side: int) -> Image.Image:
    """Divide both sides by the largest whole factor that keeps the long side >= max_side (block averages)."""
    k = min(max(img.size) // max(1, max_side), min(img.size))
    if k < 2:
        return img
    if img.mode in ("P", "1") or img.mode.startswith("I;16") or "transparency" in img.info:
        # averaging palette indices or bits means nothing; a transparent colour key would be lost
        img = img.convert("L" if img.mode == "1" else "I" if img.mode.startswith("I;16") else "RGBA")
    return img.reduce(k)


def _from_array(arr: np.ndarray) -> Image.Image:
    if arr.dtype.kind not in "biuf":
        raise ImageError(f"An image array must hold numbers; got dtype {arr.dtype}.")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise ImageError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}.")
    if arr.shape[0] * arr.shape[1] > MAX_PIXELS:
        raise ImageError(f"The image has more than {MAX_PIXELS // 1_000_000} megapixels.")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError("The image has no pixels.")
    if arr.dtype != np.uint8:
        if not np.isfinite(arr).all():
            raise ImageError("The image contains NaN or infinite values.")
        hi = 1.0 if arr.max(initial=0) <= 1.0 else 255.0  # floats in [0, 1], anything else on the 0..255 scale
        arr = (np.clip(arr, 0, hi).astype(np.float32) * (255.0 / hi)).round().astype(np.uint8)
    return Image.fromarray(arr)


def to_grey_or_rgb(img: Image.Image, channels: int, background: Union[str, tuple] = "auto") -> Image.Image:
    """Any mode (16-bit, float, CMYK, LAB, palette, alpha) -> "L" or "RGB", transparency composited on `background`.

    background="auto" picks black or white, whichever contrasts with the visible pixels: a black drawing on a
    transparent canvas stays visible instead of vanishing into a black background.
    """
    if img.mode in _HIGH_BIT:  # stretch the used range to 0..255 (16-bit scans, float maps; NaN -> black)
        arr = np.asarray(img, dtype=np.float32)
        finite = np.isfinite(arr)
        lo, hi = (float(arr[finite].min()), float(arr[finite].max())) if finite.any() else (0.0, 1.0)
        arr = np.where(finite, arr - lo, 0.0) * (255.0 / (hi - lo) if hi > lo else 0.0)
        img = Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), "L")
    # grey with alpha (a pen drawing) asked for as grey is flattened on its one channel; any other alpha in RGB
    grey_alpha = img.mode == "LA" and channels == 1 and background == "auto" and "transparency" not in img.info
    if not grey_alpha and (img.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA"):
        flat = "L" if img.mode == "LA" else "RGB"
        alpha = img.getchannel("A")
        if background == "auto":
            weight = np.asarray(alpha, dtype=np.float32)
            grey = np.asarray(img.convert("L"), dtype=np.float32)
            ink = float((grey * weight).sum() / weight.sum()) if weight.sum() > 0 else 255.0
            background = (255, 255, 255) if ink < 128 else (0, 0, 0)
        base = Image.new(flat, img.size, background[0] if flat == "L" else tuple(background))
        base.paste(img.convert(flat), mask=alpha)
        img = base
    target = "L" if channels == 1 else "RGB"
    if img.mode == "LAB":  # PIL converts LAB only through a colour profile
        from PIL import ImageCms

        lab, srgb = ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB")
        img = ImageCms.applyTransform(img, ImageCms.buildTransform(lab, srgb, "LAB", "RGB"))
    try:
        return img.convert(target)
    except ValueError:
        raise ImageError(f"Images in the {img.mode} colour mode are not supported; save it as an RGB PNG or JPEG.") from None


def equal_channels(img: Image.Image) -> bool:
    """An RGB or RGBA image whose red, green and blue are the same everywhere (a black pen on white, a grey scan
    saved as colour): it converts to L or LA exactly, and one channel carries all it holds."""
    if img.mode not in ("RGB", "RGBA"):
        return False
    r = img.getchannel("R").tobytes()
    return r == img.getchannel("G").tobytes() and r == img.getchannel("B").tobytes()


def prepare(src: ImageInput, image_size: int, channels: int, invert: Union[bool, str] = "auto") -> torch.Tensor:
    """Any image -> (1, C, S, S) float32 in [0, 1]: padded to a square, resized, and for
    grayscale models trained on light-on-dark data, inverted when the upload is dark-on-light
    (invert="auto" looks at the border: MNIST digits are white on black, most drawings are not)."""
    img = to_grey_or_rgb(open_image(src, max_side=4 * image_size), channels)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if invert == "auto":
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        invert = channels == 1 and float(border.mean()) > 0.5
    if invert:
        arr = 1.0 - arr
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)  # (C, H, W)
    h, w = t.shape[1:]
    if h != w:  # pad to a square with the border colour so the content is not stretched
        from torchvision.transforms.v2 import functional as TF

        side = max(h, w)
        fill = float(torch.cat([t[:, 0], t[:, -1], t[:, :, 0], t[:, :, -1]], dim=1).median())
        top, left = (side - h) // 2, (side - w) // 2
        t = TF.pad(t, [left, top, side - w - left, side - h - top], fill=fill)  # [left, top, right, bottom]
    if t.shape[1] > image_size:  # shrinking: average whole pixel areas (no aliasing)
        t = torch.nn.functional.interpolate(t[None], size=(image_size, image_size), mode="area")[0]
    elif t.shape[1] < image_size:
        t = torch.nn.functional.interpolate(t[None], size=(image_size, image_size), mode="bilinear", align_corners=False)[0]
    return t.clamp(0, 1)[None].contiguous()


MAX_SIZE_LIMIT = 2048  # the longest side a photo model may be asked to work at


def fit_size(height: int, width: int, max_size: int = 512, multiple: int = 8) -> tuple:
    """An image's height, width -> (H, W): same aspect ratio, long side <= max_size, both multiples of `multiple`."""
    s = min(1.0, max_size / max(height, width))
    return tuple(max(multiple, int(side * s / multiple + 0.5) * multiple) for side in (height, width))


def prepare_photo(src: ImageInput, max_size: int = 512, multiple: int = 8, size: Optional[tuple] = None) -> torch.Tensor:
    """Any image -> (1, 3, H, W) float32 in [0, 1], aspect ratio kept, (H, W) = fit_size(...);
    or, with size=(H, W), scaled to cover that size and centre-cropped (to pair two images of different shapes)."""
    img = to_grey_or_rgb(open_image(src), 3, background=(255, 255, 255))  # transparent photos/logos sit on white
    if size is None:
        h, w = fit_size(img.height, img.width, max_size, multiple)
        if (w, h) != img.size:
            img = img.resize((w, h), Image.LANCZOS, reducing_gap=3.0)
    else:
        h, w = (int(v) for v in size)
        if min(h, w) < multiple or h % multiple or w % multiple or max(h, w) > MAX_SIZE_LIMIT:
            raise ValueError(f"size must be two multiples of {multiple} up to {MAX_SIZE_LIMIT}; got {size}.")
        img = ImageOps.fit(img, (w, h), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> float:
    """(B, C, H, W) or (C, H, W) pair in [0, data_range] -> mean SSIM, Gaussian window 11 / sigma 1.5 per channel
    ('valid' region, Wang et al. 2004 constants); 1 for identical images, symmetric, lower as they differ.

    Ours, not a library's: none that the app ships has SSIM (torchvision, diffusers, PIL, numpy), and this runs on
    the model's device in 20 lines; tests/test_images.py checks it against scikit-image's to 1e-4."""
    if x.shape != y.shape:
        raise ValueError(f"ssim needs two images of the same shape; got {tuple(x.shape)} and {tuple(y.shape)}.")
    x, y = (t[None] if t.dim() == 3 else t for t in (x, y))
    x, y = x.double(), y.to(x.device).double()  # float64: means of squares minus squared means cancel badly
    c = x.shape[1]
    k = min(11, *x.shape[2:])
    k -= 1 - k % 2  # an odd window that fits the image
    g = torch.exp(-((torch.arange(k, dtype=torch.float64, device=x.device) - k // 2) ** 2) / (2 * 1.5**2))
    g = g / g.sum()

    def blur(t):  # separable Gaussian, one channel at a time (groups=c)
        t = F.conv2d(t, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
        return F.conv2d(t, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())
