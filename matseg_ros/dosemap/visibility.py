"""Whether the lamp sees a surface voxel when the lamp is not at the camera: rays from the
lamp, sampled every half voxel, checked against the occupied voxels of the map."""
from __future__ import annotations

import numpy as np

from .voxels import VoxelMap, voxel_keys

STEP = 0.5  # sample spacing along a ray, in voxels
CLEARANCE = 1.5  # voxels next to the target that do not count as blocking it (its own surface)
MAX_SAMPLES = 4_000_000  # per call; rays are taken in batches below this


def occluded(voxels: VoxelMap, lamp: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For N x 3 target points, True where an occupied voxel lies between the lamp and them.

    Sampling at half a voxel can step past the corner of a voxel that a ray only grazes,
    and surfaces the map has not seen yet do not block: both let a little light through
    that a real lamp would not deliver.
    """
    size = voxels.voxel_size
    offsets = targets.astype(np.float64) - lamp
    lengths = np.linalg.norm(offsets, axis=1)
    blocked = np.zeros(len(targets), bool)
    reach = lengths - CLEARANCE * size
    if not len(targets) or reach.max() <= 0:
        return blocked
    samples = int(np.ceil(reach.max() / (STEP * size)))
    distances = (np.arange(samples) + 0.5) * (STEP * size)
    batch = max(1, MAX_SAMPLES // samples)
    for start in range(0, len(targets), batch):
        part = slice(start, start + batch)
        directions = offsets[part] / lengths[part, None]
        along = distances[None, :] < reach[part, None]
        points = lamp + directions[:, None, :] * distances[None, :, None]
        keys, in_range = voxel_keys(points[along].astype(np.float32), size)
        hits = (voxels.lookup(keys) >= 0) & in_range
        ray = np.broadcast_to(np.arange(along.shape[0])[:, None], along.shape)[along]
        blocked[part] = np.bincount(ray[hits], minlength=along.shape[0]) > 0
    return blocked
