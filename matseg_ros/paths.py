"""Locate the package's share files with or without a ROS install.

Order: the ament index (a colcon install, AMENT_PREFIX_PATH set), the source tree
(a checkout or an editable pip install), then `<prefix>/share/matseg_ros` (a plain
pip install, where setup.py's data_files land).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "matseg_ros"
_MARKER = Path("config") / "materials.yaml"


def _ament_share() -> Path | None:
    if not os.environ.get("AMENT_PREFIX_PATH"):
        return None
    try:
        from ament_index_python.packages import (PackageNotFoundError,
                                                 get_package_share_directory)
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory(PACKAGE))
    except (PackageNotFoundError, ValueError, LookupError):
        return None


def share_dir() -> Path:
    """The folder holding config/, launch/, models/ and gazebo_worlds/."""
    candidates = [
        _ament_share(),
        Path(__file__).resolve().parent.parent,
        Path(sys.prefix) / "share" / PACKAGE,
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / _MARKER).is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates if c is not None)
    raise FileNotFoundError(f"matseg_ros share folder not found (looked for {_MARKER} in: {tried})")


def share_path(*parts: str) -> Path:
    return share_dir().joinpath(*parts)


def default_materials_path() -> Path:
    return share_path("config", "materials.yaml")


def default_model_path() -> Path:
    return share_path("models", "default.onnx")


PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def use_fastdds_profile(env: dict[str, str] | None = None) -> tuple[str, bool]:
    """Point Fast DDS at the package's large-image profile (config/fastdds_shm.xml) unless
    the user chose one: (the profile in use, whether it is the package's). It must run
    before rclpy creates a participant, which reads the variable once (docs/ros.md)."""
    env = os.environ if env is None else env
    if env.get(PROFILE_VARIABLE):
        return env[PROFILE_VARIABLE], False
    env[PROFILE_VARIABLE] = str(share_path("config", "fastdds_shm.xml"))
    return env[PROFILE_VARIABLE], True
