"""The camera's pose in the fixed frame: checked quaternions and the rigid transform applied
to the cloud, its normals and the lamp offset."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

UNIT_TOLERANCE = 1e-3  # |q| may differ from 1 by this much (float32 round-trips); then it is normalised


class PoseError(ValueError):
    """A pose that cannot be used; the message says why."""


@dataclass(frozen=True)
class Pose:
    """camera -> fixed frame: p_fixed = rotation @ p_camera + translation."""

    rotation: np.ndarray  # 3 x 3
    translation: np.ndarray  # 3

    def points(self, points: np.ndarray) -> np.ndarray:
        """N x 3 points (float32) in the fixed frame."""
        return self.vectors(points, self.translation)

    def vectors(self, vectors: np.ndarray, offset=(0.0, 0.0, 0.0)) -> np.ndarray:
        """N x 3 directions (float32) in the fixed frame, plus `offset`. Row by row, not
        `@`: BLAS threads for an inner dimension of 3 cost up to 10 ms a frame on a loaded
        machine, this 1 ms."""
        r = self.rotation.astype(np.float32)
        x, y, z = vectors[:, 0], vectors[:, 1], vectors[:, 2]
        out = np.empty(vectors.shape, np.float32)
        for i in range(3):
            out[:, i] = r[i, 0] * x + r[i, 1] * y + r[i, 2] * z + np.float32(offset[i])
        return out

    def planes(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, offset=None) -> list[np.ndarray]:
        """`vectors` of points given as three coordinate arrays (contiguous: ~2x faster than
        the columns of an N x 3 array), as three float32 arrays; `offset` defaults to the
        translation (points). The same float32 arithmetic as `vectors`."""
        r = self.rotation.astype(np.float32)
        offset = self.translation if offset is None else offset
        out = []
        for i in range(3):
            c = r[i, 0] * x
            c += r[i, 1] * y
            c += r[i, 2] * z
            c += np.float32(offset[i])
            out.append(c)
        return out

    def point(self, xyz: Sequence[float]) -> np.ndarray:
        """One point of the camera frame (the lamp) in the fixed frame, float64."""
        return self.rotation @ np.asarray(xyz, float) + self.translation


def pose_from(position: Sequence[float], quaternion: Sequence[float]) -> Pose:
    """From a position (x, y, z) and a quaternion (x, y, z, w), as in geometry_msgs/Pose.

    NaN or infinite values and quaternions whose norm is not 1 (within UNIT_TOLERANCE)
    are refused: a SLAM front end that lost track must not paint dose onto the wrong wall.
    """
    t = np.asarray(position, float)
    q = np.asarray(quaternion, float)
    if not (np.isfinite(t).all() and np.isfinite(q).all()):
        raise PoseError(f"pose has NaN or infinite values: position {t.tolist()}, orientation {q.tolist()}")
    norm = math.sqrt(float(q @ q))
    if abs(norm - 1.0) > UNIT_TOLERANCE:
        raise PoseError(f"orientation quaternion has norm {norm:.4f}; expected a unit quaternion "
                        f"(norm 1 +- {UNIT_TOLERANCE:g})")
    x, y, z, w = q / norm
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return Pose(rotation, t)
