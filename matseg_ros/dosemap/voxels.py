"""A bounded surface voxel map: a sorted key index over rows that grow in chunks, with per
voxel the fused material scores, the summed normal, the mean point and the dose.

Keys pack the integer voxel coordinates (21 bits each, +-52 km at 5 cm) into one int64.
The index is two sorted key arrays: the whole map, and the voxels added since its last
merge (at most RECENT). Lookups are a `searchsorted` in each; new voxels are inserted into
the small one, which is merged into the big one when full, so a frame that discovers
surfaces costs O(RECENT), not a copy of the whole index.
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
RECENT = 32768
SCHEMA = "matseg/dose_map/1"
UNLABELLED = 255


class MapFileError(ValueError):
    """A map file that cannot be loaded into this map; the message names the file and why."""


def voxel_keys(points: np.ndarray, size: float) -> tuple[np.ndarray, np.ndarray]:
    """Packed int64 keys of the voxels holding N x 3 points, and which points are in range."""
    coords = np.floor(points * np.float32(1 / size)).astype(np.int64)
    coords += OFFSET
    if coords.size and (coords.min() < 0 or coords.max() >= 2 * OFFSET):
        ok = ((coords >= 0) & (coords < 2 * OFFSET)).all(axis=1)
        coords[~ok] = 0
    else:  # the usual case, checked in two reductions instead of a mask per point
        ok = np.ones(len(coords), bool)
    keys = coords[:, 0] << (2 * BITS)
    keys |= coords[:, 1] << BITS
    keys |= coords[:, 2]
    return keys, ok


def group(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, distinct keys, where each key's run starts in keys[order]): one argsort,
    and per-voxel sums by np.add.reduceat, cheaper than np.unique's inverse and bincounts."""
    order = np.argsort(keys)
    ordered = keys[order]
    first = np.empty(len(keys), bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    return order, ordered[starts], starts


def group_points(x: np.ndarray, y: np.ndarray, z: np.ndarray, size: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`group(voxel_keys(points))` of points given as three coordinate arrays, and which
    points are in range: (order, distinct keys, run starts in keys[order], in_range).

    The voxel coordinates are numbered inside the frame's bounding box and packed above the
    point index into one int64, so a plain `np.sort` (vectorised, ~3x an int64 argsort)
    gives the order, stable within a voxel. Bounding boxes too large to pack, and points
    out of the key range, take voxel_keys and group.
    """
    n = len(x)
    scale = np.float32(1 / size)
    cells = [np.multiply(c, scale) for c in (x, y, z)]  # the same float32 arithmetic as voxel_keys
    for c in cells:
        np.floor(c, out=c)
    lo = [float(c.min(initial=np.inf)) for c in cells]
    hi = [float(c.max(initial=-np.inf)) for c in cells]
    index_bits = max(1, int(n).bit_length())
    spans = [h - l + 1 for l, h in zip(lo, hi)]
    if n == 0 or not all(-OFFSET <= l and h < OFFSET for l, h in zip(lo, hi)) or \
            sum(int(s).bit_length() for s in spans) + index_bits > 62:
        keys, in_range = voxel_keys(np.stack([x, y, z], axis=1), size)
        if not in_range.all():
            order, unique, starts = group(keys[in_range])
        else:
            order, unique, starts = group(keys)
        return order, unique, starts, in_range
    for c, l in zip(cells, lo):
        c -= np.float32(l)  # exact: integers below 2^22
    cx, cy, cz = (c.astype(np.int32) for c in cells)
    sy, sz = int(spans[1]), int(spans[2])
    packed = np.multiply(cx, np.int64(sy * sz << index_bits))
    packed += np.multiply(cy, np.int64(sz << index_bits))
    packed += np.multiply(cz, np.int64(1 << index_bits))
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    order = packed & ((1 << index_bits) - 1)
    packed >>= index_bits  # each point's voxel number in the box, ascending
    first = np.empty(n, bool)
    first[:1] = True
    np.not_equal(packed[1:], packed[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    box = packed[starts]
    ux, rest = np.divmod(box, sy * sz)
    uy, uz = np.divmod(rest, sz)  # box order is key order: both are x-major, then y, then z
    unique = (ux + int(lo[0]) + OFFSET) << (2 * BITS)
    unique |= (uy + int(lo[1]) + OFFSET) << BITS
    unique |= uz + int(lo[2]) + OFFSET
    return order, unique, starts, np.ones(n, bool)


def _put_rows(array: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
    """array[rows] = values for a C-contiguous 2-D array, each row copied as one record."""
    width = array.shape[1] * array.itemsize
    if width:
        record = np.dtype((np.void, width))
        array.view(record)[:, 0][rows] = np.ascontiguousarray(values, array.dtype).view(record)[:, 0]


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
        self._index(np.zeros(0, np.int64), np.zeros(0, np.int64))

    def _index(self, keys: np.ndarray, rows: np.ndarray) -> None:
        """The big index: sorted keys and the row of each; the recent one emptied."""
        self._sorted, self._order = keys, rows
        self._recent, self._recent_rows = np.zeros(0, np.int64), np.zeros(0, np.int64)

    def __len__(self) -> int:
        return self.size

    def column(self, name: str) -> np.ndarray:
        """The used rows of one per-voxel array (a view)."""
        return self.data[name][:self.size]

    def nbytes(self) -> int:
        index = (self._sorted, self._order, self._recent, self._recent_rows)
        return sum(a.nbytes for a in self.data.values()) + sum(a.nbytes for a in index)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key, -1 where the map has no such voxel."""
        rows = np.full(keys.shape, -1, np.int64)
        for index, index_rows in ((self._sorted, self._order), (self._recent, self._recent_rows)):
            if len(index):
                at = np.minimum(np.searchsorted(index, keys), len(index) - 1)
                found = index[at] == keys
                rows[found] = index_rows[at[found]]
        return rows

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
            fresh = keys[new]
            added = np.arange(self.size, self.size + new.size)
            self.data["key"][self.size:self.size + new.size] = fresh
            rows[new] = added
            self.size += new.size
            if fresh.size > 1 and not (fresh[1:] >= fresh[:-1]).all():  # integrate's keys come sorted
                by_key = np.argsort(fresh)  # np.insert keeps the given order of equal positions
                fresh, added = fresh[by_key], added[by_key]
            at = np.searchsorted(self._recent, fresh)
            self._recent = np.insert(self._recent, at, fresh)
            self._recent_rows = np.insert(self._recent_rows, at, added)
            if len(self._recent) > RECENT:
                at = np.searchsorted(self._sorted, self._recent)  # both sorted: one O(N) merge
                self._index(np.insert(self._sorted, at, self._recent), np.insert(self._order, at, self._recent_rows))
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

    def observe(self, rows: np.ndarray, counts: np.ndarray, point_sums: np.ndarray, normal_sums: np.ndarray,
                scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fuse one view's per-voxel sums into rows `rows`: `counts` points summing to
        `point_sums` and `normal_sums`, and their label `scores` (M x classes). Returns the
        rows' new mean points and summed normals (copies)."""
        data = self.data  # np.take and row records: ~2x faster than [rows] on N x 3 and N x classes
        counts = counts.astype(np.float32)
        total = np.take(data["count"], rows) + counts
        point = np.take(data["point"], rows, axis=0)
        point += (point_sums / counts[:, None] - point) * (counts / total)[:, None]  # a running mean
        _put_rows(data["point"], rows, point)
        normal = np.take(data["normal"], rows, axis=0)
        normal += normal_sums.astype(np.float32)
        _put_rows(data["normal"], rows, normal)
        fused = np.take(data["scores"], rows, axis=0)
        fused += scores.astype(np.float32)
        _put_rows(data["scores"], rows, fused)
        data["count"][rows] = total
        return point, normal

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
        self.size = n
        self._index(ordered, order.astype(np.int64))
