"""Segmentation losses under the original config's names, all ignore-aware.

Each is built as `Name(ignore_index=..., **loss_args)` and called as
`loss(logits N×C×H×W, target N×H×W int64)`. Ignored pixels never count, and targets
are never modified in place (the original Dice loss overwrote ignored pixels with a real
class, which leaked into the metrics).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..materials import IGNORE_INDEX


def _weight_tensor(weight: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    return None if weight is None else torch.as_tensor(weight, dtype=torch.float32)


def _valid_one_hot(logits: torch.Tensor, target: torch.Tensor, ignore_index: int
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax probabilities and the one-hot target, both zeroed at ignored pixels (N×C×H×W)."""
    valid = (target != ignore_index) & (target >= 0) & (target < logits.shape[1])
    safe = torch.where(valid, target, torch.zeros_like(target))
    one_hot = F.one_hot(safe, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    mask = valid.unsqueeze(1).to(logits.dtype)
    return F.softmax(logits, dim=1) * mask, one_hot * mask


class CrossEntropyLoss2d(nn.Module):
    def __init__(self, weight: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", _weight_tensor(weight), persistent=False)
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class DiceLoss(nn.Module):
    """1 − mean over classes of (2·Σpt + s) / (Σp + Σt + s), over the valid pixels of the batch."""

    def __init__(self, smooth: float = 1.0, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.smooth, self.ignore_index = smooth, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs, one_hot = _valid_one_hot(logits.float(), target, self.ignore_index)
        dims = (0, 2, 3)
        intersection = (probs * one_hot).sum(dims)
        total = probs.sum(dims) + one_hot.sum(dims)
        dice = (2 * intersection + self.smooth) / (total + self.smooth)
        return 1 - dice.mean()


class CE_DiceLoss(nn.Module):  # noqa: N801 - the original config's name
    def __init__(self, smooth: float = 1.0, ignore_index: int = IGNORE_INDEX,
                 weight: Sequence[float] | None = None, reduction: str = "mean"):
        super().__init__()
        self.dice = DiceLoss(smooth=smooth, ignore_index=ignore_index)
        self.ce = CrossEntropyLoss2d(weight=weight, ignore_index=ignore_index, reduction=reduction)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce(logits, target) + self.dice(logits, target)


class FocalLoss(nn.Module):
    """−α_t (1 − p_t)^γ log p_t, averaged over valid pixels; `alpha` per-class weights."""

    def __init__(self, gamma: float = 2.0, alpha: Sequence[float] | None = None,
                 ignore_index: int = IGNORE_INDEX, size_average: bool = True):
        super().__init__()
        self.gamma, self.ignore_index, self.size_average = gamma, ignore_index, size_average
        self.register_buffer("alpha", _weight_tensor(alpha), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target))
        logp = F.log_softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        if self.alpha is not None:
            loss = loss * self.alpha[safe]
        loss = loss[valid]
        if loss.numel() == 0:
            return logits.sum() * 0.0
        return loss.mean() if self.size_average else loss.sum()


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors."""
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1]
    return jaccard


def _lovasz_flat(probs: torch.Tensor, labels: torch.Tensor, classes: str | Sequence[int]
                 ) -> torch.Tensor:
    """probs P×C, labels P (valid pixels only)."""
    if probs.numel() == 0:
        return probs.sum() * 0.0
    num_classes = probs.shape[1]
    chosen = range(num_classes) if classes in ("all", "present") else classes
    losses = []
    for c in chosen:
        fg = (labels == c).to(probs.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probs[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[order])))
    return torch.stack(losses).mean() if losses else probs.sum() * 0.0


class LovaszSoftmax(nn.Module):
    """Berman et al.'s Lovász-Softmax: a convex surrogate of the per-class Jaccard loss."""

    def __init__(self, classes: str | Sequence[int] = "present", per_image: bool = False,
                 ignore_index: int = IGNORE_INDEX):
        super().__init__()
        if isinstance(classes, str) and classes not in ("present", "all"):
            raise ValueError(f"LovaszSoftmax classes must be 'present', 'all' or a list of ids, "
                             f"got {classes!r}")
        self.classes, self.per_image, self.ignore_index = classes, per_image, ignore_index

    def _flat(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        probs = probs.permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
        labels = target.reshape(-1)
        valid = labels != self.ignore_index
        return _lovasz_flat(probs[valid], labels[valid], self.classes)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.per_image:
            return torch.stack([self._flat(logits[i:i + 1], target[i:i + 1])
                                for i in range(logits.shape[0])]).mean()
        return self._flat(logits, target)


LOSSES: dict[str, type[nn.Module]] = {
    "CrossEntropyLoss2d": CrossEntropyLoss2d,
    "DiceLoss": DiceLoss,
    "CE_DiceLoss": CE_DiceLoss,
    "FocalLoss": FocalLoss,
    "LovaszSoftmax": LovaszSoftmax,
}
WEIGHT_ARG = {"CrossEntropyLoss2d": "weight", "CE_DiceLoss": "weight", "FocalLoss": "alpha"}


def build_loss(name: str, ignore_index: int = IGNORE_INDEX, class_weights: Sequence[float] | None = None,
               **kwargs) -> nn.Module:
    """`LOSSES[name](ignore_index=..., **kwargs)`; class weights go to the loss's weight argument."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; expected one of {list(LOSSES)}")
    if class_weights is not None:
        if name not in WEIGHT_ARG:
            raise ValueError(f"loss {name} takes no class weights; use one of {list(WEIGHT_ARG)} "
                             "or drop balance.class_weights")
        kwargs[WEIGHT_ARG[name]] = list(class_weights)
    try:
        return LOSSES[name](ignore_index=ignore_index, **kwargs)
    except TypeError as exc:
        raise ValueError(f"loss {name}: bad loss_args {kwargs}: {exc}") from None
