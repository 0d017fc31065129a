"""segment_node's parameters: defaults, descriptors and the one validation used at
start-up and for run-time changes (a bad value is refused with a reason)."""
from __future__ import annotations

import math
import re
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

CHOICES: dict[str, tuple[str, ...]] = {
    "backend": ("auto", "onnxruntime", "torch"),
    "device": ("auto", "cuda", "cpu"),
    "precision": ("auto", "fp32", "fp16", "int8"),
    "qos_reliability": ("best_effort", "reliable"),
    "confidence_encoding": ("mono8", "32FC1"),
}
UNIT_RANGE = ("overlay_alpha", "min_material_fraction")
# float parameters from 0 to a bound, where 0 switches the limit off: name -> (bound, meaning of 0)
ZERO_OFF_RANGE: dict[str, tuple[float, str]] = {"max_rate_hz": (1000.0, "unlimited"),
                                                "input_timeout_s": (3600.0, "never"),
                                                "depth_tolerance_s": (1.0, "identical stamps only")}
INT_RANGE: dict[str, tuple[int, int]] = {"qos_depth": (1, 1000), "cloud_stride": (1, 64)}
_NAMESPACE = re.compile(r"^/?[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*$")

# name -> (default, description, changeable at run time)
PARAMETERS: dict[str, tuple[Any, str, bool]] = {
    "model_path": ("", "ONNX model or matseg checkpoint; empty: the shipped models/default.onnx", False),
    "backend": ("auto", "inference backend: auto, onnxruntime, torch", False),
    "device": ("auto", "auto (CUDA when available, else CPU), cuda, cpu", False),
    "require_gpu": (False, "refuse to start without a GPU instead of falling back to the CPU", False),
    "precision": ("auto", "auto, fp32, fp16 (fp16 on CUDA only), int8 (ONNX Runtime CPU: the model's "
                          "<stem>.int8.onnx sibling from `matseg export --int8`)", False),
    "trt_engine_cache_enable": (True, "keep the engines ONNX Runtime's TensorRT provider builds on disk "
                                      "(the first start builds one: minutes)", False),
    "trt_engine_cache_path": ("", "folder of the TensorRT engine cache; empty: ~/.cache/matseg_ros/trt",
                              False),
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
    "lifecycle": (False, "run as a managed node (configure loads the model, activate subscribes); "
                         "false: configure and activate at start-up", False),
    "cameras": ([], "camera namespaces served by this one model (C/image, C/depth, C/camera_info in; "
                    "C/<node name>/... out); empty: one camera on image, outputs under ~/", False),
    "publish_confidence": (True, "publish ~/confidence (the winning class probability)", True),
    "confidence_encoding": ("mono8", "~/confidence as mono8 (0..255) or 32FC1 (0..1)", True),
    "use_depth": (False, "subscribe depth (16UC1 mm or 32FC1 m, registered to the colour image) and "
                         "camera_info: material cloud, areas and UV-C guidance", False),
    "depth_tolerance_s": (0.02, "largest stamp difference between a colour frame and its depth image, "
                                "0..1 s; also how long to wait for a late depth image", True),
    "publish_cloud": (True, "publish ~/material_cloud (PointCloud2 x y z rgb label confidence)", True),
    "cloud_stride": (2, "keep every n-th row and column in ~/material_cloud, 1..64", True),
    "disinfection_file": ("", "UV-C guidance config; empty: the shipped config/disinfection.yaml", False),
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
    elif name in INT_RANGE:
        low, high = INT_RANGE[name]
        desc.integer_range = [IntegerRange(from_value=low, to_value=high, step=1)]
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
    if name in INT_RANGE:
        low, high = INT_RANGE[name]
        if isinstance(value, bool) or not (isinstance(value, int) and low <= value <= high):
            return f"{name} must be an integer in {low}..{high}, got {value!r}"
    if name == "cameras":
        bad = [c for c in value if not _NAMESPACE.match(c)]
        if bad or len(set(value)) != len(value):
            return (f"cameras must be distinct namespaces like 'front' or '/robot/rear', got {value!r}")
    return None


_TYPE_ERROR = re.compile(r"Trying to set parameter '.+?' to '(.*)' of type '(\w+)', expecting type '(\w+)'")
_VALUE_ERROR = re.compile(r"^Invalid parameter value \(.*?\) for parameter\. Reason: ")


def declare_error(name: str, exc: Exception, override: Any = None) -> str:
    """One line, naming the parameter once, for a value rclpy refused at declaration (rclpy's
    own messages name it two or three times). With the override value and a rule of ours,
    our message; else rclpy's reason, tidied."""
    if override is not None and name in PARAMETERS:
        reason = validate(name, override)
        if reason:
            return f"parameter {reason}"
    text = str(exc)
    if text.endswith(f": {name}"):
        text = text[:-len(name) - 2]
    match = _TYPE_ERROR.search(text)
    if match:
        value, got, expected = match.groups()
        return f"parameter {name} must be of type {expected.lower()}, got {value!r} ({got.lower()})"
    return f"parameter {name}: {_VALUE_ERROR.sub('', text)}"
