"""Class-id masks from imported shapes: exact regions for polygons, RLE, circles and masks;
GrabCut, initialised from the box, for box and image-level labels.

Everything no shape covers is 255 (ignore): an annotation says what its regions are, not
what the rest of the image is. A box says only roughly where its object is, so only the
GrabCut foreground shrunk by an uncertainty band gets the class; the band, the rest of
the box and a GrabCut result that found almost nothing stay 255.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

import cv2
import numpy as np
import pycocotools.mask as coco_mask

from ...materials import IGNORE_INDEX
from .formats import AnnotationError, Shape


@dataclass(frozen=True)
class BoxSettings:
    """GrabCut on a copy scaled to `work_size` (its longest side): 4-9× faster than full size
    and as good for a mask whose edge becomes an ignore band anyway."""
    work_size: int = 256
    iterations: int = 4
    band: float = 0.03          # uncertainty band: this fraction of the box's shorter side
    min_band: int = 2           # pixels
    min_foreground: float = 0.05  # GrabCut foreground below this fraction of the box: unsure


def polygon_region(rings: list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO's own rasterisation (pycocotools), so an imported mask equals what COCO tools draw."""
    rles = coco_mask.frPyObjects(rings, height, width)
    return coco_mask.decode(coco_mask.merge(rles)).astype(bool)


def rle_region(rle: dict, height: int, width: int, where: str) -> np.ndarray:
    counts = rle["counts"]
    try:
        if isinstance(counts, list):  # uncompressed RLE
            rle = coco_mask.frPyObjects(rle, height, width)
        elif isinstance(counts, str):
            rle = {"size": rle["size"], "counts": counts.encode("ascii")}
        return coco_mask.decode(rle).astype(bool)
    except Exception as exc:  # pycocotools raises bare errors on corrupt counts
        raise AnnotationError(f"{where}: corrupt RLE: {exc}") from None


def labelme_mask_region(data: tuple, height: int, width: int, where: str) -> np.ndarray:
    x0, y0, encoded = data
    raw = np.frombuffer(base64.b64decode(encoded, validate=False), np.uint8)
    mask = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE) if raw.size else None
    if mask is None:
        raise AnnotationError(f"{where}: 'mask' is not a base64 PNG")
    x0, y0 = int(round(x0)), int(round(y0))
    region = np.zeros((height, width), bool)
    h, w = mask.shape
    if x0 < 0 or y0 < 0 or x0 + w > width or y0 + h > height:
        raise AnnotationError(f"{where}: mask at ({x0}, {y0}) of {w}x{h} extends outside the {width}x{height} image")
    region[y0:y0 + h, x0:x0 + w] = mask > 0
    return region


def fill_holes(fg: np.ndarray) -> np.ndarray:
    """Background pockets enclosed by the object (the board seen through a bottle) join it."""
    n, labels = cv2.connectedComponents((~fg).astype(np.uint8), connectivity=4)
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.zeros(n, bool)
    outside[touching] = True
    return fg | ~outside[labels]


def box_foreground(rgb: np.ndarray, box: tuple[float, float, float, float],
                   settings: BoxSettings = BoxSettings()) -> tuple[np.ndarray, bool]:
    """(the pixels sure to be the box's object, whether GrabCut found an object at all).

    Outside the box is background to GrabCut. Where the box leaves (almost) no image
    outside it, a thin band along its edges seeds the background model as 'probably
    background', which GrabCut may still take into the object."""
    h, w = rgb.shape[:2]
    scale = min(1.0, settings.work_size / max(h, w))
    sh, sw = max(8, round(h * scale)), max(8, round(w * scale))
    small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    x0, y0, x1, y1 = box
    bx0, by0 = int(np.clip(np.floor(x0 * sw / w), 0, sw - 1)), int(np.clip(np.floor(y0 * sh / h), 0, sh - 1))
    bx1, by1 = int(np.clip(np.ceil(x1 * sw / w), bx0 + 1, sw)), int(np.clip(np.ceil(y1 * sh / h), by0 + 1, sh))
    init = np.full((sh, sw), cv2.GC_BGD, np.uint8)
    init[by0:by1, bx0:bx1] = cv2.GC_PR_FGD
    if np.count_nonzero(init == cv2.GC_BGD) < 0.05 * sh * sw:
        edge = max(2, round(0.05 * min(bx1 - bx0, by1 - by0)))
        band = np.zeros_like(init, bool)
        band[by0:by1, bx0:bx1] = True
        band[by0 + edge:by1 - edge, bx0 + edge:bx1 - edge] = False
        init[band] = cv2.GC_PR_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(small[..., ::-1])
    cv2.grabCut(bgr, init, None, bgd, fgd, settings.iterations, cv2.GC_INIT_WITH_MASK)
    fg_small = np.isin(init, (cv2.GC_FGD, cv2.GC_PR_FGD))
    box_area = (bx1 - bx0) * (by1 - by0)
    if fg_small.sum() < settings.min_foreground * box_area:
        return np.zeros((h, w), bool), False
    fg_small = fill_holes(fg_small)
    fg = cv2.resize(fg_small.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    clip = np.zeros((h, w), bool)
    clip[max(0, int(np.floor(y0))):int(np.ceil(y1)), max(0, int(np.floor(x0))):int(np.ceil(x1))] = True
    fg &= clip
    r = max(settings.min_band, round(settings.band * min(x1 - x0, y1 - y0)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode(fg.astype(np.uint8), kernel).astype(bool), True


def render(shapes: list[Shape], rgb: np.ndarray, values: dict[str, int], crowd_ignore: bool = True,
           box: BoxSettings = BoxSettings()) -> tuple[np.ndarray, int]:
    """uint8 ids (255 where unlabelled) from shapes in drawing order -> (ids, boxes GrabCut gave up on).

    `values`: category -> class id, or IGNORE_INDEX for categories mapped to ignore."""
    h, w = rgb.shape[:2]
    ids = np.full((h, w), IGNORE_INDEX, np.uint8)
    unsure = 0
    for shape in shapes:
        value = IGNORE_INDEX if (shape.crowd and crowd_ignore) else values[shape.category]
        if shape.kind == "polygon":
            region = polygon_region(shape.data, h, w)
        elif shape.kind == "rle":
            region = rle_region(shape.data, h, w, shape.where)
        elif shape.kind == "circle":
            cx, cy, r = shape.data
            disc = np.zeros((h, w), np.uint8)
            cv2.circle(disc, (int(round(cx)), int(round(cy))), int(round(r)), 1, thickness=-1)
            region = disc.astype(bool)
        elif shape.kind == "mask":
            region = labelme_mask_region(shape.data, h, w, shape.where)
        elif shape.kind in ("box", "image"):
            corners = shape.data if shape.kind == "box" else (0.0, 0.0, float(w), float(h))
            if value == IGNORE_INDEX:
                x0, y0, x1, y1 = (int(round(v)) for v in corners)
                ids[max(0, y0):y1, max(0, x0):x1] = IGNORE_INDEX
                continue
            region, found = box_foreground(rgb, corners, box)
            unsure += not found
        else:
            raise AnnotationError(f"{shape.where}: unknown shape kind {shape.kind!r}")
        ids[region] = value
    return ids, unsure
