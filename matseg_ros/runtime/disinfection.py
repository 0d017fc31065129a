"""UV-C dwell guidance per material: lamp irradiance on the visible surfaces, dose per material.

Planning guidance, not a dosimeter (docs/disinfection.md). Irradiance follows a point lamp:
E = E1m * (1 m / r)^2 * cos(theta). The dwell of a material is the time after which its
coverage_fraction (area-weighted) has had the material's dose at the current pose.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..fileio import read_yaml
from ..paths import share_path
from .depth import Intrinsics, area_vectors, check_class_ids

_TOP_KEYS = {"pathogen", "target_log_reduction", "coverage_fraction", "lamp", "materials"}
_LAMP_KEYS = {"irradiance_at_1m_mw_cm2", "min_distance_m", "offset_m", "source"}
_MATERIAL_KEYS = {"dose_mj_cm2", "source"}
NOT_REACHABLE = "not reachable from this pose"


class DisinfectionConfigError(ValueError):
    """A disinfection file that cannot be used; the message names the file, the key and the fix."""


@dataclass(frozen=True)
class MaterialDose:
    dose_mj_cm2: float | None  # None: no guidance for this material
    source: str


@dataclass(frozen=True)
class DisinfectionConfig:
    pathogen: str
    target_log_reduction: float
    coverage_fraction: float
    irradiance_at_1m_mw_cm2: float
    min_distance_m: float
    lamp_offset_m: tuple[float, float, float]
    lamp_source: str
    materials: dict[str, MaterialDose]
    path: str = "<disinfection config>"


def default_disinfection_path() -> Path:
    return share_path("config", "disinfection.yaml")


def _positive(where: str, value: Any, upper: float | None = None) -> float:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and value > 0 and (upper is None or value <= upper))
    if not ok:
        want = f"a number in (0, {upper:g}]" if upper is not None else "a positive number"
        raise DisinfectionConfigError(f"{where}: expected {want}, got {value!r}")
    return float(value)


def _text(where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DisinfectionConfigError(f"{where}: expected a non-empty string, got {value!r}")
    return value.strip()


def _mapping(where: str, value: Any, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise DisinfectionConfigError(f"{where}: expected a mapping with keys {sorted(required)}, "
                                      f"got {value!r}")
    unknown = set(value) - allowed
    if unknown:
        raise DisinfectionConfigError(f"{where}: unknown key(s) {sorted(map(str, unknown))}; "
                                      f"expected keys among {sorted(allowed)}")
    missing = required - set(value)
    if missing:
        raise DisinfectionConfigError(f"{where}: missing key(s) {sorted(missing)}")
    return value


def parse_disinfection(data: Any, source: str = "<disinfection config>") -> DisinfectionConfig:
    """Validate every key of a parsed disinfection file; errors say '<file>: <key>: expected ...'."""
    top = _mapping(source, data, _TOP_KEYS, _TOP_KEYS - {"coverage_fraction"})
    lamp = _mapping(f"{source}: lamp", top["lamp"], _LAMP_KEYS, {"irradiance_at_1m_mw_cm2", "min_distance_m"})
    offset = lamp.get("offset_m", [0.0, 0.0, 0.0])
    if (not isinstance(offset, (list, tuple)) or len(offset) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                       for v in offset)):
        raise DisinfectionConfigError(f"{source}: lamp.offset_m: expected [x, y, z] in metres "
                                      f"(camera optical frame), got {offset!r}")
    materials_data = top["materials"]
    if not isinstance(materials_data, Mapping) or not materials_data:
        raise DisinfectionConfigError(f"{source}: materials: expected a mapping of material name -> "
                                      f"{{dose_mj_cm2, source}}, got {materials_data!r}")
    materials = {}
    for name, entry in materials_data.items():
        where = f"{source}: materials.{name}"
        entry = _mapping(where, entry, _MATERIAL_KEYS, _MATERIAL_KEYS)
        dose = entry["dose_mj_cm2"]
        if dose is not None:
            dose = _positive(f"{where}.dose_mj_cm2", dose)
        materials[str(name)] = MaterialDose(dose, _text(f"{where}.source", entry["source"]))
    return DisinfectionConfig(
        pathogen=_text(f"{source}: pathogen", top["pathogen"]),
        target_log_reduction=_positive(f"{source}: target_log_reduction", top["target_log_reduction"]),
        coverage_fraction=_positive(f"{source}: coverage_fraction", top.get("coverage_fraction", 0.9), 1.0),
        irradiance_at_1m_mw_cm2=_positive(f"{source}: lamp.irradiance_at_1m_mw_cm2",
                                          lamp["irradiance_at_1m_mw_cm2"]),
        min_distance_m=_positive(f"{source}: lamp.min_distance_m", lamp["min_distance_m"]),
        lamp_offset_m=tuple(float(v) for v in offset),
        lamp_source=_text(f"{source}: lamp.source", lamp.get("source", "not given")),
        materials=materials, path=source)


def load_disinfection(path: str | Path | None = None) -> DisinfectionConfig:
    """Read and validate a disinfection YAML file (default: the package's config/disinfection.yaml)."""
    path = Path(path) if path is not None else default_disinfection_path()
    return parse_disinfection(read_yaml(path, "disinfection file", DisinfectionConfigError), str(path))


def surface_normals(points: np.ndarray, intr: Intrinsics, stride: int = 1,
                    vectors: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """H' x W' x 3 unit normals of an organised point map, facing the camera; NaN where invalid.

    The normals of `depth.area_vectors` (whose result `vectors` may pass in, shared with
    `depth.point_areas`), turned towards the camera; where those are not trustworthy
    (depth edges, isolated points) the normal faces the camera along the ray, as the
    fronto-parallel footprint does for areas.
    """
    vectors, ok = vectors if vectors is not None else area_vectors(points, intr, stride)
    normals = np.negative(np.moveaxis(vectors, 0, -1))
    np.copyto(normals, -points, where=~ok[..., None])
    length = np.sqrt(np.einsum("...i,...i->...", normals, normals))
    with np.errstate(invalid="ignore", divide="ignore"):
        normals /= length[..., None]
    normals[~(length > 0)] = np.nan
    return normals


def irradiance(points: np.ndarray, normals: np.ndarray, config: DisinfectionConfig) -> np.ndarray:
    """mW/cm^2 at each point: E1m * (1 m / max(r, min_distance))^2 * max(cos theta, 0).

    r and theta are measured to the lamp (config.lamp_offset_m in the camera frame).
    """
    return irradiance_from(points, normals, config.lamp_offset_m, config)


def irradiance_from(points: np.ndarray, normals: np.ndarray, lamp: Any,
                    config: DisinfectionConfig) -> np.ndarray:
    """`irradiance` with the lamp at `lamp` (x, y, z in the points' frame): the dose map's
    points are in a fixed frame, where the lamp moves with the camera."""
    dx, dy, dz = (np.float32(lamp[k]) - points[..., k] for k in range(3))
    r_sq = dx * dx + dy * dy + dz * dz
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (normals[..., 0] * dx + normals[..., 1] * dy + normals[..., 2] * dz) / np.sqrt(r_sq)
    np.clip(cos, 0.0, 1.0, out=cos)  # facing away from the lamp: no light; NaN stays NaN
    np.maximum(r_sq, np.float32(config.min_distance_m ** 2), out=r_sq)
    cos *= np.float32(config.irradiance_at_1m_mw_cm2)
    cos /= r_sq
    return cos


def _sort_by_class(labels: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order sorting by (label, value) for uint8 labels and values >= 0, and where each
    label's run starts in it (257 entries: label 255's run ends at the last).

    One uint64 sort of a key packing label, the value's float32 bits (which order like the
    values when non-negative) and the index: several times faster than argsort or lexsort.
    """
    bits = max(1, (labels.size - 1).bit_length())
    firsts = np.arange(257, dtype=np.uint64)
    if bits > 24:  # > 16.7 M points: no room in 64 bits
        order = np.lexsort((values, labels))
        return order, np.searchsorted(labels[order], firsts)
    shift = np.uint64(32 + bits)
    key = labels.astype(np.uint64)
    key <<= shift
    value_bits = (values.astype(np.float32) + np.float32(0)).view(np.uint32).astype(np.uint64)  # -0 -> +0
    value_bits <<= np.uint64(bits)
    key |= value_bits
    key |= np.arange(labels.size, dtype=np.uint64)
    key.sort()
    starts = np.searchsorted(key, firsts << shift)
    np.bitwise_and(key, np.uint64((1 << bits) - 1), out=key)
    return key.view(np.intp), starts


def dwell_times(ids: np.ndarray, points: np.ndarray, normals: np.ndarray, areas: np.ndarray,
                config: DisinfectionConfig, class_names: Mapping[int, str]
                ) -> dict[int, dict[str, Any]]:
    """Per material in view: area, dose, the irradiance its coverage_fraction gets, dwell (s).

    All arrays are on one H x W grid (strided alike). `class_names` maps ids to the names
    the config uses. dwell_s is None, with a `reason`, where no guidance can be given.
    """
    shape = points.shape[:2]
    ids = check_class_ids(ids, shape, "the point map")
    for name, array in (("normals", normals), ("areas", areas)):
        if np.shape(array)[:2] != shape:
            raise ValueError(f"{name} is {np.shape(array)} but the points are {points.shape}; "
                             f"expected the same H x W grid")
    in_view = np.bincount(ids.ravel(), minlength=256)
    named = np.zeros(256, bool)
    named[np.array([c for c in class_names if 0 <= c <= 255], dtype=np.intp)] = True
    e = irradiance(points, normals, config)
    selected = named[ids] & (areas > 0) & np.isfinite(e)
    labels, e, a = ids[selected], e[selected], areas[selected]
    order, starts = _sort_by_class(labels, e)
    e = e[order]
    cumulative = np.zeros(e.size + 1)  # [i]: the area of the first i sorted points
    np.cumsum(a[order], out=cumulative[1:])
    result = {}
    for cid, name in class_names.items():
        if not 0 <= cid <= 255 or not in_view[cid]:
            continue
        first, end = int(starts[cid]), int(starts[cid + 1])
        area = float(cumulative[end] - cumulative[first])
        entry = config.materials.get(name)
        out: dict[str, Any] = {"material": name, "area_m2": area, "dose_mj_cm2": None,
                               "irradiance_mw_cm2": None, "dwell_s": None, "reason": None}
        result[int(cid)] = out
        if entry is None:
            out["reason"] = f"material {name!r} has no entry in {config.path}"
            continue
        out["dose_mj_cm2"] = entry.dose_mj_cm2
        if entry.dose_mj_cm2 is None:
            out["reason"] = f"no dose for {name!r} in {config.path}: no guidance"
            continue
        if end == first:
            out["reason"] = "no valid depth on this material"
            continue
        # the highest irradiance that at least coverage_fraction of the area receives: skip
        # the dimmest points while their area stays within the other (1 - coverage_fraction)
        allowed = cumulative[first] + (1.0 - config.coverage_fraction + 1e-9) * area
        skipped = int(np.searchsorted(cumulative[first + 1:end + 1], allowed, side="right"))
        covered = float(e[first + min(skipped, end - first - 1)])
        out["irradiance_mw_cm2"] = covered
        if covered <= 0:
            out["reason"] = NOT_REACHABLE
        else:
            out["dwell_s"] = entry.dose_mj_cm2 / covered  # mJ/cm^2 / (mW/cm^2) = s
    return result
