"""Morpho-MNIST's measurements of a handwritten digit (Castro et al. 2019, "Morpho-MNIST: quantitative assessment
and diagnostics for representation learning"): stroke thickness, slant, width, height, area and stroke length.

Their definitions, as in their `morphomnist.measure`: the image is upscaled 4x (bicubic) and thresholded at half
its range, so that the skeleton and the distance map have sub-pixel precision;
- area: inked pixels / 16 (in pixels of the 28 x 28 image)
- length: pixels of the skeleton / 4
- thickness: twice the mean distance to the background along the skeleton, / 4 (the stroke's mean width)
- slant: the horizontal shear that makes the ink's second moments uncorrelated, as an angle; positive leans right
- width, height: of the slanted bounding parallelogram, after 2 % of the ink is trimmed from each side

skimage's skeletonize and scipy's exact Euclidean distance transform do the morphology (scikit-image ships both).
"""

import numpy as np
import torch
import torch.nn.functional as F

SCALE = 4  # Morpho-MNIST's upscaling factor
BOUND_FRAC = 0.02  # ink trimmed from each side for width and height
# name -> (what the UI calls it, its unit)
ATTRIBUTES = {
    "thickness": ("stroke thickness", "px"),
    "slant": ("slant", "°"),
    "width": ("width", "px"),
    "height": ("height", "px"),
    "area": ("area", "px²"),
    "length": ("stroke length", "px"),
}


def _upscaled(images: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [0, 1] -> (N, 4H, 4W) bool: inked where the bicubic upscale passes half the range"""
    up = F.interpolate(images.float().cpu(), scale_factor=SCALE, mode="bicubic", align_corners=False)[:, 0]
    return (up > 0.5).numpy()


def _measure_one(ink: np.ndarray) -> tuple:
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    area = ink.sum()
    if area < 2:
        return (np.nan,) * len(ATTRIBUTES)
    skeleton = skeletonize(ink)
    length = skeleton.sum()
    thickness = 2 * distance_transform_edt(ink)[skeleton].mean() if length else np.nan
    ys, xs = np.nonzero(ink)
    yc, xc = ys.mean(), xs.mean()
    var_y = ((ys - yc) ** 2).mean()
    shear = -((xs - xc) * (ys - yc)).mean() / var_y if var_y > 0 else 0.0  # > 0: the top lies right of the bottom
    upright = xs + shear * (ys - yc)
    lo, hi = BOUND_FRAC * 100, (1 - BOUND_FRAC) * 100
    width = np.subtract(*np.percentile(upright, [hi, lo])) + 1
    height = np.subtract(*np.percentile(ys, [hi, lo])) + 1
    return (thickness / SCALE, np.degrees(np.arctan(shear)), width / SCALE, height / SCALE, area / SCALE**2,
            length / SCALE)


def measure(images: torch.Tensor) -> dict:
    """(N, 1, H, W) grey digits in [0, 1], white ink on black -> {attribute: (N,) float array}; NaN for an empty image"""
    if images.dim() == 3:
        images = images[:, None]
    rows = np.array([_measure_one(ink) for ink in _upscaled(images)], dtype=np.float64).reshape(-1, len(ATTRIBUTES))
    return {name: rows[:, i] for i, name in enumerate(ATTRIBUTES)}
