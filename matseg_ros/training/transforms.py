"""Paired image/mask transforms (albumentations), the original's augmentations done right.

Training: longest side to `base_size` (randomly scaled 0.5–2.0 when `scale`), rotation
±10°, padding to `crop_size` and a random crop, Gaussian blur, horizontal flip, and with
`photometric` the camera changes of `augmentations.camera_ops`. Mask
borders from rotation and padding are always ignore (255), never a real class; image
padding is the mean colour (0 after normalisation). Validation: whole images, normalised
only (no centre crop: the metric must see every labelled pixel).

Randomness is seeded per sample from (seed, epoch, index), each transform with its own
stream, so a run is reproducible whatever the number of DataLoader workers and a
resumed run sees the same augmentations as an uninterrupted one.
"""
from __future__ import annotations

from typing import Sequence

import albumentations as A
import cv2
import numpy as np
import torch

from ..materials import IGNORE_INDEX
from ..runtime.engine import normalize
from .augmentations import camera_ops, seed_pipeline

ROTATE_LIMIT = 10.0
SCALE_RANGE = (0.5, 2.0)


def to_tensors(rgb: np.ndarray, ids: np.ndarray, mean: Sequence[float],
               std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 RGB H×W×3 and ids H×W -> normalised float32 3×H×W and int64 H×W."""
    image = torch.from_numpy(normalize(rgb, mean, std))
    return image, torch.from_numpy(ids.astype(np.int64))


class PairTransform:
    """An albumentations pipeline (or none) followed by normalisation, seeded per sample."""

    def __init__(self, ops: list[A.BasicTransform], mean: Sequence[float], std: Sequence[float],
                 seed: int = 0):
        self.ops = A.Compose(ops) if ops else None
        self.mean, self.std, self.seed = tuple(mean), tuple(std), int(seed)

    def __call__(self, rgb: np.ndarray, ids: np.ndarray,
                 key: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ops is not None:
            seed_pipeline(self.ops, (self.seed, *key))
            out = self.ops(image=rgb, mask=ids)
            rgb, ids = out["image"], out["mask"]
        return to_tensors(rgb, ids, self.mean, self.std)


def train_transform(crop_size: int, base_size: int | None, mean: Sequence[float],
                    std: Sequence[float], augment: bool = True, scale: bool = True,
                    rotate: bool = False, flip: bool = False, blur: bool = False,
                    photometric: bool = False, seed: int = 0) -> PairTransform:
    """The training pipeline from the loader args of the original config."""
    fill = tuple(float(m * 255) for m in mean)
    ops: list[A.BasicTransform] = []
    if base_size:
        ops.append(A.LongestMaxSize(max_size=base_size, interpolation=cv2.INTER_LINEAR))
        if augment and scale:
            low, high = SCALE_RANGE
            ops.append(A.RandomScale(scale_limit=(low - 1, high - 1), p=1.0,
                                     interpolation=cv2.INTER_LINEAR))
    if augment and rotate:
        ops.append(A.Rotate(limit=ROTATE_LIMIT, border_mode=cv2.BORDER_CONSTANT, fill=fill,
                            fill_mask=IGNORE_INDEX, p=1.0))
    ops.append(A.PadIfNeeded(min_height=crop_size, min_width=crop_size,
                             border_mode=cv2.BORDER_CONSTANT, fill=fill, fill_mask=IGNORE_INDEX))
    ops.append(A.RandomCrop(crop_size, crop_size) if augment else A.CenterCrop(crop_size, crop_size))
    if augment and blur:
        ops.append(A.GaussianBlur(blur_limit=(3, 7), sigma_limit=(0.1, 1.5), p=0.5))
    if augment and flip:
        ops.append(A.HorizontalFlip(p=0.5))
    if augment and photometric:
        ops += camera_ops()
    return PairTransform(ops, mean, std, seed)


def val_transform(mean: Sequence[float], std: Sequence[float]) -> PairTransform:
    """Whole images, normalised: validation scores every labelled pixel."""
    return PairTransform([], mean, std)
