"""Depth images to metric geometry: pinhole back-projection, surface areas and point clouds.

Everything is in the camera optical frame (x right, y down, z forward), in metres and
float32, and vectorised over the image: the node runs it on every frame. Invalid depth is
NaN from `depth_to_metres` on. No ROS import: `cloud_fields` describes the PointCloud2
layout as plain tuples for the node to turn into PointField messages.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import cv2
import numpy as np

# A point-map derivative longer than this many fronto-parallel footprints is taken to cross
# a depth edge (one object in front of another), not a tilted surface: 10 allows tilts up
# to about 84 degrees from facing the camera before the area falls back to the footprint.
DISCONTINUITY_FACTOR = 10.0
# Depth slopes are differences over +-this many full-size pixels (+-1 kept pixel at strides
# from 4 on): depth noise over +-1 pixel reads as tilt and inflates areas (2 mm of noise at
# 2 m: +13 % at +-1 pixel, +1 % at +-4; bench and docs/disinfection.md), and 4 pixels of a
# plane are still flat enough that the wider reach costs < 0.1 % on tilted planes.
SLOPE_REACH_PX = 4

MILLIMETRE_ENCODINGS = ("16UC1", "mono16")
METRE_ENCODINGS = ("32FC1",)
DEPTH_ENCODINGS = MILLIMETRE_ENCODINGS + METRE_ENCODINGS

# sensor_msgs/PointField datatypes and the point layout of the published cloud
FLOAT32, UINT32 = 7, 6
_FIELDS = (("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("rgb", 12, FLOAT32),
           ("label", 16, UINT32), ("confidence", 20, FLOAT32))
POINT_STEP = 24
CLOUD_DTYPE = np.dtype({"names": [f[0] for f in _FIELDS], "offsets": [f[1] for f in _FIELDS],
                        "formats": ["<u4" if f[2] == UINT32 else "<f4" for f in _FIELDS],
                        "itemsize": POINT_STEP})


class DepthError(ValueError):
    """Depth or calibration that cannot be used; the message says what and what is expected."""


def _number(value: Any, name: str, positive: bool) -> float:
    value = value.item() if isinstance(value, np.generic) else value  # "nan", not "np.float64(nan)"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DepthError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or (positive and number <= 0):
        want = "a positive finite number" if positive else "a finite number"
        raise DepthError(f"{name} must be {want}, got {value!r}")
    return number


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: focal lengths and principal point in pixels, image size."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, _number(getattr(self, name), name, name in ("fx", "fy")))
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(_number(value, name, True)) != value:
                raise DepthError(f"{name} must be a positive whole number of pixels, got {value!r}")
            object.__setattr__(self, name, int(value))

    @classmethod
    def from_camera_info(cls, msg: Any, source: str = "camera_info") -> "Intrinsics":
        """From a sensor_msgs/CameraInfo-like object (`k`, or ROS 1's `K`, row-major)."""
        k = getattr(msg, "k", None)
        if k is None:
            k = getattr(msg, "K", None)
        if k is None:
            raise DepthError(f"{source}: no intrinsic matrix; expected a 'k' (or 'K') field of 9 values")
        try:
            k = np.asarray(k, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DepthError(f"{source}: K must be 9 numbers (row-major 3x3), got {k!r}") from None
        if k.size != 9:
            raise DepthError(f"{source}: K must have 9 values (row-major 3x3), got {k.size}")
        if not k.any():
            raise DepthError(f"{source}: K is all zeros: the camera is not calibrated")
        try:
            return cls(k[0], k[4], k[2], k[5], getattr(msg, "width", None), getattr(msg, "height", None))
        except DepthError as exc:
            raise DepthError(f"{source}: {exc}") from None

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """The same camera for the image resized to width x height (pixel centres stay put)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, width, height)


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """H x W float32 metres, NaN where the sensor has no reading.

    16UC1/mono16 are millimetres with 0 = no reading; 32FC1 is metres where NaN, inf and
    values <= 0 mean no reading.
    """
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise DepthError(f"depth image must be H x W, got shape {depth.shape}")
    if encoding in MILLIMETRE_ENCODINGS:
        if depth.dtype != np.uint16:
            raise DepthError(f"{encoding} depth must be uint16 millimetres, got {depth.dtype}")
        metres = np.divide(depth, np.float32(1000.0), dtype=np.float32)
        metres[depth == 0] = np.nan
        return metres
    if encoding in METRE_ENCODINGS:
        if depth.dtype.kind != "f":
            raise DepthError(f"{encoding} depth must be floating-point metres, got {depth.dtype}")
        metres = depth.astype(np.float32, copy=True)
        metres[~((metres > 0) & (metres < np.inf))] = np.nan
        return metres
    raise DepthError(f"depth encoding {encoding!r} is not supported; expected one of {list(DEPTH_ENCODINGS)}")


def block_average(depth_m: np.ndarray, intr: Intrinsics, factor: int) -> tuple[np.ndarray, Intrinsics]:
    """The depth image shrunk by `factor`, each pixel the mean of the valid depths of its
    factor x factor block (NaN where none is valid), and the intrinsics of that image.

    Geometry on the result treats each block as one pixel at the block's centre: unlike
    keeping every factor-th pixel, it does not shift samples to the blocks' corners (which
    biases areas on tilted surfaces). Rows and columns beyond the last whole block are left out.
    """
    factor = _check_stride(factor)
    depth_m = np.asarray(depth_m, np.float32)
    if depth_m.shape != (intr.height, intr.width):
        raise DepthError(f"depth image is {depth_m.shape[::-1]} (W, H) but the intrinsics are for "
                         f"{(intr.width, intr.height)}")
    h, w = depth_m.shape[0] // factor, depth_m.shape[1] // factor
    if h == 0 or w == 0:
        raise DepthError(f"depth image {depth_m.shape[::-1]} (W, H) is smaller than one {factor}x{factor} block")
    crop = depth_m[:h * factor, :w * factor]
    valid = np.isfinite(crop)
    # block means of the depths and of the valid flags (cv2's area resampling at a whole
    # factor is exactly the block mean, ~10x faster than numpy's reshape-and-sum)
    total = cv2.resize(np.where(valid, crop, np.float32(0)), (w, h), interpolation=cv2.INTER_AREA)
    count = cv2.resize(valid.view(np.uint8).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count  # 0/0 -> NaN: no valid pixel in the block
    cropped = Intrinsics(intr.fx, intr.fy, intr.cx, intr.cy, w * factor, h * factor)
    return mean, cropped.scaled(w, h)


def block_labels(ids: np.ndarray, factor: int) -> np.ndarray:
    """The class id at (about) the centre of each block of `block_average`'s grid."""
    factor = _check_stride(factor)
    h, w = ids.shape[0] // factor, ids.shape[1] // factor
    return ids[factor // 2::factor, factor // 2::factor][:h, :w]


def _check_stride(stride: int) -> int:
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise DepthError(f"stride must be a whole number >= 1, got {stride!r}")
    return int(stride)


def _rays(intr: Intrinsics, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """x/z of the kept columns and y/z of the kept rows (float32)."""
    ray_x = (np.arange(0, intr.width, stride, dtype=np.float64) - intr.cx) / intr.fx
    ray_y = (np.arange(0, intr.height, stride, dtype=np.float64) - intr.cy) / intr.fy
    return ray_x.astype(np.float32), ray_y.astype(np.float32)


def back_project(depth_m: np.ndarray, intr: Intrinsics, stride: int = 1) -> np.ndarray:
    """The organised point map: H' x W' x 3 float32, NaN where the depth is NaN.

    With a stride, point [i, j] is pixel (u, v) = (stride * j, stride * i), the pixels that
    `image[::stride, ::stride]` keeps, so colours and labels line up with the same slicing.
    """
    stride = _check_stride(stride)
    depth_m = np.asarray(depth_m)
    if depth_m.shape != (intr.height, intr.width):
        raise DepthError(f"depth image is {depth_m.shape[::-1]} (W, H) but the intrinsics are for "
                         f"{(intr.width, intr.height)}; use Intrinsics.scaled() for a resized image")
    z = depth_m[::stride, ::stride]
    ray_x, ray_y = _rays(intr, stride)
    points = np.empty(z.shape + (3,), np.float32)
    np.multiply(z, ray_x[None, :], out=points[..., 0])
    np.multiply(z, ray_y[:, None], out=points[..., 1])
    points[..., 2] = z
    return points


def valid_points(points: np.ndarray) -> np.ndarray:
    """N x 3: the points of an organised map that have depth, row by row."""
    return points[np.isfinite(points[..., 2])]


def _slope(z: np.ndarray, axis: int, reach: int) -> np.ndarray:
    """dz per kept pixel along an axis from z[+-reach]: central differences, one-sided at the
    borders and next to holes, NaN where neither side has depth."""
    forward = np.full_like(z, np.nan)
    backward = np.full_like(z, np.nan)
    reach = min(reach, z.shape[axis] - 1)
    if reach > 0:
        head, tail = [slice(None)] * 2, [slice(None)] * 2
        head[axis], tail[axis] = slice(None, -reach), slice(reach, None)
        head, tail = tuple(head), tuple(tail)
        np.subtract(z[tail], z[head], out=forward[head])  # NaN where either end is a hole
        forward[head] *= np.float32(1 / reach)
        backward[tail] = forward[head]
    slope = forward + backward
    slope *= 0.5
    np.copyto(slope, forward, where=np.isnan(slope))
    np.copyto(slope, backward, where=np.isnan(slope))
    return slope


def area_vectors(points: np.ndarray, intr: Intrinsics, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """dP/du x dP/dv per kept pixel as 3 x H' x W' planes, and where it is trustworthy.

    Its length is the surface area the pixel's stride x stride block sees, its direction
    the surface normal pointing away from the camera. The point map's derivatives come by
    the chain rule from P = z * ray(u, v): dP/du = z_u * ray + z * dray/du, with z_u from
    central differences over +-SLOPE_REACH_PX pixels: one scalar map to difference, not three.
    Not trustworthy: no valid neighbour along u or v, or |dP/du| or |dP/dv| longer than
    DISCONTINUITY_FACTOR fronto-parallel footprints (a depth edge between objects).
    """
    stride = _check_stride(stride)
    z = np.ascontiguousarray(points[..., 2])
    ray_x, ray_y = _rays(intr, stride)
    a, b = ray_x[None, :], ray_y[:, None]
    p, q = np.float32(stride / intr.fx), np.float32(stride / intr.fy)
    reach = max(1, round(SLOPE_REACH_PX / stride))
    z_u, z_v = _slope(z, 1, reach), _slope(z, 0, reach)
    vectors = np.empty((3,) + z.shape, np.float32)
    np.multiply(z_u, -q * z, out=vectors[0])
    np.multiply(z_v, -p * z, out=vectors[1])
    np.multiply((q * a) * z_u + (p * b) * z_v + (p * q) * z, z, out=vectors[2])
    # |dP/du|^2 = z_u^2 |ray|^2 + 2 p x/z z_u z + (p z)^2 <= (K p z)^2, likewise for v
    ray_sq = a * a + b * b + 1
    z_sq = np.float32(DISCONTINUITY_FACTOR ** 2 - 1) * z * z
    ok = z_u * (z_u * ray_sq + (2 * p) * a * z) <= (p * p) * z_sq
    ok &= z_v * (z_v * ray_sq + (2 * q) * b * z) <= (q * q) * z_sq  # False where NaN
    return vectors, ok


def point_areas(points: np.ndarray, intr: Intrinsics, stride: int = 1,
                vectors: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """H' x W' float32 m^2 each kept pixel stands for (its stride x stride block), 0 where invalid.

    |dP/du x dP/dv| accounts for the surface's tilt; where that is not trustworthy (see
    `area_vectors`, whose result `vectors` may pass in) the fronto-parallel footprint
    (stride * z)^2 / (fx * fy) stands in.
    """
    vectors, ok = vectors if vectors is not None else area_vectors(points, intr, stride)
    area = np.sqrt(np.einsum("kij,kij->ij", vectors, vectors))
    z = points[..., 2]
    footprint = (z * z) * np.float32(stride * stride / (intr.fx * intr.fy))
    np.copyto(area, footprint, where=~ok)
    area[~np.isfinite(z)] = 0.0
    return area


def pixel_areas(depth_m: np.ndarray, intr: Intrinsics, stride: int = 1) -> np.ndarray:
    """H' x W' float32 m^2 per kept pixel of a depth image in metres; see `point_areas`."""
    return point_areas(back_project(depth_m, intr, stride), intr, stride)


def check_class_ids(ids: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """`ids` as uint8, after checking it has `shape` (the grid of `what`) and ids 0..255."""
    ids = np.asarray(ids)
    if ids.shape != shape:
        raise DepthError(f"class ids are {ids.shape} but {what} is {shape}; expected the same H x W")
    if ids.dtype != np.uint8:
        if ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() > 255)):
            raise DepthError(f"class ids must be integers in 0..255 (uint8), got {ids.dtype}")
        ids = ids.astype(np.uint8)
    return ids


def points_geometry(ids: np.ndarray, points: np.ndarray, areas: np.ndarray,
                    class_ids: Iterable[int]) -> dict[int, dict[str, float | int]]:
    """Per class with valid depth: area, mean and nearest distance to the camera, pixels.

    `ids`, `points` and `areas` are on the same grid (all strided alike, or none).
    """
    ids = check_class_ids(ids, points.shape[:2], "the point map")
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    valid = np.isfinite(z)
    labels = ids[valid]
    if labels.size == 0:
        return {}
    distance = np.sqrt(x * x + y * y + z * z)[valid]
    labels = labels.astype(np.intp)  # once, not in each bincount
    count = np.bincount(labels, minlength=256)
    area = np.bincount(labels, weights=areas[valid], minlength=256)
    total = np.bincount(labels, weights=distance, minlength=256)
    nearest = np.full(256, np.inf, np.float32)
    np.minimum.at(nearest, labels, distance)
    return {int(c): {"area_m2": float(area[c]), "mean_distance_m": float(total[c] / count[c]),
                     "nearest_distance_m": float(nearest[c]), "valid_pixels": int(count[c])}
            for c in class_ids if 0 <= c <= 255 and count[c] > 0}


def material_geometry(ids: np.ndarray, depth_m: np.ndarray, intr: Intrinsics,
                      class_ids: Iterable[int], stride: int = 1) -> dict[int, dict[str, float | int]]:
    """`points_geometry` from full-size class ids and depth (metres, NaN invalid).

    With stride > 1 every kept pixel stands for its stride x stride block: faster, coarser.
    """
    depth_m = np.asarray(depth_m)
    ids = check_class_ids(ids, depth_m.shape, "the depth image")
    stride = _check_stride(stride)
    points = back_project(depth_m, intr, stride)
    return points_geometry(ids[::stride, ::stride], points,
                           point_areas(points, intr, stride), class_ids)


def cloud_fields() -> list[tuple[str, int, int, int]]:
    """(name, offset, datatype, count) of each sensor_msgs/PointField of the packed cloud."""
    return [(name, offset, datatype, 1) for name, offset, datatype in _FIELDS]


@dataclass(frozen=True)
class PackedCloud:
    """The points of a PointCloud2 (little-endian, CLOUD_DTYPE) and its header fields."""

    points: np.ndarray  # height x width structured array of CLOUD_DTYPE
    is_dense: bool

    @property
    def height(self) -> int:
        return self.points.shape[0]

    @property
    def width(self) -> int:
        return self.points.shape[1]

    point_step = POINT_STEP

    @property
    def row_step(self) -> int:
        return POINT_STEP * self.width

    def tobytes(self) -> bytes:
        return self.points.tobytes()


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 -> H x W uint32 0x00RRGGBB (PCL's rgb, to be viewed as float32)."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def pack_cloud(points: np.ndarray, rgb: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
               organized: bool = True) -> PackedCloud:
    """x, y, z, rgb, label, confidence per point, laid out as PointCloud2 wants them.

    `rgb` is H' x W' x 3 uint8, or H' x W' uint32 already packed (a palette looked up by label).

    Organised: H' x W' with invalid points kept as NaN (is_dense False). Unorganised: the
    valid points only, as one row (is_dense True). All inputs are on the same H' x W' grid.
    """
    shape = points.shape[:2]
    if points.ndim != 3 or points.shape[2] != 3:
        raise DepthError(f"points must be H x W x 3, got shape {points.shape}")
    packed = rgb.ndim == 2 and rgb.dtype == np.uint32  # already pack_rgb's 0x00RRGGBB
    for name, array, want in (("rgb", rgb, shape if packed else shape + (3,)), ("labels", labels, shape),
                              ("confidence", confidence, shape)):
        if np.shape(array) != want:
            raise DepthError(f"{name} is {np.shape(array)} but the points need {want}")
    if not packed and rgb.dtype != np.uint8:
        raise DepthError(f"rgb must be H x W x 3 uint8 (or H x W uint32 packed), got {rgb.dtype}")
    buffer = np.empty(shape + (6,), np.float32)
    words = buffer.view(np.uint32)
    buffer[..., :3] = points
    words[..., 3] = rgb if packed else pack_rgb(rgb)
    words[..., 4] = labels
    buffer[..., 5] = confidence
    records = buffer.view(f"V{POINT_STEP}")[..., 0]
    if not organized:  # indexing whole 24-byte records is ~10x faster than H x W x 6 floats
        records = records[np.isfinite(points[..., 2])][None]
    cloud = records.view(CLOUD_DTYPE)
    return PackedCloud(cloud, is_dense=not organized or bool(np.isfinite(points[..., 2]).all()))
