"""What the dose map tells an operator: the map as PointCloud2 records (dose, need, fraction
per voxel) and, per material, the area seen, the area at its dose and the dwell still needed."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..runtime.depth import FLOAT32, UINT32
from ..runtime.disinfection import NOT_REACHABLE
from .exposure import DoseMap

COVERAGE_SCHEMA = "matseg/coverage/1"
_FIELDS = (("x", 0, FLOAT32), ("y", 4, FLOAT32), ("z", 8, FLOAT32), ("label", 12, UINT32),
           ("dose_mj_cm2", 16, FLOAT32), ("required_mj_cm2", 20, FLOAT32), ("fraction", 24, FLOAT32))
POINT_STEP = 28
DOSE_DTYPE = np.dtype({"names": [f[0] for f in _FIELDS], "offsets": [f[1] for f in _FIELDS],
                       "formats": ["<u4" if f[2] == UINT32 else "<f4" for f in _FIELDS], "itemsize": POINT_STEP})


def dose_fields() -> list[tuple[str, int, int, int]]:
    """(name, offset, datatype, count) of each PointField of `dose_records`."""
    return [(name, offset, datatype, 1) for name, offset, datatype in _FIELDS]


def dose_records(dmap: DoseMap) -> np.ndarray:
    """One record per voxel: mean point, fused label, dose, required dose and their ratio
    (NaN where the material has no guidance)."""
    voxels = dmap.voxels
    labels = voxels.labels()
    required = dmap.required_for(labels)
    dose = voxels.column("dose")
    records = np.empty(len(voxels), DOSE_DTYPE)
    point = voxels.column("point")
    for k, name in enumerate("xyz"):
        records[name] = point[:, k]
    records["label"], records["dose_mj_cm2"], records["required_mj_cm2"] = labels, dose, required
    with np.errstate(invalid="ignore", divide="ignore"):
        records["fraction"] = dose / required
    return records


def _dwell(remaining: np.ndarray, irradiance: np.ndarray, area: np.ndarray, fraction: float) -> float:
    """Seconds at this irradiance after which `fraction` of the area has what remains."""
    with np.errstate(invalid="ignore", divide="ignore"):
        seconds = np.where(remaining > 0, remaining / irradiance, 0.0)
    order = np.argsort(seconds)
    cumulative = np.cumsum(area[order])
    at = int(np.searchsorted(cumulative, (fraction - 1e-9) * cumulative[-1]))
    return float(seconds[order][min(at, len(order) - 1)])


def coverage(dmap: DoseMap) -> list[dict[str, Any]]:
    """Per named material in the map: area_seen_m2, area_at_target_m2, share, and the
    dwell at the latest cloud's pose after which coverage_fraction of its area in view
    has its dose (None, with a reason, where no guidance can be given)."""
    voxels = dmap.voxels
    labels = voxels.labels()
    areas = voxels.areas()
    dose = voxels.column("dose")
    required = dmap.required_for(labels)
    c = len(voxels.classes)
    known = labels < c
    seen = np.bincount(labels[known], areas[known], minlength=c)
    done = known & (dose >= required)
    at_target = np.bincount(labels[done], areas[done], minlength=c)
    view = dmap.view_rows
    view_labels = labels[view]
    result = []
    for cid in np.flatnonzero(seen > 0):
        need = dmap.required[cid]
        entry: dict[str, Any] = {"id": int(cid), "material": voxels.classes[cid],
                                 "required_mj_cm2": None if np.isnan(need) else float(need),
                                 "area_seen_m2": float(seen[cid]), "area_at_target_m2": float(at_target[cid]),
                                 "share": float(at_target[cid] / seen[cid]), "area_in_view_m2": 0.0,
                                 "dwell_needed_s": None, "reason": None}
        result.append(entry)
        mine = view[view_labels == cid]
        entry["area_in_view_m2"] = float(areas[mine].sum())
        if np.isnan(need):
            entry["reason"], entry["share"] = f"no dose for {voxels.classes[cid]!r}: no guidance", None
        elif not len(mine):
            entry["reason"] = "not in view"
        else:
            dwell = _dwell(np.maximum(need - dose[mine], 0.0), dmap.view_irradiance[view_labels == cid],
                           areas[mine], dmap.config.coverage_fraction)
            if np.isfinite(dwell):
                entry["dwell_needed_s"] = dwell
            else:
                entry["reason"] = NOT_REACHABLE
    return result
