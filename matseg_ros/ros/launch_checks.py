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
