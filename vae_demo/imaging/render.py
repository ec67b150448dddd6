"""The pictures the app answers with: tensors -> PIL images, enlarged crisp; grids and contact sheets of many;
heat maps; animated GIFs. (imaging/uploads.py is the other direction: any upload -> the model's input.)"""

from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


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
    The sheet is laid out at the images' own size and enlarged once, when the padding scales with it, in uint8 and in
    two whole-tensor copies (the tiles into their padded cells, the cells into rows), rather than through a PIL tile or
    a numpy slice per image: /sample's sheet is made once per call. tests/test_images.py checks it against
    contact_sheet pixel for pixel."""
    b, c, h, w = t.shape
    if max(h, w) > cell:
        return contact_sheet([to_pil(x) for x in t], nrow=nrow, cell=cell, padding=padding, background=background)
    s = max(1, cell // max(h, w))
    a = t.detach().float().mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu()  # to_pil's bytes: scaled, rounded, clamped
    small = padding % s == 0  # the sheet at the images' own size, then enlarged whole: the padding scales with it
    p = padding // s if small else padding
    if not small:
        a = a.repeat_interleave(s, 2).repeat_interleave(s, 3)
    th, tw = a.shape[2], a.shape[3]
    nrow = max(1, min(nrow, b))
    rows = -(-b // nrow)
    cells = torch.full((rows * nrow, th + p, tw + p, c), background, dtype=torch.uint8)  # each tile, then its padding
    cells[:b, :th, :tw] = a.permute(0, 2, 3, 1)
    sheet = torch.full((rows * (th + p) + p, nrow * (tw + p) + p, c), background, dtype=torch.uint8)
    sheet[p:, p:] = cells.view(rows, nrow, th + p, tw + p, c).transpose(1, 2).reshape(rows * (th + p), nrow * (tw + p), c)
    arr = sheet.numpy()
    img = Image.fromarray(arr[:, :, 0], "L") if c == 1 else Image.fromarray(arr, "RGB")
    return img.resize((img.width * s, img.height * s), Image.NEAREST) if small and s > 1 else img


_MAGMA_LUT: list = []  # matplotlib's "magma" as a (256, 3) uint8 table, made on first use


def heatmap(values: torch.Tensor, vmax: float = 1.0) -> Image.Image:
    """(H, W) non-negative values -> RGB heat map in matplotlib's perceptually ordered "magma", 0 black, >= vmax pale yellow."""
    if not _MAGMA_LUT:
        from matplotlib import colormaps  # the colour map only: no pyplot, no figure

        _MAGMA_LUT.append((colormaps["magma"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8))
    v = (values.detach().float().cpu().numpy() / max(vmax, 1e-12)).clip(0, 1)
    return Image.fromarray(_MAGMA_LUT[0][(v * 255).round().astype(np.intp)], "RGB")


def save_gif(frames: list, path: Union[str, Path], duration_ms: int = 120, boomerang: bool = True) -> Path:
    """PIL frames -> an animated GIF, written by Pillow, that loops forever (there and back again when `boomerang`).
    Grey frames stay grey: Pillow gives an "L" frame the 256-level grey palette, so nothing is lost. optimize=False:
    Pillow's default pass over each frame's palette finds nothing to drop in 256 greys and is most of the GIF's time."""
    frames = [f.convert("RGB") if f.mode not in ("L", "RGB") else f for f in frames]
    frames = list(frames) + (list(frames[-2:0:-1]) if boomerang and len(frames) > 2 else [])
    path = Path(path)
    frames[0].save(path, "gif", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0, optimize=False)
    return path


# --- photos (any size, colour) and a structural metric ---------------------------------------------------
