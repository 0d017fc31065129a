"""Pixel confusion matrices and the scores derived from them, in plain numpy.

Shared by training, `matseg eval` and the simulation evaluator, so a score means the same
thing everywhere. A class absent from both prediction and ground truth has no IoU (NaN)
and the means average over the classes that have one: the original scored such classes 0
and dragged mIoU down for every class a validation set happens not to contain.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .materials import IGNORE_INDEX


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """int64 [ground truth, prediction] pixel counts; ignored/out-of-range targets skipped."""
    pred = np.asarray(pred).reshape(-1).astype(np.int64)
    target = np.asarray(target).reshape(-1).astype(np.int64)
    if pred.shape != target.shape:
        raise ValueError(f"prediction has {pred.size} pixels, target {target.size}")
    valid = (target != ignore_index) & (target >= 0) & (target < num_classes)
    pred, target = pred[valid], target[valid]
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predicted ids must lie in 0..{num_classes - 1}")
    n = num_classes
    return np.bincount(target * n + pred, minlength=n * n).reshape(n, n)


def _nanmean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def scores(mat: np.ndarray, exclude: int | None = None) -> dict[str, Any]:
    """Pixel accuracy, mean accuracy, mIoU, mDice, fwIoU and the per-class values of a matrix.

    `exclude`: a class id that takes no part in the class means (its values are NaN)."""
    mat = np.asarray(mat, dtype=np.float64)
    tp = np.diag(mat)
    gt = mat.sum(axis=1)     # pixels of each class in the ground truth
    pred = mat.sum(axis=0)   # pixels predicted as each class
    total = mat.sum()
    iou = _ratio(tp, gt + pred - tp)
    acc = _ratio(tp, gt)
    dice = _ratio(2 * tp, gt + pred)
    if exclude is not None:
        iou[exclude] = acc[exclude] = dice[exclude] = np.nan
    freq = gt / total if total else np.zeros_like(gt)
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
        "mean_accuracy": _nanmean(acc),
        "mIoU": _nanmean(iou),
        "mDice": _nanmean(dice),
        "fwIoU": float(np.nansum(freq * iou)) if total else float("nan"),
        "per_class_iou": iou.tolist(),
        "per_class_accuracy": acc.tolist(),
        "per_class_dice": dice.tolist(),
        "pixels": int(total),
        "confusion_matrix": mat.astype(np.int64).tolist(),
    }
