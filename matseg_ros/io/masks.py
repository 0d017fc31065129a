"""Segmentation masks on disk: palette-colour PNGs and single-channel id PNGs.

Palette masks are decoded to the nearest class colour within a tolerance, so the
anti-aliased edges annotation tools draw are not silently turned into background;
colours farther than the tolerance from every class become IGNORE_INDEX and are counted.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_path
from ..materials import IGNORE_INDEX, MaterialMap

DEFAULT_TOLERANCE = 40.0  # Euclidean RGB distance; HRIM2021 colours are >= 60 apart
VOID_COLOR = (224, 224, 192)  # Pascal VOC's "void": how palette PNGs store IGNORE_INDEX


class MaskError(ValueError):
    """An unreadable or unusable mask file; the message names the file."""


def decode_mask(mask: np.ndarray, materials: MaterialMap,
                tolerance: float = DEFAULT_TOLERANCE) -> tuple[np.ndarray, int]:
    """Class ids (uint8 H×W) and the number of pixels of unknown value that became IGNORE_INDEX.

    A 2-D array holds ids already, of any integer type (255 stays ignore; values that are no
    class id, negative ones included, become ignore). An H×W×3 (or ×4) array is RGB: each
    distinct colour maps to the nearest class colour if it lies within `tolerance`, else to
    ignore. Ignore stored on purpose (255 ids, the VOID_COLOR of palette masks) is not
    counted: the count is what a user should look at.
    """
    if mask.ndim == 2:
        ids = mask
        valid = np.zeros(max(256, int(ids.max(initial=0)) + 1), dtype=bool)
        valid[materials.ids] = True
        if ids.dtype == np.uint8:
            known = valid[ids]
        else:  # 16/32-bit id PNGs: any value, class ids above or below the largest present
            in_range = ids >= 0
            known = valid[np.where(in_range, ids, 0)] & in_range
        unknown = ~known & (ids != IGNORE_INDEX)
        out = np.where(known, ids, IGNORE_INDEX).astype(np.uint8)
        return out, int(unknown.sum())
    if mask.ndim != 3 or mask.shape[2] not in (3, 4):
        raise MaskError(f"mask must be H×W ids or H×W×3 RGB, got shape {mask.shape}")
    rgb = np.ascontiguousarray(mask[..., :3]).astype(np.uint32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colors, inverse = np.unique(packed.ravel(), return_inverse=True)
    unique_rgb = np.stack([(colors >> 16) & 255, (colors >> 8) & 255, colors & 255], axis=1)
    palette = materials.colors().astype(np.float32)
    dist = np.linalg.norm(unique_rgb[:, None, :].astype(np.float32) - palette[None], axis=2)
    nearest = dist.argmin(axis=1)
    lut = np.where(dist[np.arange(len(colors)), nearest] <= tolerance,
                   np.array(materials.ids, dtype=np.uint8)[nearest], IGNORE_INDEX).astype(np.uint8)
    ids = lut[inverse].reshape(packed.shape)
    void = (VOID_COLOR[0] << 16) | (VOID_COLOR[1] << 8) | VOID_COLOR[2]
    unknown = (lut == IGNORE_INDEX) & (colors != void)
    return ids, int(np.bincount(inverse.ravel(), minlength=len(colors))[unknown].sum())


def read_mask(path: str | Path, materials: MaterialMap,
              tolerance: float = DEFAULT_TOLERANCE) -> tuple[np.ndarray, int]:
    """Read a mask PNG (palette RGB, or single-channel/indexed ids) -> (ids, ignored count)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("P", "L", "I", "I;16"):
                array = np.asarray(img)
            else:
                array = np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise MaskError(f"{path}: mask file not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise MaskError(f"{path}: cannot read mask: {exc}") from None
    try:
        return decode_mask(array, materials, tolerance)
    except MaskError as exc:
        raise MaskError(f"{path}: {exc}") from None


def write_mask(path: str | Path, ids: np.ndarray, materials: MaterialMap, palette: bool = True) -> None:
    """Write ids as an RGB palette PNG (the HRIM2021 convention) or as an id PNG, atomically.

    In palette PNGs ignored pixels get VOID_COLOR, which reads back as IGNORE_INDEX
    (black would read back as background)."""
    if ids.ndim != 2 or ids.dtype != np.uint8:
        raise MaskError(f"{path}: ids must be a uint8 H×W array, got {ids.dtype} {ids.shape}")
    if palette:
        lut = materials.palette_lut()
        lut[IGNORE_INDEX] = VOID_COLOR
        image = lut[ids][..., ::-1]
    else:
        image = ids
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise MaskError(f"{path}: could not write PNG")
