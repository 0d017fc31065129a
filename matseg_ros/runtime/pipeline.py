"""The per-frame segmentation pipeline shared by the node, `matseg bag` and the demo.

decode (any sensor_msgs Image/CompressedImage-like message) -> engine -> colourise,
overlay and material summary, computing only the outputs asked for. ROS-free: messages
are duck-typed, so rclpy messages and rosbags' deserialised ones both work.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection

import numpy as np

from ..materials import MaterialMap, MaterialsError, load_materials
from .encodings import compressed_to_rgb, image_to_rgb
from .rendering import colorize, overlay, summarize

RAW, COLORED, OVERLAY, MATERIALS = "raw", "colored", "overlay", "materials"
OUTPUTS: tuple[str, ...] = (RAW, COLORED, OVERLAY, MATERIALS)
MATERIALS_SCHEMA = "matseg/materials/1"


@dataclass
class FrameResult:
    """Class ids and confidence always; the rest only when asked for."""

    ids: np.ndarray
    confidence: np.ndarray
    colored: np.ndarray | None = None
    overlay: np.ndarray | None = None
    materials: list[dict[str, Any]] | None = None


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
                 overlay_alpha: float = 0.5, min_material_fraction: float = 0.0) -> None:
        self.engine = engine
        self.materials = materials if materials is not None else engine.classes
        self.overlay_alpha = overlay_alpha
        self.min_material_fraction = min_material_fraction
        self._lut = self.materials.palette_lut()

    def run(self, rgb: np.ndarray, outputs: Collection[str] = OUTPUTS) -> FrameResult:
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
        return result


def materials_document(summary: list[dict[str, Any]], sec: int, nanosec: int, frame_id: str,
                       height: int, width: int) -> dict[str, Any]:
    """The `~/materials` JSON object for one frame (schema in docs/ros.md)."""
    return {
        "schema": MATERIALS_SCHEMA,
        "stamp": {"sec": int(sec), "nanosec": int(nanosec)},
        "frame_id": frame_id,
        "height": int(height),
        "width": int(width),
        "materials": summary,
    }
