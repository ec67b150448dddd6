import io

import numpy as np
import pytest
import torch
from PIL import Image

from vae_demo.images import MAX_PIXELS, ImageError, grid, heatmap, open_image, prepare, save_gif, to_pil


def png_bytes(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def digit(size=28, fg=255, bg=0) -> Image.Image:
    img = Image.new("L", (size, size), bg)
    img.paste(fg, (size // 3, size // 4, 2 * size // 3, 3 * size // 4))
    return img


def test_prepare_gives_model_shape_and_range():
    t = prepare(png_bytes(digit(100)), 28, 1)
    assert t.shape == (1, 1, 28, 28) and t.dtype == torch.float32
    assert 0 <= t.min() and t.max() <= 1 and t.max() > 0.9
    assert prepare(png_bytes(digit(100).convert("RGB")), 16, 3).shape == (1, 3, 16, 16)


def test_dark_on_light_drawings_are_inverted_for_grey_models():
    light = prepare(png_bytes(digit(fg=0, bg=255)), 28, 1)
    dark = prepare(png_bytes(digit()), 28, 1)
    assert torch.allclose(light, dark, atol=1e-6)
    assert light[0, 0, 0, 0] == 0  # background became black, like MNIST


def test_non_square_images_keep_their_aspect_ratio():
    wide = Image.new("L", (200, 50), 0)
    wide.paste(255, (90, 10, 110, 40))
    t = prepare(png_bytes(wide), 28, 1)[0, 0]
    rows = (t > 0.5).any(1).nonzero().flatten()
    assert 1 <= len(rows) <= 8  # a 30-px-high bar in a 200-px square is ~4 px after resizing, not stretched


@pytest.mark.parametrize("mode", ["RGBA", "P", "CMYK", "I;16", "F", "LA", "1"])
def test_unusual_modes_are_converted(mode):
    img = digit(40).convert("RGB").convert(mode) if mode not in ("I;16", "F") else Image.fromarray(
        (np.asarray(digit(40), dtype=np.float32) * (257 if mode == "I;16" else 1 / 255)).astype(np.uint16 if mode == "I;16" else np.float32))
    fmt = "TIFF" if mode in ("I;16", "F", "CMYK") else "PNG"
    t = prepare(png_bytes(img, fmt), 28, 1)
    assert t.shape == (1, 1, 28, 28) and t.max() > 0.5 and t.min() < 0.1


def test_animated_gif_uses_first_frame():
    frames = [digit(28), Image.new("L", (28, 28), 0)]
    data = png_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert prepare(data, 28, 1).max() > 0.9


@pytest.mark.parametrize("data, words", [(b"", "empty"), (b"hello, not an image", "not an image"),
                                         (png_bytes(digit())[:60], "truncated|not an image"), (None, "No image")])
def test_bad_inputs_raise_readable_errors(data, words):
    with pytest.raises(ImageError, match=words):
        prepare(data, 28, 1)


def test_decompression_bomb_is_refused_before_decoding():
    side = int(MAX_PIXELS**0.5) + 100
    data = png_bytes(Image.new("1", (side, side)), optimize=True)
    assert len(data) < 2_000_000
    with pytest.raises(ImageError, match="megapixel"):
        open_image(data)


def test_exif_orientation_is_respected():
    img = Image.new("L", (40, 20), 0)
    img.paste(255, (0, 0, 10, 20))  # bright band on the left
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise when displayed
    out = open_image(png_bytes(img, "JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_to_pil_grid_heatmap_and_gif(tmp_path):
    t = torch.rand(5, 1, 8, 8)
    assert to_pil(t[0], scale=4).size == (32, 32)
    g = grid(t, nrow=3, padding=2)
    assert g.size == (3 * 10 + 2, 2 * 10 + 2)
    h = heatmap(torch.tensor([[0.0, 1.0]]))
    assert h.getpixel((0, 0)) == (0, 0, 4) and h.getpixel((1, 0))[0] > 240
    path = save_gif([to_pil(x, 2) for x in t], tmp_path / "a.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 5 + 3  # there and back again
