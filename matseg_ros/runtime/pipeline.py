"""The per-frame segmentation pipeline shared by the node, `matseg bag` and the demo.

decode (any sensor_msgs Image/CompressedImage-like message) -> engine -> colourise,
overlay, confidence image and material summary, and with a depth image the material
cloud, each material's area and distance and UV-C dwell guidance, computing only the
outputs asked for. ROS-free: messages are duck-typed (rclpy's and rosbags' alike).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

import numpy as np

from ..materials import MaterialMap, MaterialsError, load_materials
from .depth import (Intrinsics, PackedCloud, area_vectors, back_project, block_average, block_labels,
                    pack_cloud, pack_rgb, point_areas, points_geometry)
from .disinfection import DisinfectionConfig, dwell_times, surface_normals
from .encodings import compressed_to_rgb, image_to_rgb
from .rendering import colorize, overlay, summarize

RAW, COLORED, OVERLAY, MATERIALS = "raw", "colored", "overlay", "materials"
CONFIDENCE, CLOUD = "confidence", "cloud"
OUTPUTS: tuple[str, ...] = (RAW, COLORED, OVERLAY, MATERIALS, CONFIDENCE, CLOUD)
DEPTH_OUTPUTS: tuple[str, ...] = (MATERIALS, CLOUD)  # what a depth image adds to
CONFIDENCE_ENCODINGS = ("mono8", "32FC1")
MATERIALS_SCHEMA = "matseg/materials/1"  # depth adds optional keys, nothing changes meaning
# Areas, distances and dwell on 4x4 blocks (depth averaged over each block): a few ms at
# 640x480 instead of 36 ms per pixel (bench/depth_overhead.py, docs/disinfection.md).
GEOMETRY_STRIDE = 4


@dataclass
class DepthFrame:
    """A depth image registered to the colour frame, in metres (NaN invalid), and the
    colour camera's intrinsics at the frame's size."""

    metres: np.ndarray
    intrinsics: Intrinsics


@dataclass
class FrameResult:
    """Class ids and confidence always; the rest only when asked for (and, for the cloud
    and geometry, only with a depth image)."""

    ids: np.ndarray
    confidence: np.ndarray
    colored: np.ndarray | None = None
    overlay: np.ndarray | None = None
    materials: list[dict[str, Any]] | None = None
    confidence_image: np.ndarray | None = None
    cloud: PackedCloud | None = None
    disinfection: dict[str, Any] | None = None


def confidence_image(confidence: np.ndarray, encoding: str) -> np.ndarray:
    """The winning class probability as mono8 (0..255, rounded) or 32FC1 (0..1)."""
    if encoding == "32FC1":
        return np.ascontiguousarray(confidence, dtype=np.float32)
    if encoding == "mono8":
        scaled = np.multiply(confidence, 255.0, dtype=np.float32)
        return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)
    raise ValueError(f"confidence encoding must be one of {CONFIDENCE_ENCODINGS}, got {encoding!r}")


def decode_frame(msg: Any) -> np.ndarray:
    """H×W×3 uint8 RGB from an Image or a CompressedImage (told apart by `format`).

    Raises `encodings.ImageDecodeError` naming what is wrong with the frame.
    """
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_to_rgb(msg)
    return image_to_rgb(msg)


def resolve_materials(model_classes: MaterialMap, materials_file: str | Path | None) -> MaterialMap:
    """The class map to render with: the model's, or a materials file that agrees with it.

    A materials file may recolour the classes, but its ids and names must be the model's:
    logit channel i *is* class id i, so anything else would mislabel every pixel.
    """
    if not materials_file:
        return model_classes
    chosen = load_materials(materials_file)
    model_pairs = [(m.id, m.name) for m in model_classes]
    file_pairs = [(m.id, m.name) for m in chosen]
    if model_pairs != file_pairs:
        raise MaterialsError(
            f"{materials_file}: class map does not match the model's: model has "
            f"{', '.join(f'{i}:{n}' for i, n in model_pairs)}; file has "
            f"{', '.join(f'{i}:{n}' for i, n in file_pairs)} (ids and names must agree; "
            "only colours may differ)")
    return chosen


class FramePipeline:
    """Runs the engine on one RGB frame and renders the requested outputs.

    `overlay_alpha` and `min_material_fraction` are plain attributes so a node can
    change them between frames.
    """

    def __init__(self, engine: Any, materials: MaterialMap | None = None,
                 overlay_alpha: float = 0.5, min_material_fraction: float = 0.0,
                 confidence_encoding: str = "mono8", cloud_stride: int = 2,
                 disinfection: DisinfectionConfig | None = None) -> None:
        self.engine = engine
        self.materials = materials if materials is not None else engine.classes
        self.overlay_alpha = overlay_alpha
        self.min_material_fraction = min_material_fraction
        self.confidence_encoding = confidence_encoding
        self.cloud_stride = cloud_stride
        self.disinfection = disinfection
        self._lut = self.materials.palette_lut()
        self._packed_lut = pack_rgb(self._lut[:, None, :])[:, 0]  # label -> 0x00RRGGBB for the cloud

    def run(self, rgb: np.ndarray, outputs: Collection[str] = OUTPUTS,
            depth: DepthFrame | None = None) -> FrameResult:
        unknown = set(outputs) - set(OUTPUTS)
        if unknown:
            raise ValueError(f"unknown output(s) {sorted(unknown)}; expected some of {OUTPUTS}")
        ids, confidence = self.engine.predict(rgb)
        result = FrameResult(ids=ids, confidence=confidence)
        if COLORED in outputs or OVERLAY in outputs:
            result.colored = colorize(ids, self._lut)
        if OVERLAY in outputs:
            result.overlay = overlay(rgb, result.colored, self.overlay_alpha, ids=ids)
        if MATERIALS in outputs:
            result.materials = summarize(ids, confidence, self.materials, self.min_material_fraction)
        if CONFIDENCE in outputs:
            result.confidence_image = confidence_image(confidence, self.confidence_encoding)
        if depth is not None and depth.metres.shape != ids.shape:
            raise ValueError(f"depth is {depth.metres.shape[1]}x{depth.metres.shape[0]}, the frame "
                             f"{ids.shape[1]}x{ids.shape[0]}: depth must be registered to the colour image")
        if depth is not None and CLOUD in outputs:
            result.cloud = self._cloud(ids, confidence, depth)
        if depth is not None and MATERIALS in outputs:
            self._add_geometry(result, depth)
        return result

    def _cloud(self, ids: np.ndarray, confidence: np.ndarray, depth: DepthFrame) -> PackedCloud:
        """Organised, every cloud_stride-th row and column, coloured with the palette."""
        s = self.cloud_stride
        points = back_project(depth.metres, depth.intrinsics, s)
        labels = ids[::s, ::s]
        return pack_cloud(points, self._packed_lut[labels], labels, confidence[::s, ::s])

    def _add_geometry(self, result: FrameResult, depth: DepthFrame) -> None:
        """Area (m²), mean and nearest distance into each summary entry; UV-C dwell guidance."""
        metres, intrinsics = block_average(depth.metres, depth.intrinsics, GEOMETRY_STRIDE)
        points = back_project(metres, intrinsics)
        vectors = area_vectors(points, intrinsics)
        areas = point_areas(points, intrinsics, 1, vectors)
        ids = block_labels(result.ids, GEOMETRY_STRIDE)
        present = [entry["id"] for entry in result.materials]
        geometry = points_geometry(ids, points, areas, present)
        for entry in result.materials:
            found = geometry.get(entry["id"], {})
            entry.update({key: found.get(key) for key in ("area_m2", "mean_distance_m", "nearest_distance_m")})
        if self.disinfection is not None:
            names = {m.id: m.name for m in self.materials if m.id in present}
            normals = surface_normals(points, intrinsics, 1, vectors)
            config = self.disinfection
            result.disinfection = {
                "pathogen": config.pathogen, "target_log_reduction": config.target_log_reduction,
                "coverage_fraction": config.coverage_fraction,
                "lamp_irradiance_at_1m_mw_cm2": config.irradiance_at_1m_mw_cm2,
                "materials": [{"id": cid, **values} for cid, values in
                              sorted(dwell_times(ids, points, normals, areas, config, names).items())]}


def materials_document(summary: list[dict[str, Any]], sec: int, nanosec: int, frame_id: str,
                       height: int, width: int, disinfection: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `~/materials` JSON object for one frame (schema in docs/ros.md)."""
    doc = {
        "schema": MATERIALS_SCHEMA,
        "stamp": {"sec": int(sec), "nanosec": int(nanosec)},
        "frame_id": frame_id,
        "height": int(height),
        "width": int(width),
        "materials": summary,
    }
    if disinfection is not None:
        doc["disinfection"] = disinfection
    return doc
