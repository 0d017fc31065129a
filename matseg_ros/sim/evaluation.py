"""Live evaluation of predicted masks against Gazebo's segmentation ground truth (ROS-free).

Gazebo's semantic segmentation camera publishes `labels_map` as rgb8 with the Label
plugin id in every channel (0 for unlabelled things). Metrics come from
`matseg_ros.confusion`, as in training, so a sim score and a validation score mean the same
thing: classes absent from both prediction and ground truth are left out of mIoU.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..confusion import confusion_matrix, scores
from ..fileio import atomic_write_text
from ..materials import IGNORE_INDEX, MaterialMap


class LabelMapError(ValueError):
    """A ground-truth image that is not a labels map; the message says what was received."""


def labels_to_ids(labels: np.ndarray, materials: MaterialMap) -> tuple[np.ndarray, int]:
    """(uint8 H×W class ids, pixels set to ignore) from a labels map.

    Accepts H×W (mono8) or H×W×3 with the id in every channel (Gazebo's rgb8 labels_map).
    Ids that are not classes of `materials` become IGNORE_INDEX, so a world labelled for
    another class map is scored on what both share instead of crashing the metric.
    """
    if labels.ndim == 3 and labels.shape[2] in (3, 4):
        first = labels[..., 0]
        if not (np.array_equal(first, labels[..., 1]) and np.array_equal(first, labels[..., 2])):
            raise LabelMapError("channels differ: this looks like a colored map, not a labels map "
                                "(bridge the segmentation camera's .../labels_map topic)")
        labels = first
    if labels.ndim != 2:
        raise LabelMapError(f"expected H×W or H×W×3 labels, got shape {labels.shape}")
    if labels.dtype != np.uint8:
        raise LabelMapError(f"expected 8-bit labels, got {labels.dtype}")
    known = np.zeros(256, dtype=bool)
    known[list(materials.ids)] = True
    known[IGNORE_INDEX] = True
    mask = known[labels]
    unknown = int(labels.size - np.count_nonzero(mask))
    ids = labels if unknown == 0 else np.where(mask, labels, IGNORE_INDEX).astype(np.uint8)
    return ids, unknown


def _clean(value: Any) -> Any:
    """JSON-safe: NaN (no IoU for an absent class) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class EvalSession:
    """Per-frame and running metrics of prediction/ground-truth pairs, and their report."""

    def __init__(self, materials: MaterialMap) -> None:
        self.materials = materials
        self.num_classes = max(materials.ids) + 1
        self.running = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.frames: list[dict[str, Any]] = []
        self.skipped: dict[str, int] = {}
        self.ignored_pixels = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def add(self, stamp_ns: int, prediction: np.ndarray, ground_truth: np.ndarray) -> dict[str, Any]:
        """Score one pair (prediction: H×W ids; ground_truth: a labels map) -> frame metrics.

        Raises ValueError (LabelMapError included) for a pair that cannot be scored; the
        caller counts it with `skip` and goes on.
        """
        gt, _ = labels_to_ids(ground_truth, self.materials)
        if prediction.ndim != 2 or prediction.dtype != np.uint8:
            raise ValueError(f"prediction must be uint8 H×W class ids, got {prediction.dtype} {prediction.shape}")
        if prediction.shape != gt.shape:
            raise ValueError(f"prediction is {prediction.shape[1]}x{prediction.shape[0]}, "
                             f"ground truth {gt.shape[1]}x{gt.shape[0]}: the cameras must match")
        frame = confusion_matrix(prediction, gt, self.num_classes, IGNORE_INDEX)
        self.running += frame
        self.ignored_pixels += int(np.count_nonzero(gt == IGNORE_INDEX))
        metrics = scores(frame)
        row = {"stamp": stamp_ns / 1e9, "pixel_accuracy": metrics["pixel_accuracy"],
               "mIoU": metrics["mIoU"], "per_class_iou": metrics["per_class_iou"]}
        self.frames.append(row)
        return row

    def running_metrics(self) -> dict[str, Any]:
        return scores(self.running)

    def document(self, frame: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        """The `~/metrics` message: running values at top level (`mIoU` is the running mIoU)."""
        run = self.running_metrics()
        doc = {
            "frames": len(self.frames),
            "mIoU": run["mIoU"],
            "pixel_accuracy": run["pixel_accuracy"],
            "mean_accuracy": run["mean_accuracy"],
            "per_class_iou": {m.name: run["per_class_iou"][m.id] for m in self.materials.materials},
            "skipped": dict(self.skipped),
            **extra,
        }
        if frame is not None:
            doc["frame"] = {"stamp": frame["stamp"], "mIoU": frame["mIoU"],
                            "pixel_accuracy": frame["pixel_accuracy"],
                            "per_class_iou": {m.name: frame["per_class_iou"][m.id]
                                              for m in self.materials.materials}}
        return _clean(doc)

    def summary(self, **extra: Any) -> dict[str, Any]:
        """Everything the report holds: running metrics, per-class table, counts."""
        run = self.running_metrics()
        mat = np.asarray(run["confusion_matrix"])
        per_class = [{"id": m.id, "name": m.name, "iou": run["per_class_iou"][m.id],
                      "accuracy": run["per_class_accuracy"][m.id],
                      "gt_pixels": int(mat[m.id].sum()), "predicted_pixels": int(mat[:, m.id].sum())}
                     for m in self.materials.materials]
        return _clean({
            "frames": len(self.frames), "pixels": run["pixels"], "mIoU": run["mIoU"],
            "pixel_accuracy": run["pixel_accuracy"], "mean_accuracy": run["mean_accuracy"],
            "fwIoU": run["fwIoU"], "per_class": per_class, "skipped": dict(self.skipped),
            "ignored_pixels": self.ignored_pixels,
            "confusion_matrix": run["confusion_matrix"], **extra,
        })

    def write_report(self, folder: str | Path, **extra: Any) -> list[Path]:
        """report.json (summary), per_class.csv and frames.csv, each written atomically."""
        folder = Path(folder)
        summary = self.summary(**extra)
        paths = [folder / "report.json", folder / "per_class.csv", folder / "frames.csv"]
        atomic_write_text(paths[0], json.dumps(summary, indent=2) + "\n")
        atomic_write_text(paths[1], _csv(["id", "name", "iou", "accuracy", "gt_pixels", "predicted_pixels"],
                                         [[c[k] for k in ("id", "name", "iou", "accuracy", "gt_pixels",
                                                          "predicted_pixels")] for c in summary["per_class"]]))
        names = [m.name for m in self.materials.materials]
        rows = [[f"{f['stamp']:.9f}", f["pixel_accuracy"], f["mIoU"]]
                + [f["per_class_iou"][m.id] for m in self.materials.materials] for f in self.frames]
        atomic_write_text(paths[2], _csv(["stamp", "pixel_accuracy", "mIoU"] + [f"iou_{n}" for n in names], rows))
        return paths


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None or (isinstance(v, float) and math.isnan(v)) else
                         (f"{v:.6f}" if isinstance(v, float) else v) for v in row])
    return out.getvalue()
