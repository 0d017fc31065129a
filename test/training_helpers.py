"""A tiny HRIM2021-layout dataset for the training tests: textured shapes, one colour per class.

Each class has its own colour and stripe texture, so a small network separates them in a
few CPU epochs and an mIoU far above chance is a real signal that training works.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from matseg_ros.io.dataset_layout import IMAGE_DIR, write_split
from matseg_ros.io.masks import write_mask

# class id -> (base RGB, stripe period in px); 0 is the background
CLASS_LOOKS = {0: ((40, 40, 40), 0), 1: ((220, 60, 60), 4), 2: ((60, 200, 80), 0),
               3: ((70, 90, 230), 6), 4: ((230, 210, 70), 3)}
CLASSES = tuple(CLASS_LOOKS)


def render(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    ids = np.zeros((size, size), np.uint8)
    for cls in rng.permutation(CLASSES[1:])[: rng.integers(2, 5)]:
        x0, y0 = rng.integers(0, size - 20, 2)
        w, h = rng.integers(16, 36, 2)
        if rng.random() < 0.5:
            ids[y0:y0 + h, x0:x0 + w] = cls
        else:
            cv2.circle(ids, (int(x0 + w // 2), int(y0 + h // 2)), int(min(w, h) // 2), int(cls), -1)
    rgb = np.zeros((size, size, 3), np.float32)
    yy, xx = np.mgrid[:size, :size]
    for cls, (color, period) in CLASS_LOOKS.items():
        where = ids == cls
        shade = 1.0 if not period else 0.75 + 0.25 * (((xx + yy) // period) % 2)
        rgb[where] = (np.asarray(color, np.float32) * np.broadcast_to(shade, (size, size))[..., None])[where]
    rgb += rng.normal(0, 6, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), ids


def make_dataset(root: Path, materials, n_train: int = 8, n_val: int = 4, size: int = 64,
                 seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}" for i in range(n_train + n_val)]
    for name in names:
        rgb, ids = render(rng, size)
        cv2.imwrite(str(root / IMAGE_DIR / f"{name}.jpg"), rgb[..., ::-1],
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        write_mask(root / "SegmentationClass" / f"{name}.png", ids, materials)
    write_split(root, "train", names[:n_train])
    write_split(root, "val", names[n_train:])
    return root


def write_config(path: Path, base: Path | str, **changes) -> Path:
    """A copy of a config file with dotted-key changes, e.g. {"trainer.epochs": 2}."""
    cfg = json.loads(Path(base).read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path.write_text(json.dumps(cfg, indent=2))
    return path


def only_run(save_dir: Path) -> Path:
    """The one run folder `matseg train --save-dir save_dir` made (TensorBoard's runs/ aside)."""
    runs = sorted(p for p in save_dir.glob("*/*") if p.is_dir() and p.parent.name != "runs")
    assert len(runs) == 1, runs
    return runs[0]
