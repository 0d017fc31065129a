"""Pictures for people: TensorBoard image/ground-truth/prediction panels, confusion-matrix PNGs."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..fileio import atomic_path
from ..materials import IGNORE_INDEX, MaterialMap

IGNORE_COLOR = (255, 255, 255)  # ignored pixels show white (background is black)


def id_colors(materials: MaterialMap) -> np.ndarray:
    lut = materials.palette_lut().copy()
    lut[IGNORE_INDEX] = IGNORE_COLOR
    return lut


def example_panels(examples: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                   materials: MaterialMap, mean: Sequence[float], std: Sequence[float]
                   ) -> list[np.ndarray]:
    """[image | ground truth | prediction] as H×3W×3 uint8, from normalised image tensors."""
    lut = id_colors(materials)
    mean_a = np.asarray(mean, np.float32)
    std_a = np.asarray(std, np.float32)
    panels = []
    for image, target, pred in examples:
        rgb = (image.numpy().transpose(1, 2, 0) * std_a + mean_a) * 255
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
        gt = lut[target.numpy().clip(0, 255).astype(np.uint8)]
        pr = lut[pred.numpy().astype(np.uint8)]
        panels.append(np.concatenate([rgb, gt, pr], axis=1))
    return panels


def save_confusion_png(path: str | Path, matrix: np.ndarray, names: Sequence[str],
                       title: str = "") -> Path:
    """Row-normalised confusion matrix (rows: ground truth) as a PNG, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = 1.2 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if title:
        ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            if norm[i, j] >= 0.005:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path
