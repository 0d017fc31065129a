"""Copy-paste and mosaic composition (Ghiasi et al., CVPR 2021), pure functions on arrays.

A cut-out is one connected labelled region of a photo (classes other than background and
ignore), its holes filled: a TrashNet object inside its ignore band, an SMDRA sample with
its dish. Pixels of its holes that the photo labels ignore stay ignore in the cut-out;
background pixels in them are left out (transparent).

Where a pasted object lands, the mask follows its alpha exactly: alpha >= 0.5 takes the
object's label (class, or 255 where its own mask says ignore), alpha < 0.5 keeps what was
under it. The alpha is the warped support, Gaussian-feathered and then held on its side of
0.5, so a soft edge never moves a label. Masks are warped with nearest neighbour; outside
a rotated object the support is 0, so its borders are transparent, never class 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..materials import IGNORE_INDEX
from .importing.masks import fill_holes

BACKGROUND = 0
MIN_CUTOUT_SHARE = 0.005   # regions smaller than this share of their photo are specks, not objects
_BELOW_HALF = np.nextafter(np.float32(0.5), np.float32(0))


@dataclass(frozen=True)
class Cutout:
    rgb: np.ndarray      # h×w×3 uint8: the photo around the region
    ids: np.ndarray      # h×w uint8: the region's labels (a class or IGNORE_INDEX) inside `support`
    support: np.ndarray  # h×w bool: the pixels that belong to the cut-out


def labelled_regions(ids: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """(int32 component labels, one {"label", "material", "pixels"} per region big enough to
    cut out); a region's material is its commonest class."""
    labelled = ((ids != BACKGROUND) & (ids != IGNORE_INDEX)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(labelled, connectivity=8)
    big = [k for k in range(1, n) if stats[k, cv2.CC_STAT_AREA] >= MIN_CUTOUT_SHARE * ids.size]
    regions = []
    for k in big:
        x, y, w, h = stats[k, :4]
        window = labels[y:y + h, x:x + w] == k
        counts = np.bincount(ids[y:y + h, x:x + w][window], minlength=256)
        regions.append({"label": int(k), "material": int(counts.argmax()), "pixels": int(window.sum())})
    return labels, regions


def cut(rgb: np.ndarray, ids: np.ndarray, labels: np.ndarray, label: int, margin: int = 4) -> Cutout:
    """The cut-out of component `label`, cropped to its box plus `margin` pixels of context."""
    ys, xs = np.nonzero(labels == label)
    h, w = ids.shape
    y0, y1 = max(0, ys.min() - margin), min(h, ys.max() + 1 + margin)
    x0, x1 = max(0, xs.min() - margin), min(w, xs.max() + 1 + margin)
    region = np.pad(labels[y0:y1, x0:x1] == label, 1)  # padded: the crop's border is outside
    crop_ids = ids[y0:y1, x0:x1]
    support = fill_holes(region)[1:-1, 1:-1] & (crop_ids != BACKGROUND)
    return Cutout(rgb[y0:y1, x0:x1].copy(), np.where(support, crop_ids, IGNORE_INDEX).astype(np.uint8), support)


def flipped(c: Cutout) -> Cutout:
    return Cutout(c.rgb[:, ::-1].copy(), c.ids[:, ::-1].copy(), c.support[:, ::-1].copy())


def placement(c: Cutout, centre: tuple[float, float], scale: float, angle: float) -> np.ndarray:
    """2×3 affine: the cut-out's centre to `centre` (x, y), scaled, rotated by `angle` degrees
    (counter-clockwise, OpenCV's convention)."""
    h, w = c.ids.shape
    here = ((w - 1) / 2.0, (h - 1) / 2.0)
    matrix = cv2.getRotationMatrix2D(here, angle, scale)
    matrix[:, 2] += (centre[0] - here[0], centre[1] - here[1])
    return matrix


def feathered(inside: np.ndarray, sigma: float) -> np.ndarray:
    """float32 alpha: the support blurred, held >= 0.5 inside it and < 0.5 outside."""
    if sigma <= 0:
        return inside.astype(np.float32)
    soft = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), sigma)
    return np.where(inside, np.maximum(soft, 0.5), np.minimum(soft, _BELOW_HALF))


def paste(rgb: np.ndarray, ids: np.ndarray, c: Cutout, matrix: np.ndarray,
          feather: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(rgb, ids) with the cut-out placed by `matrix` on top; the inputs are not changed."""
    h, w = ids.shape
    size = (w, h)
    inside = cv2.warpAffine(c.support.astype(np.uint8), matrix, size, flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    labels = cv2.warpAffine(c.ids, matrix, size, flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE_INDEX)
    colour = cv2.warpAffine(c.rgb, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = feathered(inside, feather)[..., None]
    out = colour.astype(np.float32) * alpha + rgb.astype(np.float32) * (1.0 - alpha)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), np.where(inside, labels, ids)


def jitter(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue jitter, then sometimes a blur: for the object only."""
    x = rgb.astype(np.float32)
    mean = x.mean()
    x = ((x - mean) * rng.uniform(0.75, 1.25) + mean) * rng.uniform(0.75, 1.25)
    hsv = cv2.cvtColor(np.clip(x + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
    hue = (hsv[..., 0].astype(np.int16) + int(rng.integers(-8, 9))) % 180  # OpenCV hue: 0..179
    sat = np.clip(hsv[..., 1] * rng.uniform(0.7, 1.3) + 0.5, 0, 255)
    hsv = np.dstack([hue, sat, hsv[..., 2]]).astype(np.uint8)
    out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    return out


def fit(rgb: np.ndarray, ids: np.ndarray, size: tuple[int, int],
        rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A photo resized to cover `size` (height, width) at a random zoom up to 1.3, randomly
    cropped and flipped; its mask resized nearest."""
    out_h, out_w = size
    h, w = ids.shape
    scale = max(out_h / h, out_w / w) * rng.uniform(1.0, 1.3)
    new_w, new_h = max(out_w, int(np.ceil(w * scale))), max(out_h, int(np.ceil(h * scale)))
    rgb = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    ids = cv2.resize(ids, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    y, x = int(rng.integers(new_h - out_h + 1)), int(rng.integers(new_w - out_w + 1))
    rgb, ids = rgb[y:y + out_h, x:x + out_w], ids[y:y + out_h, x:x + out_w]
    if rng.random() < 0.5:
        rgb, ids = rgb[:, ::-1], ids[:, ::-1]
    return np.ascontiguousarray(rgb), np.ascontiguousarray(ids)


def mosaic(photos: list[tuple[np.ndarray, np.ndarray]], size: tuple[int, int],
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Four photos in the quadrants around a random centre (30-70 % of each side)."""
    h, w = size
    cy, cx = int(round(h * rng.uniform(0.3, 0.7))), int(round(w * rng.uniform(0.3, 0.7)))
    rgb = np.empty((h, w, 3), np.uint8)
    ids = np.empty((h, w), np.uint8)
    quadrants = [(0, cy, 0, cx), (0, cy, cx, w), (cy, h, 0, cx), (cy, h, cx, w)]
    for (photo, labels), (y0, y1, x0, x1) in zip(photos, quadrants):
        rgb[y0:y1, x0:x1], ids[y0:y1, x0:x1] = fit(photo, labels, (y1 - y0, x1 - x0), rng)
    return rgb, ids
