import io

import numpy as np
import pytest
import torch
from PIL import Image

from vae_demo.imaging.uploads import MAX_PIXELS, ImageError, open_image, prepare
from vae_demo.imaging.png import png_bytes as answer_png
from vae_demo.imaging.render import contact_sheet, grid, heatmap, save_gif, tile_sheet, to_pil


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
    frames = [to_pil(x, 2) for x in t]
    path = save_gif(frames, tmp_path / "a.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 5 + 3  # there and back again
        for i, k in enumerate([0, 1, 2, 3, 4, 3, 2, 1]):
            gif.seek(i)
            assert np.array_equal(np.asarray(gif.convert("L")), np.asarray(frames[k]))  # lossless: 256 greys


def frames_of(gif_path) -> list:
    with Image.open(gif_path) as gif:
        out = []
        for i in range(gif.n_frames):
            gif.seek(i)
            out.append((np.asarray(gif.convert("L")).copy(), gif.info.get("duration"), gif.info.get("loop")))
        return out


def test_a_gif_loops_forever_at_its_frame_rate_and_goes_back_only_when_asked(tmp_path):
    torch.manual_seed(0)
    frames = [to_pil(t, 8) for t in torch.rand(6, 1, 28, 28)]
    there_and_back = frames_of(save_gif(frames, tmp_path / "a.gif", duration_ms=80))
    assert len(there_and_back) == 6 + 4 and all(d == 80 and loop == 0 for _, d, loop in there_and_back)
    assert np.array_equal(there_and_back[6][0], np.asarray(frames[4]))  # on the way back
    assert len(frames_of(save_gif(frames, tmp_path / "b.gif", boomerang=False))) == 6


def test_a_colour_gif_keeps_its_own_colour_tables(tmp_path):
    """RGB frames each get their own palette from Pillow; those tables differ from the global one and stay."""
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "RGB") for _ in range(4)]
    back = frames_of(save_gif(frames, tmp_path / "rgb.gif"))
    assert len(back) == 4 + 2
    with Image.open(tmp_path / "rgb.gif") as gif:
        gif.seek(1)
        assert np.abs(np.asarray(gif.convert("RGB"), float) - np.asarray(frames[1], float)).mean() < 40  # its own palette


# --- what comes from libraries, checked against what we had or against another library -----------------------
def reference_grid(t: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 1.0) -> torch.Tensor:
    """The hand-made layout images.grid had before it used torchvision's make_grid."""
    b, c, h, w = t.shape
    nrow = max(1, min(nrow, b))
    rows = (b + nrow - 1) // nrow
    canvas = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(b):
        r, col = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        canvas[:, y : y + h, x : x + w] = t[i]
    return canvas


@pytest.mark.parametrize("b, c, nrow, padding", [(1, 1, 8, 2), (5, 1, 8, 2), (10, 1, 3, 1), (9, 3, 9, 0), (16, 3, 4, 4)])
def test_grid_from_make_grid_is_identical_to_the_hand_made_one(b, c, nrow, padding):
    from vae_demo.imaging.render import grid, to_pil

    t = torch.rand(b, c, 12, 10, generator=torch.Generator().manual_seed(b))
    assert grid(t, nrow=nrow, padding=padding).tobytes() == to_pil(reference_grid(t, nrow, padding)).tobytes()


