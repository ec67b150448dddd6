"""dSprites (Matthey et al. 2017) drawn on the fly: 64x64 binary sprites from five factors, no download.

Each pixel is lit when its centre falls inside the sprite, found by evaluating the shape's implicit
function in the sprite's own (rotated, scaled) coordinates; the maths runs for a whole batch at once
on a window around each sprite. The per-pixel arithmetic is float32 and every image's numbers come
from its own factors alone, so a factor tuple gives the same image in any batch.

Sizes are matched to the original by eye and by its mean pixel (about 0.042); the original's exact
geometry is not published, so images resemble it but are not pixel-identical.
"""

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Union

import numpy as np
import torch


@dataclass(frozen=True)
class DSpritesFactors:
    """The five factors' values, in the original's order, and where a sprite sits in the frame."""

    names: tuple = ("shape", "scale", "orientation", "pos_x", "pos_y")
    shapes: tuple = ("square", "ellipse", "heart")
    scales: tuple = tuple(np.linspace(0.5, 1.0, 6).tolist())
    # 2*pi is left out: it would repeat orientation 0 as a second, identical image.
    orientations: tuple = tuple(np.linspace(0.0, 2 * np.pi, 40, endpoint=False).tolist())
    positions: tuple = tuple(np.linspace(0.0, 1.0, 32).tolist())  # shared by pos_x and pos_y
    image_size: int = 64
    unit_px: float = 9.8  # half the side of the square at scale 1, in pixels
    # Distance from the frame's edge to the centre at position 0 (and 1): more than the largest
    # sprite's reach at any angle (the square's half-diagonal, 9.8 * sqrt(2) = 13.9 px).
    margin_px: float = 14.5

    def __post_init__(self):
        if self.margin_px < self.reach_px or 2 * self.margin_px >= self.image_size:
            raise ValueError(
                f"margin_px must be at least the largest sprite's reach ({self.reach_px:.1f} px) and less than "
                f"half of image_size; got {self.margin_px}. Lower unit_px or raise margin_px."
            )

    @property
    def reach_px(self) -> float:
        """farthest a lit pixel can be from the sprite's centre: the largest square's half-diagonal"""
        return math.sqrt(2) * self.unit_px * max(self.scales)

    @property
    def sizes(self) -> tuple:
        """number of values of each factor, in `names` order: (3, 6, 40, 32, 32)"""
        return (len(self.shapes), len(self.scales), len(self.orientations), len(self.positions), len(self.positions))

    @property
    def n_images(self) -> int:
        return math.prod(self.sizes)


FACTORS = DSpritesFactors()

# Each shape is drawn in a canonical frame (unit square, unit disc, classic heart curve); these map
# sprite units to it: u' = u * u_gain, v' = v * v_gain + v_shift (v points up).
# The ellipse is 2.4 x 1.2 units; the heart is 2 units wide and centred on its centroid so it turns
# about its middle rather than about the curve's origin.
_FRAMES = {0: (1.0, 1.0, 0.0), 1: (1 / 1.2, 1 / 0.6, 0.0), 2: (1 / 0.88, 1 / 0.88, 0.2935)}
_CHUNK = 4096  # images rasterised at once, bounding the temporaries at ~15 MB each


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """canonical coordinates (..., H, W) float32 -> bool mask of the filled shape (works in place)"""
    if shape == 0:
        np.abs(u, out=u)
        np.abs(v, out=v)
        return np.maximum(u, v, out=u) <= 1.0
    u *= u
    v2 = v * v
    if shape == 1:
        u += v2
        return u <= 1.0
    # Heart curve (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0, point at the bottom.
    t = u + v2
    t -= 1.0
    cube = t * t
    cube *= t
    v2 *= v
    v2 *= u
    return cube <= v2


