"""Grow an HRIM2021 dataset from a simulated camera and its ground truth (ROS-free).

`ChangeGate` decides which frames are worth keeping: a minimum interval of (sim) time
and a minimum change of the view, so a robot standing still does not fill the disk with
copies of one frame. `DatasetWriter` writes JPEGImages/<id>.jpg, SegmentationClass/<id>.png
(palette PNGs) and ImageSets/Segmentation/{train,val,trainval}.txt, appending to a dataset
that is already there.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_write_bytes
from ..io import dataset_layout as layout
from ..io.masks import write_mask
from ..materials import MaterialMap

THUMB = (64, 48)   # width, height the change test looks at: cheap and insensitive to noise


class ChangeGate:
    """Pass a frame when `min_interval` seconds have passed since the last kept frame and
    the image or its labels changed enough (mean absolute grey difference, as a fraction
    of 255, >= `min_change`, or fraction of changed labels >= `min_label_change`)."""

    def __init__(self, min_interval: float = 1.0, min_change: float = 0.04,
                 min_label_change: float = 0.02) -> None:
        for name, value in (("min_interval", min_interval), ("min_change", min_change),
                            ("min_label_change", min_label_change)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.min_interval = min_interval
        self.min_change = min_change
        self.min_label_change = min_label_change
        self._last: tuple[float, np.ndarray, np.ndarray] | None = None

    def check(self, stamp: float, rgb: np.ndarray, ids: np.ndarray) -> tuple[bool, str]:
        """(keep?, reason). A keep is remembered as the new reference."""
        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), THUMB, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(ids, THUMB, interpolation=cv2.INTER_NEAREST)
        if self._last is not None:
            last_stamp, last_grey, last_labels = self._last
            if stamp >= last_stamp:      # time going backwards: the simulation was reset
                if stamp - last_stamp < self.min_interval:
                    return False, "interval"
                change = float(np.mean(cv2.absdiff(grey, last_grey))) / 255.0
                label_change = float(np.mean(labels != last_labels))
                if change < self.min_change and label_change < self.min_label_change:
                    return False, "unchanged"
        self._last = (stamp, grey, labels)
        return True, "kept"


class DatasetWriter:
    """Append samples to an HRIM2021 dataset; every `val_every`-th block of `block_size`
    consecutive samples goes to val. Neighbouring frames of a drive look alike, so
    splitting frame by frame would leak the validation set into training."""

    def __init__(self, root: str | Path, materials: MaterialMap, prefix: str,
                 val_every: int = 10, jpeg_quality: int = 95, block_size: int = 10) -> None:
        if val_every < 0:
            raise ValueError(f"val_every must be >= 0 (0: no validation split), got {val_every}")
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
        self.root = Path(root)
        self.materials = materials
        self.prefix = prefix
        self.val_every = val_every
        self.block_size = block_size
        self.jpeg_quality = jpeg_quality
        self.splits = {s: self._existing(s) for s in ("train", "val")}
        self.written = 0

    def _existing(self, split: str) -> list[str]:
        try:
            return layout.read_split(self.root, split)
        except layout.DatasetError:
            return []

    def write(self, rgb: np.ndarray, ids: np.ndarray) -> str:
        """Write one sample (RGB uint8 H×W×3, class ids uint8 H×W); returns its id."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"image must be uint8 H×W×3 RGB, got {rgb.dtype} {rgb.shape}")
        if ids.shape != rgb.shape[:2]:
            raise ValueError(f"mask is {ids.shape[1]}x{ids.shape[0]}, image {rgb.shape[1]}x{rgb.shape[0]}")
        self.written += 1
        sample_id = f"{self.prefix}{self.written:06d}"
        ok, jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise OSError(f"{sample_id}: JPEG encoding failed")
        # mask first: a crash between the two leaves an orphan mask, never an unlabelled image
        write_mask(layout.mask_path(self.root, sample_id), ids, self.materials, palette=True)
        atomic_write_bytes(layout.image_dir(self.root) / f"{sample_id}.jpg", jpeg.tobytes())
        block = (self.written - 1) // self.block_size
        split = "val" if self.val_every and block % self.val_every == self.val_every - 1 else "train"
        self.splits[split].append(sample_id)
        return sample_id

    def flush(self) -> None:
        """Write the split files (train, val, trainval) atomically; nothing if nothing was written."""
        if not self.written:
            return
        layout.write_split(self.root, "train", self.splits["train"])
        layout.write_split(self.root, "val", self.splits["val"])
        layout.write_split(self.root, "trainval", self.splits["train"] + self.splits["val"])
