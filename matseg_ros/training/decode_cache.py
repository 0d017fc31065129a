"""Decoded training samples kept on disk, so the CPU trains instead of decoding every epoch.

A JPEG decode, a palette-PNG to class-id lookup and the first resize (longest side to
`base_size`) are the same for a sample in every epoch; on a 2-core machine the loader
worker doing them takes a core from the network. The cache keeps their result as an
uncompressed .npz per sample, keyed by both files' path, size and modification time and by
everything that shapes the result (resize, mask tolerance, ignored class, class colours),
so an edited image, mask or setting never reads a stale entry. The resize is albumentations'
own `LongestMaxSize` (as `transforms.train_transform` uses), so the cached pair is exactly
what that first step would have produced and the rest of the pipeline sees the same input.
Entries are written atomically; concurrent workers at worst write the same entry twice.
"""
from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Callable

import albumentations as A
import cv2
import numpy as np

from ..fileio import atomic_write_bytes

FORMAT = 1  # bump when the entry layout changes

Decoded = tuple[np.ndarray, np.ndarray, int]  # rgb uint8 H×W×3, ids uint8 H×W, unknown pixels


class DecodeCache:
    """`folder`: where entries live (shared by datasets and runs); `longest`: the longest
    side entries are resized to (None: decoded only); `tag`: whatever else changes the
    decoded pair (tolerance, ignored class, class colours)."""

    def __init__(self, folder: str | Path, longest: int | None, tag: str):
        self.folder = Path(folder)
        self.longest = longest
        self.tag = tag
        self._resize = (A.LongestMaxSize(max_size=longest, interpolation=cv2.INTER_LINEAR)
                        if longest else None)
        self.hits = 0
        self.misses = 0

    def key(self, image: Path, mask: Path) -> str:
        parts = [str(FORMAT), str(self.longest), self.tag]
        for path in (image, mask):
            stat = path.stat()
            parts += [str(path.resolve()), str(stat.st_size), str(stat.st_mtime_ns)]
        return hashlib.sha1("\0".join(parts).encode()).hexdigest()

    def get(self, image: Path, mask: Path, decode: Callable[[], Decoded]) -> Decoded:
        """The cached pair of (image, mask), made by `decode()` (then resized) on a miss."""
        key = self.key(image, mask)
        entry = self.folder / key[:2] / f"{key}.npz"
        if entry.is_file():
            try:
                with np.load(entry) as data:
                    self.hits += 1
                    return data["rgb"], data["ids"], int(data["unknown"])
            except (OSError, ValueError, KeyError, EOFError):
                pass  # a truncated or foreign file: rebuilt below
        rgb, ids, unknown = decode()
        if self._resize is not None:
            out = self._resize(image=rgb, mask=ids)
            rgb, ids = out["image"], out["mask"]
        self.misses += 1
        entry.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(entry, _npz_bytes(rgb=rgb, ids=ids, unknown=np.int64(unknown)))
        return rgb, ids, unknown


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def cache_tag(mask_tolerance: float, ignore_class: int | None, colours: list) -> str:
    """What besides the files shapes a decoded pair."""
    return f"tol={mask_tolerance}|ignore={ignore_class}|colours={colours}"