def _rasterise(shape: np.ndarray, scale: np.ndarray, cos: np.ndarray, sin: np.ndarray,
               pos_x: np.ndarray, pos_y: np.ndarray, spec: DSpritesFactors) -> np.ndarray:
    """(n,) factor values (cos/sin of the orientation) -> (n, size, size) uint8 {0, 1}"""
    n, size = len(shape), spec.image_size
    out = np.zeros((n, size, size), np.uint8)
    win = min(2 * math.ceil(spec.reach_px) + 2, size)  # covers the reach on both sides of any sub-pixel centre
    span = size - 2 * spec.margin_px
    cx, cy = spec.margin_px + span * pos_x, spec.margin_px + span * pos_y
    offs = np.arange(win)
    x0 = np.clip(np.floor(cx).astype(np.int64) - win // 2, 0, size - win)
    y0 = np.clip(np.floor(cy).astype(np.int64) - win // 2, 0, size - win)
    # Offsets of absolute pixel centres, so the result does not depend on where the window sits.
    dx = x0[:, None] + offs + 0.5 - cx[:, None]  # (n, win) float64
    dy = y0[:, None] + offs + 0.5 - cy[:, None]
    inv = 1.0 / (scale * spec.unit_px)
    for k in np.unique(shape):
        sel = np.flatnonzero(shape == k)
        gu, gv, shift = _FRAMES[int(k)]
        c, s, ik = cos[sel, None], sin[sel, None], inv[sel, None]
        # u = (dx cos - dy sin) / r, v = -(dx sin + dy cos) / r: the pixel grid turned by -orientation
        # (screen y points down, sprite v up). Each (m, win, win) grid is an outer sum of a per-column
        # and a per-row term, so only (m, win) values go through the float64 -> float32 rounding.
        dxs, dys = dx[sel], dy[sel]
        u = (dxs * (c * ik * gu)).astype(np.float32)[:, None, :] - (dys * (s * ik * gu)).astype(np.float32)[:, :, None]
        v = (-dxs * (s * ik * gv)).astype(np.float32)[:, None, :] + (shift - dys * (c * ik * gv)).astype(np.float32)[:, :, None]
        mask = _inside(int(k), u, v)
        rows = (sel[:, None] * size + y0[sel, None] + offs)[:, :, None] * size  # (m, win, 1)
        cols = (x0[sel, None] + offs)[:, None, :]  # (m, 1, win)
        out.reshape(-1)[(rows + cols).reshape(-1)] = mask.reshape(-1)
    return out


def render_batch(shape: np.ndarray, scale: np.ndarray, orientation: np.ndarray, pos_x: np.ndarray,
                 pos_y: np.ndarray, spec: DSpritesFactors = FACTORS) -> np.ndarray:
    """(n,) shape indices and factor values (scale, radians, positions in [0, 1]) -> (n, 64, 64) uint8 {0, 1}"""
    shape = np.asarray(shape, np.int64).reshape(-1)
    orientation = np.asarray(orientation, np.float64).reshape(-1)
    values = [np.asarray(a, np.float64).reshape(-1) for a in (scale, pos_x, pos_y)]
    if shape.min(initial=0) < 0 or shape.max(initial=0) >= len(spec.shapes):
        raise ValueError(f"shape indices must lie in [0, {len(spec.shapes)}); got {shape.min()}..{shape.max()}.")
    if ((values[0] <= 0) | (values[0] > max(spec.scales))).any():
        raise ValueError(f"scale must lie in (0, {max(spec.scales)}]; larger sprites would not fit the frame.")
    if any(((a < 0) | (a > 1)).any() for a in values[1:]):
        raise ValueError("pos_x and pos_y must lie in [0, 1]; sprites outside that range leave the frame.")
    return _rasterise(shape, values[0], np.cos(orientation), np.sin(orientation), *values[1:], spec)


def render(shape: Union[int, str], scale: float, orientation: float, pos_x: float, pos_y: float,
           spec: DSpritesFactors = FACTORS) -> np.ndarray:
    """one sprite: shape index or name, scale, orientation in radians, positions in [0, 1] -> (64, 64) uint8 {0, 1}"""
    if isinstance(shape, str):
        if shape not in spec.shapes:
            raise ValueError(f"shape must be one of {spec.shapes}, got {shape!r}.")
        shape = spec.shapes.index(shape)
    return render_batch([shape], [scale], [orientation], [pos_x], [pos_y], spec)[0]


def factors_to_index(factors: np.ndarray, spec: DSpritesFactors = FACTORS) -> np.ndarray:
    """(n, 5) factor indices -> (n,) position in the original's ordering (pos_y fastest, shape slowest)"""
    return np.ravel_multi_index(tuple(np.asarray(factors, np.int64).T), spec.sizes)


def index_to_factors(index: np.ndarray, spec: DSpritesFactors = FACTORS) -> np.ndarray:
    """(n,) indices in [0, 737280) -> (n, 5) int64 factor indices"""
    return np.stack(np.unravel_index(np.asarray(index, np.int64), spec.sizes), axis=-1)


def factor_values(factors: np.ndarray, spec: DSpritesFactors = FACTORS) -> np.ndarray:
    """(n, 5) factor indices -> (n, 5) float64 values (shape stays an index; orientation in radians)"""
    f = np.asarray(factors, np.int64)
    tables = (np.arange(len(spec.shapes), dtype=np.float64), spec.scales, spec.orientations, spec.positions, spec.positions)
    return np.stack([np.asarray(t, np.float64)[f[:, i]] for i, t in enumerate(tables)], axis=1)


def sample_factors(n: int, rng: Union[np.random.Generator, int, None] = None,
                   spec: DSpritesFactors = FACTORS) -> np.ndarray:
    """n, a numpy Generator or seed -> (n, 5) int64 factor indices drawn uniformly from the full grid"""
    rng = np.random.default_rng(rng)
    return index_to_factors(rng.integers(0, spec.n_images, size=n), spec)


def generate(factors: np.ndarray, spec: DSpritesFactors = FACTORS) -> torch.Tensor:
    """(n, 5) factor indices -> (n, 1, 64, 64) float32 images in {0, 1}"""
    f = np.asarray(factors, np.int64).reshape(-1, 5)
    if ((f < 0) | (f >= np.asarray(spec.sizes))).any():
        raise ValueError(f"factor indices must be below {spec.sizes} column by column.")
    # Trigonometry from one table, so an orientation's cos/sin never depend on the batch around it.
    angles = np.asarray(spec.orientations, np.float64)
    cos_table, sin_table = np.cos(angles), np.sin(angles)
    scales, positions = np.asarray(spec.scales, np.float64), np.asarray(spec.positions, np.float64)
    chunks = []
    for i in range(0, len(f), _CHUNK):
        c = f[i : i + _CHUNK]
        chunks.append(_rasterise(c[:, 0], scales[c[:, 1]], cos_table[c[:, 2]], sin_table[c[:, 2]],
                                 positions[c[:, 3]], positions[c[:, 4]], spec))
    images = np.concatenate(chunks) if chunks else np.zeros((0, spec.image_size, spec.image_size), np.uint8)
    return torch.from_numpy(images).unsqueeze(1).float()


def random_batches(batch_size: int, rng: Union[np.random.Generator, int, None] = 0, n_batches: Optional[int] = None,
                   spec: DSpritesFactors = FACTORS) -> Iterator[tuple]:
    """-> (images (B, 1, 64, 64) float32 {0, 1}, factors (B, 5) int64) forever, or n_batches times"""
    rng = np.random.default_rng(rng)
    done = 0
    while n_batches is None or done < n_batches:
        factors = sample_factors(batch_size, rng, spec)
        yield generate(factors, spec), torch.from_numpy(factors)
        done += 1
