"""What the demo's depth frames gave: per-material area, distance and UV-C dwell over the
frames that had depth, and one material cloud saved as a PLY file (MeshLab, CloudCompare)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes
from ..runtime.depth import CLOUD_DTYPE


def cloud_points(msg: Any) -> np.ndarray:
    """A ~/material_cloud PointCloud2 as `runtime.depth`'s structured points, NaN ones dropped."""
    points = np.frombuffer(bytes(msg.data), CLOUD_DTYPE)
    return points[np.isfinite(points["x"]) & np.isfinite(points["y"]) & np.isfinite(points["z"])]


def write_ply(path: Path, points: np.ndarray) -> None:
    """Binary PLY: x y z (m), red green blue (the palette colour), label, confidence."""
    rgb = points["rgb"].view(np.uint32)
    vertex = np.empty(len(points), [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"),
                                    ("blue", "u1"), ("label", "u1"), ("confidence", "<f4")])
    for axis in "xyz":
        vertex[axis] = points[axis]
    vertex["red"], vertex["green"], vertex["blue"] = rgb >> 16 & 255, rgb >> 8 & 255, rgb & 255
    vertex["label"], vertex["confidence"] = points["label"], points["confidence"]
    header = "\n".join(["ply", "format binary_little_endian 1.0", "comment matseg_ros material cloud",
                        f"element vertex {len(vertex)}", "property float x", "property float y",
                        "property float z", "property uchar red", "property uchar green",
                        "property uchar blue", "property uchar label", "property float confidence",
                        "end_header"]) + "\n"
    atomic_write_bytes(path, header.encode("ascii") + vertex.tobytes())


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 3) if values else None


def material_depth_summary(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per material over the frames with depth: mean area and distance, median dwell."""
    by_id: dict[int, dict[str, Any]] = {}
    for frame in frames:
        for m in frame["materials"]:
            if m.get("area_m2") is not None:
                entry = by_id.setdefault(m["id"], {"name": m["name"], "area": [], "distance": [], "dwell": []})
                entry["area"].append(m["area_m2"])
                if m.get("mean_distance_m") is not None:
                    entry["distance"].append(m["mean_distance_m"])
        for d in (frame.get("disinfection") or {}).get("materials", []):
            if d.get("dwell_s") is not None and d["id"] in by_id:
                by_id[d["id"]]["dwell"].append(d["dwell_s"])
    return [{"id": cid, "name": e["name"], "frames": len(e["area"]), "mean_area_m2": _mean(e["area"]),
             "mean_distance_m": _mean(e["distance"]),
             "median_dwell_s": round(float(np.median(e["dwell"])), 1) if e["dwell"] else None}
            for cid, e in sorted(by_id.items())]
