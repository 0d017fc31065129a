"""The shipped model as the node runs it: accuracy on held-out sets and frames/s.

Accuracy goes through `load_engine(...).predict` (resize to the model's input size,
ONNX Runtime, ids back at the frame's size) on every image of a split, scored with the
training module's ConfusionMatrix (mIoU over the labelled pixels), plus object accuracy
for sets imported from boxes (objects.json) and, for every set, the collapse rate: the
share of the images whose truth holds two or more materials (each >= 1 % of the labelled
pixels) where one material takes more than 90 % of the predicted non-background pixels
(matseg_ros/training/collapse.py). Speed is `predict` on 640×480 frames.

    python bench/default_model.py --data data/synth_test --data data/real/smdra --data data/real/trashnet --split test
    python bench/default_model.py ... --output docs/benchmarks/default_model.md
    python bench/default_model.py --model models/default.pt --device cuda --precision fp16 --data data/synth_test
    python bench/default_model.py --data data/composite_test --split test

Make the composite test set from the test splits only (docs/data.md, `matseg data composite`).

Make the synthetic held-out set with a seed the model never saw (models/README.md lists the seeds):
    matseg data synth --output data/synth_test --count 200 --seed 2026 --val 0 --test 0.99
"""
from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.io import dataset_layout as layout  # noqa: E402
from matseg_ros.io.masks import read_mask  # noqa: E402
from matseg_ros.paths import default_model_path  # noqa: E402
from matseg_ros.runtime.engine import load_engine  # noqa: E402
from matseg_ros.training.collapse import DOMINANT_SHARE, MATERIAL_SHARE, CollapseTally  # noqa: E402
from matseg_ros.training.metrics import ConfusionMatrix  # noqa: E402
from matseg_ros.training.object_accuracy import ObjectTally  # noqa: E402

from _report import cpu_name, emit, gpu_name  # noqa: E402


def accuracy(engine, data: Path, split: str) -> tuple[dict, int]:
    classes = engine.classes
    matrix = ConfusionMatrix(classes.num_classes)
    objects = layout.read_objects(data)
    tally = ObjectTally(classes.num_classes) if objects else None
    collapse = CollapseTally()
    ids = layout.read_split(data, split)
    for image_id in ids:
        rgb = layout.read_rgb(layout.find_image(data, image_id))
        target, _ = read_mask(layout.mask_path(data, image_id), classes)
        pred, _ = engine.predict(rgb)
        matrix.update(pred, target)
        collapse.add(pred, target)
        if tally is not None:
            tally.add(pred, objects.get(image_id, []))
    metrics = matrix.compute()
    if tally is not None:
        metrics.update(tally.compute())
    metrics.update(collapse.compute())
    return metrics, len(ids)


def collapse_text(metrics: dict) -> str:
    if not metrics["multi_material_images"]:
        return "collapse rate – (no image with ≥ 2 materials)"
    return (f"**collapse rate {metrics['collapse_rate']:.3f}** ({metrics['collapsed_images']} of "
            f"{metrics['multi_material_images']} images with ≥ 2 materials)")


def speed(engine, frames: int, size: tuple[int, int]) -> list[float]:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
    for _ in range(3):
        engine.predict(frame)
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        engine.predict(frame)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--data", type=Path, action="append", default=[],
                        help="held-out HRIM2021-layout set; repeat for several (skip accuracy if none)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--backend", default="auto", help="auto (by file), onnxruntime or torch")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or fp16 (fp16 on CUDA only)")
    parser.add_argument("--output", type=Path, help="write a markdown section here")
    args, _ = parser.parse_known_args()

    engine = load_engine(args.model, backend=args.backend, device=args.device, precision=args.precision)
    meta = engine.metadata
    lines = ["## Default model (`bench/default_model.py`)", "",
             f"Model `{args.model.name}`: {'/'.join(filter(None, (meta.architecture, meta.backbone)))}, input "
             f"{meta.input_size[1]}×{meta.input_size[0]}, {args.model.stat().st_size / 1e6:.2f} MB; "
             f"engine {engine.backend} on {engine.device} in {engine.precision} "
             f"({', '.join(engine.providers)}).",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores, GPU: {gpu_name()}, "
             f"load average {os.getloadavg()[0]:.1f} at the start.",
             f"Collapse rate: of the images whose truth holds ≥ 2 materials (each ≥ {MATERIAL_SHARE:.0%} of "
             f"the labelled pixels), the share where one material takes > {DOMINANT_SHARE:.0%} of the "
             "predicted non-background pixels.", ""]
    times = speed(engine, args.frames, (480, 640))
    median, p95 = statistics.median(times) * 1e3, float(np.percentile(times, 95)) * 1e3
    lines += [f"640×480 frames through `engine.predict`: median {median:.1f} ms, p95 {p95:.1f} ms "
              f"→ **{1e3 / median:.1f} frames/s** (goal ≥ 10, ratio {1e3 / median / 10:.2f}).", ""]
    for data in args.data:
        metrics, count = accuracy(engine, data, args.split)
        line = (f"Held-out `{data.name}` split `{args.split}` ({count} images): **mIoU "
                f"{metrics['mIoU']:.3f}** over the labelled pixels, pixel accuracy {metrics['pixel_accuracy']:.3f}, "
                f"mean accuracy {metrics['mean_accuracy']:.3f}; {collapse_text(metrics)}")
        if "object_accuracy" in metrics:
            line += (f"; **object accuracy {metrics['object_accuracy']:.3f}** of {metrics['objects']} "
                     "boxed objects (recall: " + ", ".join(
                         f"{m.name} {r:.2f}" for m, r in zip(engine.classes, metrics["per_class_object_recall"])
                         if r == r) + ")")
        lines += [line + ".", "", "| id | class | IoU |", "|---|---|---|"]
        for material, iou in zip(engine.classes, metrics["per_class_iou"]):
            lines.append(f"| {material.id} | {material.name} | "
                         f"{'absent' if iou != iou else f'{iou:.3f}'} |")
        lines.append("")
    lines.append(f"Reproduce: `python bench/default_model.py {shlex.join(sys.argv[1:])}`.")
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
