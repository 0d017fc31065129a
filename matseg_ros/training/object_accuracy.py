"""Object accuracy for box-annotated sets: does the model name the boxed object's material?

Per object, the answer is the commonest predicted material inside its box other than
background (0): a photo's white backdrop predicted as background does not vote. An
object whose box holds only background has no answer and counts as wrong.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

BACKGROUND = 0


def vote(pred: np.ndarray, box: Sequence[float], num_classes: int) -> int | None:
    """The commonest non-background id of `pred` (H×W ids) inside box (x0, y0, x1, y1)."""
    h, w = pred.shape
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    counts = np.bincount(np.asarray(pred[y0:y1, x0:x1]).ravel(), minlength=num_classes)
    counts[BACKGROUND] = 0
    return int(counts.argmax()) if counts.any() else None


class ObjectTally:
    """Answers against the annotated materials: accuracy and per-class recall."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.total = np.zeros(num_classes, np.int64)
        self.correct = np.zeros(num_classes, np.int64)

    def add(self, pred: np.ndarray, objects: list[dict[str, Any]]) -> None:
        for obj in objects:
            truth = int(obj["material"])
            self.total[truth] += 1
            self.correct[truth] += vote(pred, obj["box"], self.num_classes) == truth

    def compute(self) -> dict[str, Any]:
        n = int(self.total.sum())
        recall = np.full(self.num_classes, np.nan)
        np.divide(self.correct, self.total, out=recall, where=self.total > 0)
        return {"object_accuracy": float(self.correct.sum() / n) if n else float("nan"),
                "objects": n, "per_class_object_recall": recall.tolist()}
