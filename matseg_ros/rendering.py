"""What the node publishes besides class ids: palette masks, overlays, per-material summaries.

All of it runs on every frame, so it is built from OpenCV table lookups and reductions
(see bench/frame_overhead.py): no per-pixel Python and no per-pixel index arrays.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .materials import IGNORE_INDEX, MaterialMap

BACKGROUND_ID = 0

_KEEP_ORIGINAL = np.zeros(256, dtype=np.uint8)  # ids whose pixels overlay() leaves untouched
_KEEP_ORIGINAL[[BACKGROUND_ID, IGNORE_INDEX]] = 1


def _check_ids(ids: np.ndarray) -> None:
    if not isinstance(ids, np.ndarray) or ids.ndim != 2 or ids.dtype != np.uint8:
        raise ValueError(f"ids must be an H×W uint8 array, got "
                         f"{getattr(ids, 'shape', type(ids))} {getattr(ids, 'dtype', '')}")


def colorize(ids: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 RGB palette image: `lut[ids]`, via cv2.LUT (several times faster)."""
    _check_ids(ids)
    lut = np.asarray(lut)
    if lut.shape != (256, 3) or lut.dtype != np.uint8:
        raise ValueError(f"lut must be a (256, 3) uint8 table (MaterialMap.palette_lut()), "
                         f"got {lut.shape} {lut.dtype}")
    return cv2.LUT(cv2.cvtColor(ids, cv2.COLOR_GRAY2RGB), lut.reshape(256, 1, 3))


def overlay(rgb: np.ndarray, colored: np.ndarray, alpha: float,
            ids: np.ndarray | None = None) -> np.ndarray:
    """(1 - alpha) * rgb + alpha * colored, rounded; with `ids`, background and ignore
    pixels keep the original image so the palette's black does not darken the scene."""
    if rgb.shape != colored.shape or rgb.ndim != 3 or rgb.shape[2] != 3 \
            or rgb.dtype != np.uint8 or colored.dtype != np.uint8:
        raise ValueError(f"overlay needs two H×W×3 uint8 images of one size, got "
                         f"{rgb.shape} {rgb.dtype} and {colored.shape} {colored.dtype}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    blended = cv2.addWeighted(rgb, 1.0 - alpha, colored, alpha, 0.0)
    if ids is not None:
        _check_ids(ids)
        if ids.shape != rgb.shape[:2]:
            raise ValueError(f"ids {ids.shape} do not match the image {rgb.shape[:2]}")
        cv2.copyTo(rgb, cv2.LUT(ids, _KEEP_ORIGINAL), blended)
    return blended


def summarize(ids: np.ndarray, confidence: np.ndarray | None, materials: MaterialMap,
              min_fraction: float = 0.0) -> list[dict[str, Any]]:
    """One entry per material present (background included, ignore and unknown ids not).

    Each entry: id, name, color [r, g, b], pixels, fraction (of all pixels in the frame),
    mean_confidence (None without `confidence`), bbox [x_min, y_min, x_max, y_max]
    (inclusive pixel coordinates) and centroid [x, y]. Exact at full resolution: counts,
    box and centroid come from per-row and per-column pixel counts of each class.
    """
    _check_ids(ids)
    if confidence is not None and confidence.shape != ids.shape:
        raise ValueError(f"confidence {confidence.shape} does not match ids {ids.shape}")
    height, width = ids.shape
    total = height * width
    histogram = cv2.calcHist([ids], [0], None, [256], [0, 256]).ravel()
    xs, ys = np.arange(width, dtype=np.int64), np.arange(height, dtype=np.int64)
    summary = []
    for material in materials:
        if material.id == materials.ignore_index or histogram[material.id] == 0:
            continue
        mask = ids == material.id
        mask_u8 = mask.view(np.uint8)
        per_row = cv2.reduce(mask_u8, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
        per_col = cv2.reduce(mask_u8, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
        pixels = int(per_row.sum(dtype=np.int64))
        if pixels / total < min_fraction:
            continue
        rows, cols = np.flatnonzero(per_row), np.flatnonzero(per_col)
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        mean_confidence = None
        if confidence is not None:
            box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
            mean_confidence = float(confidence[box][mask[box]].sum(dtype=np.float64) / pixels)
        summary.append({
            "id": material.id,
            "name": material.name,
            "color": list(material.color),
            "pixels": pixels,
            "fraction": pixels / total,
            "mean_confidence": mean_confidence,
            "bbox": [x0, y0, x1, y1],
            "centroid": [float(per_col @ xs) / pixels, float(per_row @ ys) / pixels],
        })
    return summary
