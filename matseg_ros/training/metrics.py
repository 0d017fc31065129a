"""Segmentation metrics from one confusion matrix (rows: ground truth, columns: prediction).

A class absent from both prediction and ground truth has no IoU (NaN), and the means
average over the classes that have one: the original scored such classes 0 and dragged
mIoU down for every class a validation set happens not to contain.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..materials import IGNORE_INDEX


def _nanmean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


class ConfusionMatrix:
    """Pixel counts [ground truth, prediction]. `exclude`: a class id that the config's
    `ignore_index` names: its ground-truth pixels are skipped and it takes no part in the
    class means (its IoU/accuracy/Dice are NaN); predicting it elsewhere still counts as an
    error for the true class."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 device: torch.device | str = "cpu", exclude: int | None = None):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.exclude = exclude
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.mat.zero_()

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add predicted ids and target ids of the same shape; ignore/out-of-range targets skipped."""
        pred = torch.as_tensor(pred).to(self.mat.device).reshape(-1).long()
        target = torch.as_tensor(target).to(self.mat.device).reshape(-1).long()
        if pred.shape != target.shape:
            raise ValueError(f"prediction has {pred.numel()} pixels, target {target.numel()}")
        n = self.num_classes
        valid = (target != self.ignore_index) & (target >= 0) & (target < n)
        if self.exclude is not None:
            valid &= target != self.exclude
        pred, target = pred[valid], target[valid]
        if pred.numel() and (pred.min() < 0 or pred.max() >= n):
            raise ValueError(f"predicted ids must lie in 0..{n - 1}")
        self.mat += torch.bincount(target * n + pred, minlength=n * n).reshape(n, n)

    def all_reduce(self) -> None:
        """Sum the matrices of all processes (DDP validation shards)."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(self.mat)

    def compute(self) -> dict[str, Any]:
        mat = self.mat.cpu().double().numpy()
        tp = np.diag(mat)
        gt = mat.sum(axis=1)     # pixels of each class in the ground truth
        pred = mat.sum(axis=0)   # pixels predicted as each class
        total = mat.sum()
        iou = _ratio(tp, gt + pred - tp)
        acc = _ratio(tp, gt)
        dice = _ratio(2 * tp, gt + pred)
        if self.exclude is not None:
            iou[self.exclude] = acc[self.exclude] = dice[self.exclude] = np.nan
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
