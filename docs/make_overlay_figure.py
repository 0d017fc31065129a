"""Before/after figure: photographs, then each model's overlay, one row per photograph.

    python docs/make_overlay_figure.py --before OLD.onnx [--after models/default.onnx]
        [--photos skimage | --photos a.jpg b.jpg ...] [--output docs/images/before_after.jpg]

`--photos skimage` uses scikit-image's bundled sample photographs (free to publish);
photographs of ../shared/realdata may be passed by path, but a figure made from them stays
out of the repository (write it under demo_out/, which git ignores).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from matseg_ros.fileio import atomic_path
from matseg_ros.runtime.engine import load_engine
from matseg_ros.runtime.rendering import colorize, overlay

from _figures import legend

SKIMAGE_PHOTOS = ("coffee", "rocket", "astronaut")
CELL = (240, 320)  # height, width of each picture in the figure


def _photos(names: list[str]) -> list[tuple[str, np.ndarray]]:
    if names == ["skimage"]:
        import skimage.data as samples
        return [(name, getattr(samples, name)()) for name in SKIMAGE_PHOTOS]
    photos = []
    for name in names:
        bgr = cv2.imread(name)
        if bgr is None:
            raise SystemExit(f"{name}: not a readable image")
        photos.append((Path(name).name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
    return photos


def _cell(rgb: np.ndarray, caption: str) -> np.ndarray:
    """`rgb` letterboxed into CELL with `caption` on a white strip above it."""
    height, width = CELL
    scale = min(height / rgb.shape[0], width / rgb.shape[1])
    small = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                       interpolation=cv2.INTER_AREA)
    cell = np.full((height + 22, width, 3), 255, np.uint8)
    y0, x0 = 22 + (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    cell[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    cv2.putText(cell, caption, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="the earlier model file")
    parser.add_argument("--after", default="models/default.onnx", help="the later model file")
    parser.add_argument("--labels", nargs=2, default=("before", "after"), metavar=("BEFORE", "AFTER"))
    parser.add_argument("--photos", nargs="+", default=["skimage"])
    parser.add_argument("--alpha", type=float, default=0.55)
    parser.add_argument("--output", type=Path, default=Path("docs/images/before_after.jpg"))
    args = parser.parse_args()
    engines = [load_engine(args.before, device="cpu"), load_engine(args.after, device="cpu")]
    materials = engines[1].classes
    lut = materials.palette_lut()
    rows = []
    for name, rgb in _photos(args.photos):
        cells = [_cell(rgb, name)]
        for label, engine in zip(args.labels, engines):
            ids, _ = engine.predict(rgb)
            cells.append(_cell(overlay(rgb, colorize(ids, lut), args.alpha, ids), label))
        rows.append(np.hstack(cells))
    figure = np.vstack(rows)
    figure = np.vstack([figure, legend(materials, figure.shape[1], background=False)])
    with atomic_path(args.output) as tmp:
        if not cv2.imwrite(str(tmp), figure[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88]):
            raise SystemExit(f"{args.output}: could not write JPEG")
    print(args.output)


if __name__ == "__main__":
    main()
