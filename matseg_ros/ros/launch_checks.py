"""Checks the launch files run before they start anything, so that a launch that cannot
work stops with one clear line instead of leaving half its nodes running."""
from __future__ import annotations

import shutil


def is_true(text: str) -> bool:
    """A launch argument's text as a boolean, as launch's IfCondition reads it."""
    return text.strip().lower() in ("true", "1", "yes")


class LaunchArgumentError(RuntimeError):
    """A launch argument that cannot work; launch prints the message as one line."""


def missing_rviz(rviz_argument: str, which=shutil.which) -> str | None:
    """None when rviz is off or rviz2 is on the PATH; else the message to stop with."""
    if not is_true(rviz_argument) or which("rviz2") is not None:
        return None
    return ("rviz:=true but rviz2 is not installed (sudo apt install ros-$ROS_DISTRO-rviz2), "
            "or launch with rviz:=false; nothing was started")


def require_rviz(context, *args, **kwargs) -> list:
    """An OpaqueFunction for the launch files, placed before any node: with rviz:=true and no
    rviz2, stop the launch there with one line. `context` is launch's LaunchContext."""
    problem = missing_rviz(context.launch_configurations.get("rviz", "false"))
    if problem:
        raise LaunchArgumentError(problem)
    return []


# segment.launch.py's topic arguments: the node topic each remaps, and its default
TOPIC_ARGUMENTS = {"image_topic": "image", "depth_topic": "depth", "camera_info_topic": "camera_info"}
TOPIC_DEFAULTS = {"image_topic": "/camera/image_raw", "depth_topic": "/camera/depth/image_raw",
                  "camera_info_topic": "/camera/camera_info"}
CAMERA = "{camera}"


def camera_remappings(cameras: list[str], topics: dict[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Remappings for several cameras, and a warning per topic argument that is ignored.

    A topic argument with `{camera}` in it applies to every camera, with the namespace put in
    (image_topic:=/{camera}/camera/image_raw: front/image -> /front/camera/image_raw, and
    front/image/compressed -> /front/camera/image_raw/compressed). One without it cannot
    name the topics of several cameras: unless it is the default, it is ignored, said so."""
    remappings, ignored = [], []
    for argument, node_topic in TOPIC_ARGUMENTS.items():
        value = topics[argument]
        if CAMERA not in value:
            if value != TOPIC_DEFAULTS[argument]:
                ignored.append(f"{argument}:={value} is ignored with cameras (each camera C reads "
                               f"C/{node_topic}); to map them, put {CAMERA} in it, e.g. "
                               f"{argument}:=/{CAMERA}{TOPIC_DEFAULTS[argument].removeprefix('/camera')}")
            continue
        for camera in cameras:
            target = value.replace(CAMERA, camera.strip("/"))
            remappings.append((f"{camera}/{node_topic}", target))
            if node_topic == "image":
                remappings.append((f"{camera}/image/compressed", target + "/compressed"))
    return remappings, ignored
