import io

import numpy as np
import pytest
import torch
from PIL import Image

from vae_demo.imaging.uploads import MAX_PIXELS, ImageError, open_image, prepare
from vae_demo.imaging.render import (
    GREY_PALETTE,
    contact_sheet,
    grey_png,
    grid,
    heatmap,
    grey_gif,
    pillow_gif,
    save_gif,
    tile_sheet,
    to_pil,
    without_repeated_colour_tables,
)


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


def pillows_own_gif(frames, boomerang=True) -> bytes:
    """What save_gif wrote before: Pillow's save of the frames as they are."""
    frames = list(frames) + (list(frames[-2:0:-1]) if boomerang and len(frames) > 2 else [])
    buf = io.BytesIO()
    frames[0].save(buf, "gif", save_all=True, append_images=frames[1:], duration=120, loop=0, optimize=False)
    return buf.getvalue()


def frames_of(gif_path) -> list:
    with Image.open(gif_path) as gif:
        out = []
        for i in range(gif.n_frames):
            gif.seek(i)
            out.append((np.asarray(gif.convert("L")).copy(), gif.info.get("duration"), gif.info.get("loop")))
        return out


def test_a_grey_gif_shows_what_pillows_own_shows_and_is_the_same_file_for_digits(tmp_path):
    """Grey frames go to Pillow as palette images and the repeated local colour tables are dropped. Frames that
    change inside a black border (digits, interpolations) make the very file Pillow writes for the grey frames;
    frames that change everywhere decode the same, in a file no larger (Pillow repeats the table for those)."""
    torch.manual_seed(0)
    digits = torch.zeros(16, 1, 28, 28)
    digits[:, :, 4:24, 4:24] = torch.rand(16, 1, 20, 20) ** 3  # every grey level somewhere, a black border
    for x, same_file in ((digits, True), (torch.rand(6, 1, 28, 28), False)):
        frames = [to_pil(t, 8) for t in x]
        for boomerang in (True, False):
            ours = save_gif(frames, tmp_path / "ours.gif", boomerang=boomerang).read_bytes()
            theirs = pillows_own_gif(frames, boomerang)
            (tmp_path / "theirs.gif").write_bytes(theirs)
            if same_file:
                assert ours == theirs
            assert len(ours) <= len(theirs)
            a, b = frames_of(tmp_path / "ours.gif"), frames_of(tmp_path / "theirs.gif")
            assert len(a) == len(b) == len(frames) + (len(frames) - 2 if boomerang else 0)
            assert all(np.array_equal(p[0], q[0]) and p[1:] == q[1:] for p, q in zip(a, b))
    one = [to_pil(digits[0], 8)]
    assert save_gif(one, tmp_path / "one.gif").read_bytes() == pillows_own_gif(one)


def test_grey_gif_is_the_file_pillow_writes_for_the_same_frames():
    """grey_gif lays out by hand what Pillow writes for grey frames as palette images (pillow_gif): the same bytes for
    digits, frames that change everywhere, repeated frames (their durations summed), two frames, odd sizes; a
    single distinct frame is left to Pillow, which writes a still."""
    torch.manual_seed(1)
    digits = torch.zeros(12, 1, 28, 28)
    digits[:, :, 5:22, 6:23] = torch.rand(12, 1, 17, 17) ** 2
    cases = {
        "digits": [to_pil(t, 8) for t in digits],
        "changing everywhere": [to_pil(t, 3) for t in torch.rand(5, 1, 13, 7)],
        "repeats": [to_pil(t, 2) for t in digits[[0, 0, 1, 1, 1, 2, 0, 0]]],
        "two": [to_pil(t) for t in digits[:2]],
        "one pixel changes": [to_pil(t) for t in torch.zeros(3, 1, 9, 11).index_put_((torch.tensor([1]),), torch.ones(1, 9, 11))],
    }
    for name, frames in cases.items():
        for duration in (120, 7, 40):
            assert grey_gif(frames, duration) == pillow_gif(frames, duration), (name, duration)
    same = [to_pil(digits[0])] * 3
    assert grey_gif(same, 120) is None and grey_gif(same[:1], 120) is None


def test_a_colour_gif_keeps_its_own_colour_tables(tmp_path):
    """RGB frames each get their own palette from Pillow; those tables differ from the global one and stay."""
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), "RGB") for _ in range(4)]
    data = save_gif(frames, tmp_path / "rgb.gif").read_bytes()
    assert data == pillows_own_gif(frames)
    with Image.open(tmp_path / "rgb.gif") as gif:
        assert gif.n_frames == 4 + 2


def test_dropping_a_colour_table_that_differs_is_refused():
    """without_repeated_colour_tables keeps a local table unless it equals the global one, byte for byte."""
    grey = [Image.fromarray(np.full((4, 4), v, np.uint8), "L") for v in (0, 200)]
    p = [Image.frombytes("P", g.size, g.tobytes()) for g in grey]
    p[0].putpalette(GREY_PALETTE)
    p[1].putpalette(bytes(255 - b for b in GREY_PALETTE))  # a different palette for the second frame
    buf = io.BytesIO()
    p[0].save(buf, "gif", save_all=True, append_images=p[1:], duration=100, loop=0, optimize=False)
    assert without_repeated_colour_tables(buf.getvalue()) == buf.getvalue()
    assert b",\x00\x00\x00\x00\x04\x00\x04\x00\x87" in buf.getvalue()  # the second frame's own 256-colour table


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


@pytest.mark.parametrize("shape,scale", [((28, 28), 8), ((236, 932), 1), ((1, 1), 1), ((3, 517), 1)])
def test_grey_png_holds_the_same_pixels_as_pillows(shape, scale):
    """The PNG written by hand (one row filter, zlib's RLE) reads back, through Pillow, as the image it was made of."""
    rng = np.random.default_rng(sum(shape))
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), "L")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    data = grey_png(img)
    with Image.open(io.BytesIO(data)) as back:
        back.load()
        assert back.format == "PNG" and back.mode == "L" and back.size == img.size
        assert np.array_equal(np.asarray(back), np.asarray(img))


def test_grey_png_of_an_enlarged_sheet_is_smaller_than_pillows():
    """The point of it: a sheet of enlarged samples repeats each row, which one Up filter and RLE make nothing of."""
    x = torch.rand(64, 1, 28, 28) ** 2
    sheet = tile_sheet(x, nrow=8)
    assert len(grey_png(sheet)) < len(png_bytes(sheet, compress_level=1))
    with pytest.raises(ValueError, match="grey"):
        grey_png(sheet.convert("RGB"))
