"""Collapse: a prediction that paints a multi-material scene as one material.

The failure a model learns from one-object photos ("one photo, one material"): per image,
the share of the predicted non-background pixels taken by the commonest predicted
material. An image collapses when that share exceeds DOMINANT_SHARE (0.90) while its truth
holds two or more materials; a material of the truth is a class other than background and
ignore with at least MATERIAL_SHARE (1 %) of the image's labelled (non-ignore) pixels, so
a few stray pixels do not make a scene multi-material. An image predicted all background
has no commonest material and does not collapse.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..materials import IGNORE_INDEX

BACKGROUND = 0
MATERIAL_SHARE = 0.01
DOMINANT_SHARE = 0.90


def truth_materials(target: np.ndarray, min_share: float = MATERIAL_SHARE) -> list[int]:
    """The materials of a truth mask: non-background, non-ignore ids with at least `min_share`
    of its labelled pixels."""
    counts = np.bincount(np.asarray(target).ravel(), minlength=256).astype(np.int64)
    labelled = counts.sum() - counts[IGNORE_INDEX]
    counts[[BACKGROUND, IGNORE_INDEX]] = 0
    return np.flatnonzero(counts >= max(1.0, min_share * labelled)).tolist() if labelled else []


def dominant_share(pred: np.ndarray) -> float:
    """The commonest predicted material's share of the predicted non-background pixels (NaN
    when every pixel is predicted background)."""
    counts = np.bincount(np.asarray(pred).ravel())
    counts[BACKGROUND] = 0
    total = counts.sum()
    return float(counts.max() / total) if total else float("nan")


def collapsed(pred: np.ndarray, target: np.ndarray) -> bool | None:
    """Whether the image collapses; None when its truth has fewer than two materials."""
    if len(truth_materials(target)) < 2:
        return None
    return bool(dominant_share(pred) > DOMINANT_SHARE)


class CollapseTally:
    """Collapsed images among the images whose truth has two or more materials."""

    def __init__(self) -> None:
        self.multi = 0
        self.collapsed = 0

    def add(self, pred: np.ndarray, target: np.ndarray) -> None:
        verdict = collapsed(pred, target)
        if verdict is not None:
            self.multi += 1
            self.collapsed += verdict

    def compute(self) -> dict[str, Any]:
        return {"collapse_rate": self.collapsed / self.multi if self.multi else float("nan"),
                "collapsed_images": self.collapsed, "multi_material_images": self.multi}
