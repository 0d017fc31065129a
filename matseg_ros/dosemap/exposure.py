"""Dose accrual: each cloud's surfaces get the lamp model's irradiance times the lamp-on
time between clouds, integrated by the trapezoid rule over consecutive clouds.

The interval [t_prev, t_now] between two clouds' stamps delivers half its lamp-on time at
the previous cloud's irradiance (on the voxels seen then) and half at the current one's:
surfaces seen in both get the trapezoid rule, a surface entering or leaving view half an
interval. Visibility is the camera's: only voxels in the cloud take dose, and with the lamp
away from the camera rays from the lamp through the map drop occluded ones (visibility.py).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..runtime.disinfection import DisinfectionConfig, irradiance_from
from .cloud import CloudArrays, normal_planes
from .pose import Pose
from .visibility import occluded
from .voxels import VoxelMap, group_points


class LampTimer:
    """Lamp-on seconds on a receipt clock: std_msgs/Bool has no stamp, so the share of the
    time between two clouds' arrivals during which the lamp was on scales their interval."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.on: bool | None = None  # None: no lamp message yet
        self.last_message: float | None = None
        self._since = 0.0
        self._total = 0.0

    def set(self, on: bool) -> None:
        with self._lock:
            now = self._clock()
            if self.on:
                self._total += now - self._since
            self.on, self._since, self.last_message = bool(on), now, now

    def on_seconds(self) -> tuple[float, float]:
        """(now, lamp-on seconds accumulated until now)."""
        with self._lock:
            now = self._clock()
            return now, self._total + (now - self._since if self.on else 0.0)


@dataclass
class FrameReport:
    points: int = 0  # valid points of the cloud
    voxels: int = 0  # voxels the cloud touched (in the map)
    new_voxels: int = 0
    dropped_voxels: int = 0  # new voxels refused: the map is at max_voxels
    dropped_points: int = 0  # their points, and points out of the key range
    occluded: int = 0  # voxels seen by the camera that the lamp does not see


class DoseMap:
    """The voxel map and the dose it has received; `required` is each class id's dose (NaN: none)."""

    def __init__(self, config: DisinfectionConfig, classes: Sequence[str], voxel_size: float,
                 max_voxels: int) -> None:
        self.config = config
        self.voxels = VoxelMap(voxel_size, classes, max_voxels)
        required = [getattr(config.materials.get(name), "dose_mj_cm2", None) for name in classes]
        self.required = np.array([np.nan if d is None else d for d in required] + [np.nan], np.float64)
        self.lamp_at_camera = float(np.linalg.norm(config.lamp_offset_m)) < voxel_size / 2
        self.reset()

    def reset(self) -> None:
        self.voxels.clear()
        self.forget_view()

    def forget_view(self) -> None:
        """Drop the last cloud's voxels (after a reset or a load: their rows mean nothing now)."""
        self.view_rows = np.zeros(0, np.int64)
        self.view_irradiance = np.zeros(0, np.float64)

    def required_for(self, labels: np.ndarray) -> np.ndarray:
        """mJ/cm^2 each fused label needs; NaN for no guidance and unlabelled voxels."""
        return self.required[np.minimum(labels, len(self.required) - 1)]

    def integrate(self, cloud: CloudArrays, pose: Pose, exposure_s: float) -> FrameReport:
        """Fuse one cloud (camera frame) seen from `pose`, then add the dose of the
        `exposure_s` lamp-on seconds since the previous cloud."""
        report = FrameReport()
        planes = [np.ascontiguousarray(cloud.points[..., k]) for k in range(3)]
        valid = np.isfinite(planes[2])  # read_cloud made x, y, z NaN together
        points = pose.planes(*(p[valid] for p in planes))  # fixed frame, coordinate by coordinate
        normals = [n[valid] for n in normal_planes(planes)]  # camera frame: rotated per voxel, not per point
        labels = cloud.labels[valid]
        weights = cloud.confidence[valid] if cloud.confidence is not None else np.ones(len(labels))
        report.points = len(labels)
        order, unique, starts, in_range = group_points(*points, self.voxels.voxel_size)
        if not in_range.all():  # points beyond +-52 km (at 5 cm): a broken pose or cloud
            report.dropped_points = int((~in_range).sum())
            points, normals = ([a[in_range] for a in arrays] for arrays in (points, normals))
            labels, weights = labels[in_range], weights[in_range]
        counts = np.diff(starts, append=len(order))
        before = len(self.voxels)
        rows, report.dropped_voxels = self.voxels.rows_for(unique)
        report.new_voxels = len(self.voxels) - before
        voxel = np.empty(len(order), np.int64)  # each point's voxel: index into unique
        voxel[order] = np.repeat(np.arange(len(unique)), counts)
        kept = rows >= 0
        if report.dropped_voxels:  # the map is full: the points of voxels not in it go
            keep = kept[voxel]
            report.dropped_points += int((~keep).sum())
            voxel = (np.cumsum(kept) - 1)[voxel[keep]]
            points, normals = ([a[keep] for a in arrays] for arrays in (points, normals))
            labels, weights = labels[keep], weights[keep]
            rows, counts = rows[kept], counts[kept]
        m, c = len(rows), len(self.voxels.classes)
        if len(labels) and labels.min() >= 0 and labels.max() < c:  # the usual case: no mask
            scores = np.bincount(voxel * c + labels, weights, m * c).reshape(m, c)
        else:
            known = (labels >= 0) & (labels < c)
            scores = np.bincount(voxel[known] * c + labels[known], weights[known], m * c).reshape(m, c)
        point_sums = np.stack([np.bincount(voxel, points[k], m) for k in range(3)], axis=1)
        normal_sums = pose.vectors(np.stack([np.bincount(voxel, normals[k], m) for k in range(3)], axis=1))
        flat = ~(np.abs(normal_sums).sum(axis=1) > 0)  # only edge or hole points: face the camera, barely
        normal_sums[flat] = (pose.translation - point_sums[flat] / counts[flat, None]) * 1e-12
        point, normal = self.voxels.observe(rows, counts, point_sums, normal_sums, scores)
        report.voxels = len(rows)
        lamp = pose.point(self.config.lamp_offset_m)
        e = self.irradiance(rows, lamp, point, normal)
        if not self.lamp_at_camera:
            hidden = occluded(self.voxels, lamp, point)
            e[hidden] = 0.0
            report.occluded = int(hidden.sum())
        half = 0.5 * max(float(exposure_s), 0.0)
        if half > 0:
            dose = self.voxels.data["dose"]
            dose[self.view_rows] += self.view_irradiance * half  # mW/cm^2 * s = mJ/cm^2; rows distinct
            dose[rows] += e * half
        self.view_rows, self.view_irradiance = rows, e
        return report

    def irradiance(self, rows: np.ndarray, lamp: np.ndarray, point: np.ndarray | None = None,
                   normal: np.ndarray | None = None) -> np.ndarray:
        """mW/cm^2 on the voxels `rows` from a lamp at `lamp` (fixed frame); 0 where undefined.
        `point` and `normal`: those rows' mean points and summed normals, when at hand."""
        point = self.voxels.column("point")[rows] if point is None else point
        normal = self.voxels.column("normal")[rows] if normal is None else normal
        with np.errstate(invalid="ignore", divide="ignore"):
            unit = (normal / np.linalg.norm(normal, axis=-1, keepdims=True)).astype(np.float32, copy=False)
        e = irradiance_from(point, unit, lamp, self.config).astype(np.float64)
        e[~np.isfinite(e)] = 0.0
        return e
