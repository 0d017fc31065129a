"""Reading an organised PointCloud2 payload (segment_node's material cloud) into numpy arrays,
and surface normals from the organised grid, both vectorised with no per-point Python."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

# sensor_msgs/PointField datatype -> numpy format (little-endian)
FORMATS = {1: "i1", 2: "u1", 3: "<i2", 4: "<u2", 5: "<i4", 6: "<u4", 7: "<f4", 8: "<f8"}
FLOATS, INTEGERS = (7, 8), (1, 2, 3, 4, 5, 6)
REQUIRED = {"x": FLOATS, "y": FLOATS, "z": FLOATS, "label": INTEGERS}


class CloudError(ValueError):
    """A cloud that cannot be read; the message says what is wrong and what is expected."""


@dataclass(frozen=True)
class CloudArrays:
    """The cloud's grid: H x W x 3 float32 points (NaN invalid), H x W labels, H x W weights.
    read_cloud's points are a view of contiguous x, y, z planes (3 x H x W)."""

    points: np.ndarray
    labels: np.ndarray
    confidence: np.ndarray | None


def read_cloud(fields: Iterable[tuple[str, int, int, int]], height: int, width: int, point_step: int,
               row_step: int, data, is_bigendian: bool = False) -> CloudArrays:
    """x, y, z (float), label (integer) and, if present, confidence (float) of every point.

    `fields` are (name, offset, datatype, count) as in sensor_msgs/PointField; `data` is any
    buffer (the message's bytes are not copied). Missing or mistyped fields, a big-endian
    payload and a data length that does not match the layout raise CloudError.
    """
    by_name = {name: (offset, datatype, count) for name, offset, datatype, count in fields}
    if is_bigendian:
        raise CloudError("big-endian clouds are not supported; expected is_bigendian false")
    missing = [name for name in REQUIRED if name not in by_name]
    if missing:
        raise CloudError(f"missing field(s) {missing}; expected x, y, z (float32) and label (uint32), "
                         f"got {sorted(by_name)}")
    wanted = dict(REQUIRED, **({"confidence": FLOATS} if "confidence" in by_name else {}))
    names, formats, offsets = [], [], []
    for name, allowed in wanted.items():
        offset, datatype, count = by_name[name]
        if datatype not in allowed or count != 1:
            raise CloudError(f"field {name!r} has datatype {datatype} x{count}; expected one "
                             f"{'float' if allowed is FLOATS else 'integer'} (datatypes {list(allowed)})")
        if offset < 0 or offset + np.dtype(FORMATS[datatype]).itemsize > point_step:
            raise CloudError(f"field {name!r} at offset {offset} does not fit point_step {point_step}")
        names.append(name), formats.append(FORMATS[datatype]), offsets.append(offset)
    if height < 1 or width < 1 or row_step < width * point_step:
        raise CloudError(f"layout {width}x{height}, point_step {point_step}, row_step {row_step}: "
                         "expected row_step >= width * point_step and a non-empty grid")
    buffer = memoryview(data).cast("B")
    needed = row_step * (height - 1) + width * point_step
    if len(buffer) < needed:
        raise CloudError(f"data has {len(buffer)} bytes; the layout needs {needed}")
    dtype = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": point_step})
    grid = np.ndarray((height, width), dtype, buffer=buffer, strides=(row_step, point_step))
    planes = np.empty((3, height, width), np.float32)  # points is a view: integrate takes the planes as they are
    for k, name in enumerate("xyz"):
        planes[k] = grid[name]
    points = planes.transpose(1, 2, 0)
    bad = np.flatnonzero(~np.isfinite(planes[0] + planes[1] + planes[2]))
    planes.reshape(3, -1)[:, bad] = np.nan  # one NaN: all three (by index: a mask over H x W x 3 costs 4x)
    confidence = grid["confidence"].astype(np.float32) if "confidence" in wanted else None
    return CloudArrays(points, grid["label"].astype(np.int64), confidence)


def _difference(plane: np.ndarray, axis: int) -> np.ndarray:
    """Central differences along an axis (one-sided at the borders), unscaled: only the
    direction of the normal is wanted."""
    out = np.empty_like(plane)
    if plane.shape[axis] < 2:
        out.fill(np.nan)
        return out
    if axis == 1 and plane.flags.c_contiguous:  # one flat pass; the wrapped ends are the borders, set below
        np.subtract(plane.ravel()[2:], plane.ravel()[:-2], out=out.ravel()[1:-1])
    else:
        head, tail, mid = [slice(None)] * 2, [slice(None)] * 2, [slice(None)] * 2
        mid[axis], tail[axis], head[axis] = slice(1, -1), slice(2, None), slice(None, -2)
        np.subtract(plane[tuple(tail)], plane[tuple(head)], out=out[tuple(mid)])
    for edge, a, b in ((0, 1, 0), (-1, -1, -2)):
        index = [slice(None)] * 2
        ia, ib = list(index), list(index)
        index[axis], ia[axis], ib[axis] = edge, a, b
        out[tuple(index)] = (plane[tuple(ia)] - plane[tuple(ib)]) * 2
    return out


def area_normals(points: np.ndarray) -> np.ndarray:
    """H x W x 3 normals of an organised point grid, facing the sensor, each as long as the
    surface patch its point stands for (up to a constant factor); 0 where a neighbour is missing.

    The cross product of the grid's central differences (one-sided at the borders), on
    contiguous x, y, z planes. Left unit-less on purpose: summed over a voxel they average
    the normal weighted by area, and skipping a square root per point keeps the frame cheap.
    A depth image shows surfaces from their front, so dP/dv x dP/du faces the sensor
    everywhere except across depth edges, where the sums of a voxel outweigh it.
    """
    normals = np.empty(points.shape, np.float32)
    for k, n in enumerate(normal_planes([np.ascontiguousarray(points[..., k]) for k in range(3)])):
        normals[..., k] = n
    return normals


def normal_planes(planes: list[np.ndarray]) -> list[np.ndarray]:
    """`area_normals` of the grid's x, y, z planes (H x W each), as three H x W planes."""
    du = [_difference(p, 1) for p in planes]
    dv = [_difference(p, 0) for p in planes]
    out = []
    for a, b in ((1, 2), (2, 0), (0, 1)):
        n = dv[a] * du[b]
        n -= dv[b] * du[a]
        out.append(n)
    missing = np.flatnonzero(~np.isfinite(out[0] + out[1] + out[2]))  # a NaN neighbour: all three
    for n in out:
        n.ravel()[missing] = 0.0
    return out
