"""`matseg data synthetic-mask`: masks for single-material photos on a white background.

Foreground is what differs from the background colour (estimated from the image border)
by more than a threshold; a closing fills pinholes, an opening drops specks; everything
not connected to the border through background is foreground (so white highlights
inside the object stay in it); components smaller than a fraction of the largest are
dropped. Every file is processed, and images that cannot be segmented (almost nothing
or almost everything in front of the background) are reported, not written.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from ..io.dataset_layout import IMAGE_EXTENSIONS, DatasetError, list_ids, read_rgb
from ..io.masks import write_mask
from ..materials import MaterialMap, MaterialsError, load_materials


def background_color(rgb: np.ndarray, band: int = 4) -> np.ndarray:
    """Median colour of the image border: the (near-)white backdrop."""
    border = np.concatenate([rgb[:band].reshape(-1, 3), rgb[-band:].reshape(-1, 3),
                             rgb[:, :band].reshape(-1, 3), rgb[:, -band:].reshape(-1, 3)])
    return np.median(border, axis=0)


def foreground(rgb: np.ndarray, threshold: float = 30.0, min_component: float = 0.05) -> np.ndarray:
    """Boolean H×W foreground mask of one object in front of a plain light backdrop."""
    h, w = rgb.shape[:2]
    diff = np.abs(rgb.astype(np.int16) - background_color(rgb).astype(np.int16)).max(axis=2)
    fg = (diff > threshold).astype(np.uint8)  # no blur before the threshold: it would grow the object
    k = max(3, int(round(min(h, w) / 100)) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel, iterations=2)
    fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
    # background = the non-foreground regions that touch the border (a flood fill from it)
    n, labels = cv2.connectedComponents(1 - fg, connectivity=4)
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    is_bg = np.zeros(n, bool)
    is_bg[touching] = True
    is_bg[0] = False  # label 0 is the foreground itself
    fg = (~is_bg[labels]).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros((h, w), bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, bool)
    keep[1:] = areas >= min_component * areas.max()
    return keep[labels]


def segment_folder(images: Path, output: Path, class_id: int, materials: MaterialMap,
                   threshold: float = 30.0, min_fraction: float = 0.01,
                   max_fraction: float = 0.98) -> tuple[list[str], list[tuple[str, str]]]:
    """Write `{stem}.png` masks (class colour on background); returns (written, [(file, why)])."""
    if not images.is_dir():
        raise DatasetError(f"{images}: --images folder not found")
    written, failed = [], []
    for stem in list_ids(images):
        path = next(images / f"{stem}{e}" for e in IMAGE_EXTENSIONS if (images / f"{stem}{e}").is_file())
        try:
            rgb = read_rgb(path)
        except DatasetError as exc:
            failed.append((str(path), str(exc).split(": ", 1)[-1]))
            continue
        fg = foreground(rgb, threshold)
        fraction = float(fg.mean())
        if not min_fraction <= fraction <= max_fraction:
            failed.append((str(path), f"foreground covers {100 * fraction:.1f}% of the image "
                                      f"(expected {100 * min_fraction:.0f}–{100 * max_fraction:.0f}%): "
                                      "no object on a plain light background?"))
            continue
        write_mask(output / f"{stem}.png", np.where(fg, class_id, 0).astype(np.uint8), materials)
        written.append(stem)
    return written, failed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--segClass", dest="seg_class", required=True, help="material name, e.g. fabric")
    parser.add_argument("--images", type=Path, required=True, help="folder of single-material photos")
    parser.add_argument("--output", type=Path, required=True, help="folder for the palette masks")
    parser.add_argument("--threshold", type=float, default=30.0,
                        help="colour difference from the background that counts as object (0..255, default 30)")
    parser.add_argument("--materials", type=Path, default=None, help="class map YAML (default: shipped)")


def run(args: argparse.Namespace) -> int:
    try:
        materials = load_materials(args.materials)
        by_lower = {m.name.lower(): m for m in materials}
        material = by_lower.get(args.seg_class.lower())
        if material is None:
            raise DatasetError(f"--segClass {args.seg_class!r} is not a class; classes: {', '.join(materials.names)}")
        written, failed = segment_folder(args.images, args.output, material.id, materials, args.threshold)
    except (DatasetError, MaterialsError) as exc:
        print(f"matseg data synthetic-mask: {exc}", file=sys.stderr)
        return 2
    print(f"{len(written)} masks written to {args.output}")
    if failed:
        print(f"{len(failed)} image(s) could not be segmented:", file=sys.stderr)
        for path, why in failed:
            print(f"  {path}: {why}", file=sys.stderr)
    return 1 if failed and not written else 0