def test_heatmap_is_matplotlibs_magma():
    from matplotlib import colormaps

    from vae_demo.imaging.render import heatmap

    v = torch.linspace(0, 1, 256)[None]
    ours = np.asarray(heatmap(v), dtype=int)[0]
    theirs = (colormaps["magma"](v.numpy()[0])[:, :3] * 255).round().astype(int)
    assert np.abs(ours - theirs).max() <= 1  # one level: the value is rounded to one of 256 entries
    assert tuple(ours[0]) == (0, 0, 4) and ours[-1].min() > 180  # black to pale yellow
    lum = ours @ np.array([0.299, 0.587, 0.114])
    assert (np.diff(lum) > -1).all()  # perceptually ordered: brighter as the error grows
    assert np.asarray(heatmap(torch.full((2, 2), 5.0), vmax=1.0)).tolist() == [[list(ours[-1])] * 2] * 2  # clipped


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    from vae_demo.imaging.uploads import ssim

    g = torch.Generator().manual_seed(0)
    for shape in [(1, 1, 28, 28), (1, 3, 64, 48), (1, 3, 9, 9)]:
        x = torch.rand(shape, generator=g)
        y = (x + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
        win = min(11, *shape[2:]) - (1 - min(11, *shape[2:]) % 2)
        ref = structural_similarity(x[0].permute(1, 2, 0).double().numpy(), y[0].permute(1, 2, 0).double().numpy(),
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                    channel_axis=2, win_size=win)
        assert abs(ssim(x, y) - ref) < 1e-4, shape


def test_prepare_pads_to_a_square_as_before():
    from vae_demo.imaging.uploads import prepare

    wide = np.zeros((20, 36), np.uint8)
    wide[5:15, 4:30] = 255
    x = prepare(Image.fromarray(wide), 28, 1, invert=False)[0, 0]
    canvas = np.zeros((36, 36), np.float32)  # the border's median (black), the content centred
    canvas[8:28, :] = wide / 255.0
    expected = torch.nn.functional.interpolate(torch.from_numpy(canvas)[None, None], size=(28, 28), mode="area")[0, 0]
    assert torch.allclose(x, expected, atol=1e-6)


@pytest.mark.parametrize("shape,nrow", [((10, 1, 28, 28), 8), ((3, 1, 28, 28), 8), ((64, 1, 28, 28), 8), ((5, 3, 32, 32), 4),
                                        ((9, 1, 64, 64), 8)])
def test_tile_sheet_is_the_contact_sheet_of_the_enlarged_tiles_pixel_for_pixel(shape, nrow):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    s = max(1, 112 // shape[-1])
    fast, slow = tile_sheet(x, nrow=nrow), contact_sheet([to_pil(t, s) for t in x], nrow=nrow)
    assert fast.mode == slow.mode and fast.size == slow.size
    assert np.array_equal(np.asarray(fast), np.asarray(slow))
    other = tile_sheet(x.flip(0), nrow=nrow)
    assert not np.array_equal(np.asarray(other), np.asarray(slow))  # the order of the tiles shows


def test_tile_sheet_shrinks_images_larger_than_a_cell_like_contact_sheet():
    x = torch.rand(3, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    fast, slow = tile_sheet(x, nrow=8), contact_sheet([to_pil(t) for t in x], nrow=8)
    assert fast.size == slow.size == (3 * (86 + 4) + 4, 86 + 8) and np.array_equal(np.asarray(fast), np.asarray(slow))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "LA"])
def test_the_answers_png_gives_back_every_pixel_in_its_mode(mode):
    """The app's own PNG writer (Up filter, zlib-ng): any reader gets the exact pixels back, noise and flat colour alike,
    through the wrap-around of the filter's subtraction; modes it does not write itself go through Pillow."""
    noise = np.random.default_rng(0).integers(0, 256, (37, 53, 4), dtype=np.uint8)
    flat = np.zeros_like(noise)
    flat[10:20] = 255
    for a in (noise, flat):
        img = Image.fromarray(a, "RGBA").convert(mode)
        back = Image.open(io.BytesIO(answer_png(img)))
        assert back.mode == img.mode and back.size == img.size
        assert np.array_equal(np.asarray(back), np.asarray(img))


def test_the_answers_png_of_an_enlarged_sheet_is_smaller_than_pillows_fast_setting():
    """A tile sheet enlarged by a whole factor repeats every row: Up plus run-length coding keeps it small."""
    sheet = tile_sheet(torch.rand(16, 1, 28, 28).round(), nrow=4)
    assert len(answer_png(sheet)) < len(png_bytes(sheet, compress_level=1))
