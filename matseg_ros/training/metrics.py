"""The confusion matrix accumulated during training and validation: on the model's device,
summed over DDP processes; its scores come from `matseg_ros.confusion`."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..confusion import scores
from ..materials import IGNORE_INDEX


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
        return scores(self.mat.cpu().numpy(), self.exclude)
