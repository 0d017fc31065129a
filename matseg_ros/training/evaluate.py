"""`matseg eval`: per-class IoU/accuracy of a checkpoint or ONNX model on an HRIM2021 split.

Whole images at their own resolution (no centre crop; `--mode node` resizes them to the
model's input size as segment_node does), the class map and normalisation from the model
file; prints a table, and with --output writes metrics.json and a row-normalised
confusion-matrix PNG. A set imported from boxes (objects.json) also gets object accuracy,
and every set the collapse rate (collapse.py) of its multi-material images.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from . import builders
from ..fileio import atomic_write_text
from ..io.dataset_layout import DatasetError, read_objects
from ..io.masks import DEFAULT_TOLERANCE
from ..materials import MaterialMap
from .collapse import DOMINANT_SHARE, MATERIAL_SHARE, CollapseTally
from .config import ConfigError
from .dataset import HRIM
from .infer import add_mode_arguments, mode_settings
from .metrics import ConfusionMatrix
from .object_accuracy import ObjectTally
from .predict import PredictError, load_model, predict_logits
from .transforms import val_transform
from .visualize import save_confusion_png


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=".pt/.pth checkpoint or .onnx model")
    parser.add_argument("--data", required=True, help="HRIM2021-layout dataset folder")
    parser.add_argument("--split", default="val", help="ImageSets/Segmentation/<split>.txt (default val)")
    parser.add_argument("--output", help="folder for metrics.json and confusion_matrix.png")
    parser.add_argument("--mask-tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help="RGB distance within which a mask colour counts as a class colour")
    parser.add_argument("--ignore-class", type=int, default=None, metavar="ID",
                        help="a class id to leave out of the scores, like the training config's "
                             "ignore_index (default: a checkpoint's own ignore_index; none for ONNX)")
    add_mode_arguments(parser)


def format_table(metrics: dict[str, Any], classes: MaterialMap) -> str:
    def pct(value: float) -> str:
        return "   -  " if math.isnan(value) else f"{100 * value:6.2f}"

    width = max(len(n) for n in classes.names + ["class"])
    rows = [f"{'id':>3}  {'class':<{width}}  {'IoU %':>6}  {'acc %':>6}  {'pixels':>10}"]
    matrix = metrics["confusion_matrix"]
    for cid in range(len(metrics["per_class_iou"])):
        name = classes[cid].name if cid in classes.ids else "?"
        rows.append(f"{cid:>3}  {name:<{width}}  {pct(metrics['per_class_iou'][cid])}  "
                    f"{pct(metrics['per_class_accuracy'][cid])}  {sum(matrix[cid]):>10}")
    rows.append(f"mIoU {pct(metrics['mIoU'])} %   pixel accuracy {pct(metrics['pixel_accuracy'])} %   "
                f"mean accuracy {pct(metrics['mean_accuracy'])} %   mDice {pct(metrics['mDice'])} %")
    if "object_accuracy" in metrics:
        recall = ", ".join(f"{classes[c].name} {pct(r).strip()} %" for c, r in
                           enumerate(metrics["per_class_object_recall"]) if r == r and c in classes.ids)
        rows.append(f"object accuracy {pct(metrics['object_accuracy'])} % of {metrics['objects']} "
                    f"boxed objects (recall: {recall})")
    if metrics.get("multi_material_images"):
        rows.append(f"collapse rate {pct(metrics['collapse_rate'])} %: {metrics['collapsed_images']} of "
                    f"{metrics['multi_material_images']} images with two or more materials (each >= "
                    f"{MATERIAL_SHARE:.0%} of the labelled pixels) predicted > {DOMINANT_SHARE:.0%} one material")
    return "\n".join(rows)


def evaluate_model(model_path: str, data: str, split: str, settings_args: argparse.Namespace,
                   mask_tolerance: float = DEFAULT_TOLERANCE,
                   ignore_class: int | None = None) -> tuple[dict[str, Any], MaterialMap]:
    forward, meta, device, config = load_model(model_path, settings_args.device)
    if ignore_class is None:  # the class the training config ignored, if any
        ignore_class = builders.ignore_class({"ignore_index": config.get("ignore_index", -1)})
    if ignore_class is not None and ignore_class not in meta.classes.ids:
        raise ValueError(f"--ignore-class {ignore_class} is not a class id of the model "
                         f"{meta.classes.ids}")
    settings = mode_settings(settings_args, meta.input_size, "single")
    dataset = HRIM(data, split, meta.classes, val_transform(meta.mean, meta.std),
                   mask_tolerance=mask_tolerance)
    confusion = ConfusionMatrix(meta.classes.num_classes, exclude=ignore_class)
    objects = read_objects(data)
    tally = ObjectTally(meta.classes.num_classes) if objects else None
    collapse = CollapseTally()
    unknown = 0
    for i in tqdm(range(len(dataset)), desc=f"eval {split} ({settings['mode']})", dynamic_ncols=True):
        image, target, n_unknown = dataset[i]
        pred = predict_logits(forward, image[None].to(device), **settings).argmax(dim=1).cpu()
        confusion.update(pred, target[None])
        if tally is not None:
            tally.add(pred[0].numpy(), objects.get(dataset.samples[i][0], []))
        collapse.add(pred[0].numpy(), target.numpy())
        unknown += n_unknown
    metrics = confusion.compute()
    if tally is not None:
        metrics.update(tally.compute())
    metrics.update(collapse.compute())
    metrics.update({"model": str(model_path), "data": str(data), "split": split, "images": len(dataset),
                    "ignore_class": ignore_class,
                    "unknown_mask_pixels": unknown, "classes": meta.classes.names, **settings})
    return metrics, meta.classes


def json_safe(value: Any) -> Any:
    """NaN (a class absent from both prediction and ground truth) as JSON null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    args.config = None
    try:
        metrics, classes = evaluate_model(args.model, args.data, args.split, args, args.mask_tolerance,
                                          args.ignore_class)
    except (PredictError, DatasetError, ConfigError, ValueError) as exc:
        print(f"matseg eval: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(metrics, classes))
    if metrics["unknown_mask_pixels"]:
        print(f"note: {metrics['unknown_mask_pixels']} mask pixels had no class colour and were ignored")
    if args.output:
        out = Path(args.output)
        atomic_write_text(out / "metrics.json", json.dumps(json_safe(metrics), indent=2))
        save_confusion_png(out / "confusion_matrix.png", metrics["confusion_matrix"],
                           [classes[c].name if c in classes.ids else str(c)
                            for c in range(classes.num_classes)],
                           title=f"{Path(args.model).name} on {args.split}: mIoU {metrics['mIoU']:.3f}")
        print(f"wrote {out / 'metrics.json'} and {out / 'confusion_matrix.png'}")
    return 0
