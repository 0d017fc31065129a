"""Whether the lamp sees a surface voxel when the lamp is not at the camera: rays from the
lamp, sampled every half voxel, checked against the occupied voxels of the map."""
from __future__ import annotations

import numpy as np

from .voxels import BITS, OFFSET, VoxelMap

STEP = 0.5  # sample spacing along a ray, in voxels
CLEARANCE = 1.5  # voxels next to the target that do not count as blocking it (its own surface)
MAX_SAMPLES = 4_000_000  # per batch of rays
MAX_CELLS = 64_000_000  # the dense occupancy box around lamp and targets (64 MB of bools)


def voxel_coords(keys: np.ndarray) -> np.ndarray:
    """N x 3 integer voxel coordinates of packed keys (voxels.voxel_keys inverted)."""
    mask = (1 << BITS) - 1
    return np.stack([(keys >> (2 * BITS)) & mask, (keys >> BITS) & mask, keys & mask], axis=1) - OFFSET


def occluded(voxels: VoxelMap, lamp: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For N x 3 target points, True where an occupied voxel lies between the lamp and them.

    The map's voxels in the box around the lamp and the targets go into a dense boolean
    grid, so each ray sample is one array read. Sampling at half a voxel can step past the
    corner of a voxel that a ray only grazes, and surfaces the map has not seen yet do not
    block: both let a little light through that a real lamp would not deliver.
    """
    size = voxels.voxel_size
    offsets = targets.astype(np.float64) - lamp
    lengths = np.linalg.norm(offsets, axis=1)
    blocked = np.zeros(len(targets), bool)
    reach = lengths - CLEARANCE * size
    if not len(targets) or reach.max() <= 0:
        return blocked
    low = np.floor(np.minimum(lamp, targets.min(axis=0)) / size).astype(np.int64) - 1
    shape = np.floor(np.maximum(lamp, targets.max(axis=0)) / size).astype(np.int64) + 2 - low
    if np.prod(shape) > MAX_CELLS:  # a box too large for memory: leave the light through
        return blocked
    coords = voxel_coords(voxels.column("key")) - low
    inside = (coords[:, 0] >= 0) & (coords[:, 0] < shape[0])
    for k in (1, 2):
        inside &= (coords[:, k] >= 0) & (coords[:, k] < shape[k])
    occupied = np.zeros(shape, bool)
    occupied[tuple(coords[inside].T)] = True
    samples = int(np.ceil(reach.max() / (STEP * size)))
    distances = ((np.arange(samples) + 0.5) * STEP).astype(np.float32)  # in voxels
    start_cell = (lamp / size - low).astype(np.float32)
    flat_occupied = occupied.ravel()
    batch = max(1, MAX_SAMPLES // samples)
    for start in range(0, len(targets), batch):
        part = slice(start, start + batch)
        directions = (offsets[part] / lengths[part, None]).astype(np.float32)
        flat = np.zeros((len(directions), samples), np.int64)
        for k in range(3):  # one axis at a time: M x S arrays, no M x S x 3 temporaries
            cell = np.floor(start_cell[k] + directions[:, k, None] * distances[None, :]).astype(np.int64)
            np.clip(cell, 0, shape[k] - 1, out=cell)  # samples past a short ray's end (not counted)
            flat *= shape[k]
            flat += cell
        hits = flat_occupied[flat]
        hits &= distances[None, :] * np.float32(size) < reach[part, None]
        blocked[part] = hits.any(axis=1)
    return blocked
