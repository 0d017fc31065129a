"""dose_mapper's parameters: defaults, descriptions, ranges and the one check used at start-up
(all are read-only; a bad value stops the node with a line naming the parameter)."""
from __future__ import annotations

from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node

from . import node_params

DEFAULT_MAP_FILE = "~/.ros/matseg_ros/dose_map.npz"

# name -> (default, description, (low, high) for numbers or choices for strings)
PARAMETERS: dict[str, tuple[Any, str, Any]] = {
    "fixed_frame": ("map", "frame of the map and of the poses", None),
    "pose_source": ("topic", "topic: geometry_msgs/PoseStamped on `pose`; tf: TF through tf2_ros", ("topic", "tf")),
    "camera_frame": ("", "with pose_source topic: the frame the pose is of; clouds in another frame are "
                         "refused; empty: any", None),
    "pose_tolerance_s": (0.05, "largest stamp difference between a cloud and its pose, s", (1e-6, 10.0)),
    "voxel_size": (0.05, "edge of a surface voxel, m", (0.005, 1.0)),
    "max_voxels": (1_000_000, "voxel cap: new voxels beyond it are dropped (logged once, counted)",
                   (1_000, 100_000_000)),
    "max_exposure_interval_s": (0.5, "longest time between two clouds that counts as exposure, s "
                                     "(a gap in the clouds adds at most this)", (1e-3, 60.0)),
    "lamp_timeout_s": (0.0, "a lamp_on state older than this counts as unknown (no dose); 0: never",
                       (0.0, 3600.0)),
    "publish_period_s": (1.0, "period of ~/dose_map and ~/coverage, s", (0.01, 60.0)),
    "map_file": ("", f"file of ~/save and ~/load; empty: {DEFAULT_MAP_FILE}", None),
    "disinfection_file": ("", "UV-C lamp and doses; empty: the shipped config/disinfection.yaml", None),
    "materials_file": ("", "class map of the cloud's labels; empty: the shipped config/materials.yaml", None),
}


class StartupError(RuntimeError):
    """The node cannot run as configured; the message is the one line the user sees."""


def check(name: str, value: Any) -> str | None:
    """None when `value` suits parameter `name`, else the reason."""
    default, _, rule = PARAMETERS[name]
    if isinstance(rule, tuple) and isinstance(rule[0], str) and value not in rule:
        return f"{name} must be one of {', '.join(rule)}, got {value!r}"
    if isinstance(rule, tuple) and not isinstance(rule[0], str):
        low, high = rule
        if isinstance(value, bool) or not isinstance(value, type(default)) or not low <= value <= high:
            return f"{name} must be {'an integer' if isinstance(default, int) else 'a number'} in {low:g}..{high:g}, " \
                   f"got {value!r}"
    if name == "fixed_frame" and not value:
        return "fixed_frame must be a frame name, got ''"
    return None


def declare(node: Node) -> dict[str, Any]:
    """Declare every parameter on `node` (read-only) and return the checked values."""
    values = {}
    for name, (default, description, _) in PARAMETERS.items():
        try:
            value = node.declare_parameter(
                name, default, ParameterDescriptor(name=name, description=description, read_only=True)).value
        except Exception as exc:  # rclpy's InvalidParameter(Value|Type)Exception and kin
            raise StartupError(node_params.declare_error(name, exc)) from exc
        reason = check(name, value)
        if reason:
            raise StartupError(f"parameter {reason}")
        values[name] = value
    return values
