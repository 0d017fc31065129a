"""segment_node's parameters: defaults, descriptors and the one validation used at
start-up and for run-time changes (a bad value is refused with a reason)."""
from __future__ import annotations

import math
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

CHOICES: dict[str, tuple[str, ...]] = {
    "backend": ("auto", "onnxruntime", "torch"),
    "device": ("auto", "cuda", "cpu"),
    "precision": ("auto", "fp32", "fp16"),
    "qos_reliability": ("best_effort", "reliable"),
}
UNIT_RANGE = ("overlay_alpha", "min_material_fraction")
# float parameters from 0 to a bound, where 0 switches the limit off: name -> (bound, meaning of 0)
ZERO_OFF_RANGE: dict[str, tuple[float, str]] = {"max_rate_hz": (1000.0, "unlimited"),
                                                "input_timeout_s": (3600.0, "never")}

# name -> (default, description, changeable at run time)
PARAMETERS: dict[str, tuple[Any, str, bool]] = {
    "model_path": ("", "ONNX model or matseg checkpoint; empty: the shipped models/default.onnx", False),
    "backend": ("auto", "inference backend: auto, onnxruntime, torch", False),
    "device": ("auto", "auto (CUDA when available, else CPU), cuda, cpu", False),
    "require_gpu": (False, "refuse to start without a GPU instead of falling back to the CPU", False),
    "precision": ("auto", "auto, fp32, fp16 (fp16 on CUDA only)", False),
    "materials_file": ("", "class map YAML to render with (same ids and names as the model, "
                           "colours may differ); empty: the model's metadata", False),
    "compressed": (False, "subscribe image/compressed (sensor_msgs/CompressedImage) instead of image", False),
    "qos_reliability": ("best_effort", "input QoS reliability: best_effort (sensor data) or reliable", False),
    "qos_depth": (5, "input QoS history depth (keep last)", False),
    "publish_raw": (True, "publish ~/raw_segmentation_mask (mono8 class ids)", True),
    "publish_colored": (True, "publish ~/colored_segmentation_mask (rgb8 palette)", True),
    "publish_overlay": (True, "publish ~/overlay (rgb8 blend of image and palette)", True),
    "publish_materials": (True, "publish ~/materials (JSON summary per frame)", True),
    "overlay_alpha": (0.5, "weight of the palette colour in ~/overlay, 0..1", True),
    "max_rate_hz": (0.0, "process at most this many frames per second; 0: as fast as the model runs", True),
    "min_material_fraction": (0.0, "leave materials covering less than this fraction of the "
                                   "frame out of ~/materials, 0..1", True),
    "input_timeout_s": (2.0, "/diagnostics warns when no image has arrived for this long; "
                             "0: never", True),
}


def descriptor(name: str) -> ParameterDescriptor:
    default, description, dynamic = PARAMETERS[name]
    desc = ParameterDescriptor(name=name, description=description, read_only=not dynamic)
    if name in CHOICES:
        desc.additional_constraints = "one of: " + ", ".join(CHOICES[name])
    elif name in UNIT_RANGE:
        desc.floating_point_range = [FloatingPointRange(from_value=0.0, to_value=1.0, step=0.0)]
    elif name in ZERO_OFF_RANGE:
        bound, zero = ZERO_OFF_RANGE[name]
        desc.floating_point_range = [FloatingPointRange(from_value=0.0, to_value=bound, step=0.0)]
        desc.additional_constraints = f"0 means {zero}"
    elif name == "qos_depth":
        desc.integer_range = [IntegerRange(from_value=1, to_value=1000, step=1)]
    return desc


def validate(name: str, value: Any) -> str | None:
    """None when `value` is acceptable for parameter `name`, else the reason it is not."""
    if name in CHOICES and value not in CHOICES[name]:
        return f"{name} must be one of {', '.join(CHOICES[name])}, got {value!r}"
    if name in UNIT_RANGE and not (isinstance(value, float) and 0.0 <= value <= 1.0):
        return f"{name} must be a number in 0..1, got {value!r}"
    if name in ZERO_OFF_RANGE:
        bound, zero = ZERO_OFF_RANGE[name]
        if not (isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= bound):
            return f"{name} must be in 0..{bound:g} (0 = {zero}), got {value!r}"
    if name == "qos_depth" and not (isinstance(value, int) and 1 <= value <= 1000):
        return f"qos_depth must be an integer in 1..1000, got {value!r}"
    return None
