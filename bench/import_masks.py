"""Box-guided masks of `matseg data import`: their quality against real polygons, and speed.

Quality: every SMDRA sample polygon (not the dish) is turned into its bounding box and given
to the same GrabCut step a VOC box gets; the labelled pixels are compared with the polygon
(precision: labelled pixels that are the sample; recall: the sample's pixels labelled).
Speed: a VOC import of TrashNet (512×384, box-guided masks) with 2 workers, images/s.

    python bench/import_masks.py [--realdata ../shared/realdata] [--count 200] [--output docs/benchmarks/import.md]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.data.importing.command import import_dataset  # noqa: E402
from matseg_ros.data.importing.masks import box_foreground, polygon_region  # noqa: E402
from matseg_ros.io.dataset_layout import read_rgb  # noqa: E402
from matseg_ros.materials import load_materials  # noqa: E402

from _report import emit, machine_lines  # noqa: E402


def smdra_quality(root: Path) -> dict:
    doc = json.loads((root / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    images = {i["id"]: i for i in doc["images"]}
    precision, recall, iou, unsure = [], [], [], 0
    for ann in doc["annotations"]:
        if names[ann["category_id"]] == "petri_dish":
            continue
        info = images[ann["image_id"]]
        rgb = read_rgb(root / "images" / info["file_name"])
        truth = polygon_region(ann["segmentation"], info["height"], info["width"])
        ys, xs = np.nonzero(truth)
        labelled, found = box_foreground(rgb, (xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0))
        if not found:
            unsure += 1
            continue
        both = np.count_nonzero(labelled & truth)
        precision.append(both / max(1, np.count_nonzero(labelled)))
        recall.append(both / np.count_nonzero(truth))
        iou.append(both / np.count_nonzero(labelled | truth))
    return {"samples": len(precision) + unsure, "unsure": unsure, "precision": np.array(precision),
            "recall": np.array(recall), "iou": np.array(iou)}


def import_speed(root: Path, count: int, workers: int) -> tuple[int, float]:
    mapping = {"glass": "glass", "paper": "paper", "cardboard": "paper", "plastic": "plastic",
               "metal": "metal", "trash": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "xml").mkdir()
        names = sorted(os.listdir(root / "annotations"))
        for name in names[:: max(1, len(names) // count)][:count]:  # links, not copies
            (tmp / "xml" / name).symlink_to(root / "annotations" / name)
        (tmp / "map.yaml").write_text("".join(f"{k}: {v}\n" for k, v in mapping.items()))
        start = time.perf_counter()
        doc = import_dataset("voc", tmp / "xml", root / "images", tmp / "map.yaml", tmp / "out",
                             load_materials(), workers=workers)
        return doc["imported"], time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=ROOT.parent / "shared" / "realdata")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args, _ = parser.parse_known_args()
    if not args.realdata.is_dir():
        print(f"bench/import_masks.py: {args.realdata} not found (the shared real data); nothing to measure")
        return 0
    load = os.getloadavg()[0]
    q = smdra_quality(args.realdata / "smdra")
    n, seconds = import_speed(args.realdata / "trashnet", args.count, args.workers)
    lines = ["## Box-guided masks of `matseg data import` (`bench/import_masks.py`)", "", *machine_lines(),
             f"Load average {load:.1f} at the start.", "",
             f"SMDRA sample polygons given to GrabCut as boxes: {q['samples']} samples, "
             f"{q['unsure']} left unlabelled (GrabCut found no object).", "",
             "| of the masked samples | mean | median | 10th percentile |", "|---|---|---|---|"]
    for key in ("precision", "recall", "iou"):
        values = q[key]
        lines.append(f"| {key} | {values.mean():.3f} | {np.median(values):.3f} | {np.percentile(values, 10):.3f} |")
    lines += ["", f"TrashNet VOC import, {n} images of 512×384 with box-guided masks, {args.workers} workers: "
              f"{seconds:.1f} s, **{n / seconds:.1f} images/s** (goal ≥ 4, ratio {n / seconds / 4:.2f})."]
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
