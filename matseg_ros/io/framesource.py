"""Recorded camera data as a stream of frames: an image folder, a video file, or an image
topic of a rosbag2 file.

The bags are mcap or sqlite3, read with rosbags; ROS-free: camera_replay turns the frames
into messages."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")

log = logging.getLogger("matseg.framesource")


class SourceError(ValueError):
    """A source that cannot be replayed; the message names the path and what was expected."""


@dataclass
class Frame:
    """One frame: decoded RGB (folders, videos) or a recorded message (bags), and where
    depth is replayed too, its depth image (`depth_source`)."""

    rgb: np.ndarray | None = None
    message: Any = None          # rosbags sensor_msgs Image/CompressedImage
    msgtype: str = ""
    log_time_ns: int | None = None
    name: str = ""
    depth: np.ndarray | None = None   # folders: uint16 mm (16UC1) or float32 m (32FC1)
    depth_encoding: str = ""
    depth_message: Any = None    # bags: the paired rosbags sensor_msgs Image
    info_message: Any = None     # bags: the CameraInfo nearest in stamp


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f"{path}: cannot read as an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iter_folder(folder: Path) -> Iterator[Frame]:
    """The folder's images in name order; an unreadable one is skipped with a warning that
    names it (one corrupt file does not end a replay)."""
    for path in list_images(folder):
        try:
            yield Frame(rgb=_read_rgb(path), name=path.name)
        except SourceError as exc:
            log.warning("%s; skipped", exc)


def iter_video(path: Path) -> Iterator[Frame]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError(f"{path}: OpenCV cannot open this video")
    try:
        index = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            yield Frame(rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), name=f"{path.stem}_{index:06d}")
            index += 1
    finally:
        capture.release()


def is_bag(path: Path) -> bool:
    return path.is_dir() and (path / "metadata.yaml").is_file() or path.suffix in (".mcap", ".db3")


def bag_image_topics(reader: Any) -> dict[str, str]:
    return {c.topic: c.msgtype for c in reader.connections if c.msgtype in IMAGE_TYPES}


def open_bag_reader(path: Path) -> Any:
    """An opened rosbags AnyReader; message definitions missing from the bag come from kilted."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    bag_dir = path.parent if path.suffix in (".mcap", ".db3") else path
    reader = AnyReader([bag_dir], default_typestore=get_typestore(Stores.ROS2_KILTED))
    try:
        reader.open()
    except Exception as exc:  # rosbags raises several reader error types
        raise SourceError(f"{bag_dir}: cannot open as a rosbag2 (mcap or sqlite3): {exc}") from exc
    return reader


def choose_topic(path: Path, topics: dict[str, str], topic: str | None, kind: str = "image",
                 parameter: str | None = None) -> str:
    """`topic` if it is one of `topics`, else the only one; `parameter` names the setting to fix."""
    if topic:
        if topic not in topics:
            raise SourceError(f"{path}: no {kind} topic {topic!r}{f' ({parameter})' if parameter else ''}; "
                              f"{kind} topics: {', '.join(sorted(topics)) or 'none'}")
        return topic
    if len(topics) != 1:
        raise SourceError(f"{path}: {len(topics)} {kind} topics ({', '.join(sorted(topics)) or 'none'}); "
                          + (f"set {parameter}" if parameter else "name the one to replay"))
    return next(iter(topics))


def iter_bag(path: Path, topic: str | None = None) -> Iterator[Frame]:
    reader = open_bag_reader(path)
    try:
        name = choose_topic(path, bag_image_topics(reader), topic)
        connections = [c for c in reader.connections if c.topic == name]
        for index, (conn, log_time, raw) in enumerate(reader.messages(connections=connections)):
            yield Frame(message=reader.deserialize(raw, conn.msgtype), msgtype=conn.msgtype,
                        log_time_ns=log_time, name=f"{index:06d}")
    finally:
        reader.close()


def iter_frames(source: str | Path, topic: str | None = None) -> Iterator[Frame]:
    """Frames of a folder, a video or a bag, in order; raises SourceError before the first
    frame when the source cannot be used."""
    path = Path(source)
    if not path.exists():
        raise SourceError(f"{path}: no such file or folder (expected an image folder, a video "
                          "file or a rosbag2)")
    if is_bag(path):
        return iter_bag(path, topic)
    if path.is_dir():
        if not list_images(path):
            raise SourceError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return iter_folder(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return iter_video(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return iter([Frame(rgb=_read_rgb(path), name=path.name)])
    raise SourceError(f"{path}: not an image folder, a video ({', '.join(VIDEO_SUFFIXES)}) or a rosbag2")
