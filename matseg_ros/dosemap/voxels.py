"""A bounded surface voxel map: a sorted key index over rows that grow in chunks, with per
voxel the fused material scores, the summed normal, the mean point and the dose.

Keys pack the integer voxel coordinates (21 bits each, +-52 km at 5 cm) into one int64;
lookups are one `searchsorted` over the sorted keys, inserts one merge, so a frame's few
thousand voxels cost a few vectorised passes whatever the map's size.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..fileio import atomic_write_bytes

BITS = 21
OFFSET = 1 << (BITS - 1)
CHUNK = 65536
SCHEMA = "matseg/dose_map/1"
UNLABELLED = 255


class MapFileError(ValueError):
    """A map file that cannot be loaded into this map; the message names the file and why."""


def voxel_keys(points: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Packed int64 keys of the voxels holding N x 3 points, and which points are in range."""
    coords = np.floor(points / np.float32(size)).astype(np.int64)
    coords += OFFSET
    ok = ((coords >= 0) & (coords < 2 * OFFSET)).all(axis=1)
    keys = (coords[:, 0] << (2 * BITS)) | (coords[:, 1] << BITS) | coords[:, 2]
    return keys, ok


class VoxelMap:
    """At most `max_voxels` voxels of `voxel_size` metres; `classes` are the label ids' names."""

    def __init__(self, voxel_size: float, classes: Sequence[str], max_voxels: int) -> None:
        self.voxel_size = float(voxel_size)
        self.classes = tuple(classes)
        self.max_voxels = int(max_voxels)
        self.clear()

    def _empty(self, capacity: int) -> dict[str, np.ndarray]:
        c = len(self.classes)
        return {"key": np.zeros(capacity, np.int64), "scores": np.zeros((capacity, c), np.float32),
                "normal": np.zeros((capacity, 3), np.float32), "point": np.zeros((capacity, 3), np.float32),
                "count": np.zeros(capacity, np.float32), "dose": np.zeros(capacity, np.float64)}

    def clear(self) -> None:
        self.size = 0
        self.data = self._empty(0)
        self._sorted = np.zeros(0, np.int64)  # the keys, sorted
        self._order = np.zeros(0, np.int64)  # row of each sorted key

    def __len__(self) -> int:
        return self.size

    def column(self, name: str) -> np.ndarray:
        """The used rows of one per-voxel array (a view)."""
        return self.data[name][:self.size]

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.data.values()) + self._sorted.nbytes + self._order.nbytes

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key, -1 where the map has no such voxel."""
        at = np.searchsorted(self._sorted, keys)
        at_ok = np.minimum(at, max(self.size - 1, 0))
        found = (at < self.size) & (self._sorted[at_ok] == keys) if self.size else np.zeros(keys.shape, bool)
        return np.where(found, self._order[at_ok] if self.size else -1, -1)

    def rows_for(self, keys: np.ndarray) -> tuple[np.ndarray, int]:
        """Rows of distinct `keys`, adding the new ones while there is room; -1 for those
        that did not fit (the cap), and how many those were."""
        rows = self.lookup(keys)
        new = np.flatnonzero(rows < 0)
        room = self.max_voxels - self.size
        dropped = max(0, new.size - room)
        new = new[:room]
        if new.size:
            self._grow(self.size + new.size)
            added = np.arange(self.size, self.size + new.size)
            self.data["key"][added] = keys[new]
            rows[new] = added
            by_key = np.argsort(keys[new])  # np.insert keeps the given order of equal positions
            at = np.searchsorted(self._sorted, keys[new][by_key])
            self._sorted = np.insert(self._sorted, at, keys[new][by_key])
            self._order = np.insert(self._order, at, added[by_key])
            self.size += new.size
        return rows, dropped

    def _grow(self, needed: int) -> None:
        capacity = len(self.data["key"])
        if needed <= capacity:
            return
        capacity = min(self.max_voxels, max(needed, capacity * 2, CHUNK))
        grown = self._empty(capacity)
        for name, array in self.data.items():
            grown[name][:self.size] = array[:self.size]
        self.data = grown

    def observe(self, rows: np.ndarray, inverse: np.ndarray, points: np.ndarray, normals: np.ndarray,
                labels: np.ndarray, weights: np.ndarray) -> None:
        """Fuse one view: point i fell in voxel rows[inverse[i]] (all rows >= 0). Labels
        outside the class map add no score; the voxel still exists (and takes dose)."""
        m, c = rows.size, len(self.classes)
        known = (labels >= 0) & (labels < c)
        score = np.bincount(inverse[known] * c + labels[known], weights=weights[known], minlength=m * c)
        self.data["scores"][rows] += score.reshape(m, c).astype(np.float32)
        count = np.bincount(inverse, minlength=m).astype(np.float32)
        total = self.data["count"][rows] + count
        for k in range(3):
            self.data["normal"][rows, k] += np.bincount(inverse, normals[:, k], m).astype(np.float32)
            mean = np.bincount(inverse, points[:, k], m) / count  # running mean: float32 stays precise
            self.data["point"][rows, k] += (mean - self.data["point"][rows, k]) * (count / total)
        self.data["count"][rows] = total

    def labels(self) -> np.ndarray:
        """The fused class id of every voxel: highest summed score; UNLABELLED where none."""
        scores = self.column("scores")
        labels = np.argmax(scores, axis=1).astype(np.uint32) if len(self.classes) else np.zeros(self.size, np.uint32)
        labels[~(scores.max(axis=1, initial=0) > 0)] = UNLABELLED
        return labels

    def unit_normals(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        normal = self.column("normal")[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            return normal / np.linalg.norm(normal, axis=-1, keepdims=True)

    def areas(self) -> np.ndarray:
        """m^2 of surface per voxel: a plane with unit normal n crosses |nx|+|ny|+|nz| voxels
        per voxel face area, so each stands for size^2 / (|nx|+|ny|+|nz|)."""
        spread = np.abs(self.unit_normals()).sum(axis=1)
        spread[~np.isfinite(spread)] = 1.0
        return (self.voxel_size ** 2) / np.maximum(spread, 1.0)

    def save(self, path: str | Path) -> None:
        """One .npz, written atomically, with the schema, voxel size and class names."""
        buffer = io.BytesIO()
        np.savez(buffer, schema=np.array(SCHEMA), voxel_size=np.array(self.voxel_size),
                 classes=np.array(self.classes, dtype=str),
                 **{name: self.column(name) for name in self.data})
        atomic_write_bytes(path, buffer.getvalue())

    def load(self, path: str | Path) -> None:
        """Replace the map by a saved one; MapFileError (map unchanged) when it does not fit."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, EOFError) as exc:
            raise MapFileError(f"{path}: cannot read a dose map: {exc}") from None
        expected = self._empty(0)
        missing = sorted({"schema", "voxel_size", "classes", *expected} - set(arrays))
        if missing:
            raise MapFileError(f"{path}: not a dose map file: missing {missing}")
        if str(arrays["schema"]) != SCHEMA:
            raise MapFileError(f"{path}: schema {str(arrays['schema'])!r}; expected {SCHEMA!r}")
        if not np.isclose(float(arrays["voxel_size"]), self.voxel_size):
            raise MapFileError(f"{path}: voxel size {float(arrays['voxel_size']):g} m; this map's voxel_size "
                               f"is {self.voxel_size:g} m")
        if tuple(arrays["classes"].tolist()) != self.classes:
            raise MapFileError(f"{path}: classes {arrays['classes'].tolist()}; this map's are {list(self.classes)}")
        n = len(arrays["key"])
        for name, empty in expected.items():
            got = arrays[name]
            if got.dtype != empty.dtype or got.shape != (n,) + empty.shape[1:]:
                raise MapFileError(f"{path}: {name} is {got.dtype} {got.shape}; expected {empty.dtype} "
                                   f"{(n,) + empty.shape[1:]}")
        if n > self.max_voxels:
            raise MapFileError(f"{path}: {n} voxels; max_voxels is {self.max_voxels}")
        order = np.argsort(arrays["key"], kind="stable")
        ordered = arrays["key"][order]
        if n and (np.diff(ordered) == 0).any():
            raise MapFileError(f"{path}: repeated voxel keys")
        if not all(np.isfinite(arrays[name]).all() for name in ("scores", "normal", "point", "count", "dose")):
            raise MapFileError(f"{path}: NaN or infinite values")
        self.clear()
        self._grow(n)
        for name in expected:
            self.data[name][:n] = arrays[name]
        self.size, self._sorted, self._order = n, ordered, order.astype(np.int64)
