"""The pictures the app answers with: tensors -> PIL images, enlarged crisp; grids and contact sheets of many;
heat maps; animated GIFs. (imaging/uploads.py is the other direction: any upload -> the model's input.)"""

import io
import struct
import zlib
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageChops, ImageFile


def to_pil(t: torch.Tensor, scale: int = 1) -> Image.Image:
    """(C, H, W) or (1, C, H, W) in [0, 1] -> PIL "L" or "RGB", optionally enlarged `scale` times (nearest)."""
    if t.dim() == 4:
        t = t[0]
    arr = (t.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    img = Image.fromarray(arr[0], "L") if arr.shape[0] == 1 else Image.fromarray(arr.transpose(1, 2, 0), "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def display_scale(image_size: int, target: int = 224) -> int:
    """How many times to enlarge a small model image so the browser shows crisp pixels, not a blur."""
    return max(1, target // image_size)


def grid(t: torch.Tensor, nrow: int = 8, padding: int = 2, scale: int = 1, pad_value: float = 1.0) -> Image.Image:
    """(B, C, H, W) in [0, 1] -> one PIL image with the B images in rows of `nrow` (torchvision's make_grid)."""
    from torchvision.utils import make_grid

    t = t.detach().float().cpu()
    if len(t) == 1:  # make_grid returns a lone image unpadded; a sheet of one keeps its frame
        sheet = F.pad(t[0], [padding] * 4, value=pad_value)
    else:
        sheet = make_grid(t, nrow=max(1, nrow), padding=padding, pad_value=pad_value)[: t.shape[1]]  # greys come back as RGB
    return to_pil(sheet, scale)


def contact_sheet(images: Sequence[Image.Image], nrow: int = 8, cell: int = 112, padding: int = 4,
                  background: int = 255) -> Image.Image:
    """Equal-sized PIL images -> one image, `nrow` per row, each shrunk by a whole factor to at most `cell` pixels
    (box filter: the enlarged pixel art of the small models stays crisp). One file to send instead of many."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    w, h = images[0].size
    f = max(1, -(-max(w, h) // cell))  # ceil
    tiles = [im.reduce(f) if f > 1 else im for im in images]
    tw, th = tiles[0].size
    nrow = max(1, min(nrow, len(tiles)))
    rows = -(-len(tiles) // nrow)
    mode = "RGB" if any(t.mode != "L" for t in tiles) else "L"
    sheet = Image.new(mode, (nrow * (tw + padding) + padding, rows * (th + padding) + padding),
                      background if mode == "L" else (background,) * 3)
    for i, t in enumerate(tiles):
        r, c = divmod(i, nrow)
        sheet.paste(t.convert(mode), (padding + c * (tw + padding), padding + r * (th + padding)))
    return sheet


def tile_sheet(t: torch.Tensor, nrow: int = 8, cell: int = 112, padding: int = 4, background: int = 255) -> Image.Image:
    """(B, C, H, W) in [0, 1] -> contact_sheet's layout straight from the tensor: each image enlarged by the largest
    whole factor that fits `cell` (nearest), `nrow` per row. Images larger than `cell` go through contact_sheet.
    The sheet is laid out at the images' own size and enlarged once, when the padding scales with it (uint8, no
    float grid as torchvision's make_grid would build): 0.6 ms against 2.4 ms through 64 PIL tiles for 64 MNIST
    samples; tests/test_images.py checks it against contact_sheet pixel for pixel."""
    b, c, h, w = t.shape
    if max(h, w) > cell:
        return contact_sheet([to_pil(x) for x in t], nrow=nrow, cell=cell, padding=padding, background=background)
    s = max(1, cell // max(h, w))
    a = (t.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    small = padding % s == 0  # the sheet at the images' own size, then enlarged whole: the padding scales with it
    p = padding // s if small else padding
    if not small:
        a = a.repeat(s, axis=2).repeat(s, axis=3)
    th, tw = a.shape[2], a.shape[3]
    nrow = max(1, min(nrow, b))
    rows = -(-b // nrow)
    sheet = np.full((c, rows * (th + p) + p, nrow * (tw + p) + p), background, np.uint8)
    for i in range(b):
        r, k = divmod(i, nrow)
        y, x = p + r * (th + p), p + k * (tw + p)
        sheet[:, y : y + th, x : x + tw] = a[i]
    img = Image.fromarray(sheet[0], "L") if c == 1 else Image.fromarray(sheet.transpose(1, 2, 0), "RGB")
    return img.resize((img.width * s, img.height * s), Image.NEAREST) if small and s > 1 else img


_MAGMA_LUT: list = []  # matplotlib's "magma" as a (256, 3) uint8 table, made on first use


def heatmap(values: torch.Tensor, vmax: float = 1.0) -> Image.Image:
    """(H, W) non-negative values -> RGB heat map in matplotlib's perceptually ordered "magma", 0 black, >= vmax pale yellow."""
    if not _MAGMA_LUT:
        from matplotlib import colormaps  # the colour map only: no pyplot, no figure

        _MAGMA_LUT.append((colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8))
    v = (values.detach().float().cpu().numpy() / max(vmax, 1e-12)).clip(0, 1)
    return Image.fromarray(_MAGMA_LUT[0][(v * 255).round().astype(np.intp)], "RGB")


def grey_png(img: Image.Image) -> bytes:
    """An 8-bit grey ("L") image -> PNG bytes: every row filtered "Up" (the difference to the row above) and deflated
    with zlib's run-length strategy. Pillow tries all five row filters on every row (its adaptive choice): 5.4 ms
    at level 1 for a sheet of 64 enlarged samples (932 px), where this takes 2.4 ms and the file is a quarter
    smaller (29 against 39 KB), because an enlarged picture repeats each row. The pixels are the same (tested:
    Pillow reads them back); colour images stay with Pillow."""
    if img.mode != "L":
        raise ValueError(f"grey_png writes 8-bit grey images, not {img.mode}")
    a = np.asarray(img)
    h, w = a.shape
    rows = np.empty((h, w + 1), np.uint8)
    rows[:, 0] = 2  # the "Up" filter; above the first row is taken as zeros
    rows[0, 1:] = a[0]
    np.subtract(a[1:], a[:-1], out=rows[1:, 1:])  # uint8 wraps around: the filter's arithmetic is modulo 256
    deflate = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = deflate.compress(rows.tobytes()) + deflate.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8 bits, grey, deflate, adaptive filtering, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


GREY_PALETTE = bytes(i // 3 for i in range(768))  # the palette Pillow gives a grey ("L") frame: index i is (i, i, i)


def save_gif(frames: list, path: Union[str, Path], duration_ms: int = 120, boomerang: bool = True) -> Path:
    """PIL frames -> animated GIF that loops forever (there and back again when `boomerang`).

    Grey frames of one size are written by `grey_gif` (below): the file Pillow writes for them as palette images
    with the grey palette, less the local colour tables that repeat the global one, made without Pillow's per-frame
    Python (30 frames of 224 px: 7.0 -> 4.8 ms). For frames that change inside a still border, as digits and their
    interpolations do, that is byte for byte the file Pillow writes for the grey frames themselves; other grey frames
    decode the same from a file no larger (tested). Other frames go to Pillow."""
    frames = [f.convert("RGB") if f.mode not in ("L", "RGB") else f for f in frames]
    frames = list(frames) + (list(frames[-2:0:-1]) if boomerang and len(frames) > 2 else [])
    data = grey_gif(frames, duration_ms) if all(f.mode == "L" and f.size == frames[0].size for f in frames) else None
    path = Path(path)
    path.write_bytes(data if data is not None else pillow_gif(frames, duration_ms))
    return path


def pillow_gif(frames: list, duration_ms: int) -> bytes:
    """Pillow's own GIF of the frames (grey ones as palette images with the grey palette: for an "L" frame Pillow
    builds that palette again, in Python, for every frame), less the repeated local colour tables."""
    grey = all(f.mode == "L" for f in frames)
    if grey:
        frames = [_grey_as_palette(f) for f in frames]
    buf = io.BytesIO()
    frames[0].save(buf, "gif", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0, optimize=False)
    return without_repeated_colour_tables(buf.getvalue()) if grey else buf.getvalue()


def grey_gif(frames: list, duration_ms: int, loop: int = 0) -> Optional[bytes]:
    """Grey ("L") frames of one size -> the bytes of `pillow_gif(frames, duration_ms)`, laid out as Pillow 12 lays
    them out, with Pillow's LZW encoder for the pixels; None for a single distinct frame (Pillow writes a still).

    As Pillow does: a frame equal to the one before adds its duration to it; any other frame after the first
    carries only the box in which it differs from the one before (Pillow's subtract_modulo and getbbox). The header
    holds the grey palette as the global colour table (a grey level is its own index) and the loop count."""
    kept = []  # [frame, box it differs in (None for the first), duration]
    for f in frames:
        box = None
        if kept:
            box = ImageChops.subtract_modulo(f, kept[-1][0]).getbbox(alpha_only=False)
            if not box:
                kept[-1][2] += duration_ms
                continue
        kept.append([f, box, duration_ms])
    if len(kept) < 2:
        return None
    w, h = frames[0].size
    out = [b"GIF89a", struct.pack("<HHBBB", w, h, 0x80 | 7, 0, 0), GREY_PALETTE,  # 2^(7+1) colours, background 0
           b"!\xff\x0bNETSCAPE2.0\x03\x01", struct.pack("<H", loop), b"\x00"]
    for f, box, duration in kept:
        x0, y0, x1, y1 = box or (0, 0, w, h)
        if duration // 10:  # graphic control extension: no disposal, no transparency, the delay in 1/100 s
            out.append(b"!\xf9\x04\x00" + struct.pack("<H", duration // 10) + b"\x00\x00")
        out.append(b"," + struct.pack("<HHHHB", x0, y0, x1 - x0, y1 - y0, 0) + b"\x08")  # no local table; 8-bit codes
        buf = io.BytesIO()
        part = f.crop(box) if box else f
        ImageFile._save(part, buf, [ImageFile._Tile("gif", (0, 0) + part.size, 0, "L")])  # LZW in sub-blocks
        out += [buf.getvalue(), b"\x00"]
    out.append(b";")
    return b"".join(out)


def _grey_as_palette(frame: Image.Image) -> Image.Image:
    p = Image.frombytes("P", frame.size, frame.tobytes())
    p.putpalette(GREY_PALETTE)
    return p


def without_repeated_colour_tables(gif: bytes) -> bytes:
    """A GIF's bytes with every frame's local colour table that repeats the global one removed (the frame then uses
    the global table: the same colours). Blocks are walked as the format lays them out: extensions and image data
    as length-prefixed sub-blocks ending in a zero byte."""
    flags = gif[10]
    if not flags & 0x80:
        return gif
    gct_end = 13 + 3 * (2 << (flags & 7))
    gct = gif[13:gct_end]
    out, i, n = [gif[:gct_end]], gct_end, len(gif)
    while i < n and gif[i] in (0x21, 0x2C):
        if gif[i] == 0x21:  # extension: introducer, label, sub-blocks
            start, j = i, i + 2
        else:  # image descriptor: 10 bytes, perhaps a local table, then the LZW code size and sub-blocks
            fl, j = gif[i + 9], i + 10
            if fl & 0x80:
                lct_end = j + 3 * (2 << (fl & 7))
                if gif[j:lct_end] == gct:
                    out.append(gif[i:i + 9] + bytes([fl & 0x40]))  # keep only the interlace flag
                else:
                    out.append(gif[i:lct_end])
                j = lct_end
            else:
                out.append(gif[i:j])
            start, j = j, j + 1
        while gif[j]:
            j += gif[j] + 1
        out.append(gif[start:j + 1])
        i = j + 1
    out.append(gif[i:])  # the trailer
    return b"".join(out)


# --- photos (any size, colour) and a structural metric ---------------------------------------------------
