"""Depth and calibration beside replayed frames, for a camera that is not there.

Three places they come from: a folder of depth images named like the colour images (16-bit
PNG in millimetres, or 32-bit float TIFF in metres), a calibration (a ROS
`camera_calibration` YAML file, or fx/fy/cx/cy), and a rosbag2's depth and CameraInfo
topics, paired with its image topic by header stamp. ROS-free: camera_replay makes the
messages.
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from ..fileio import read_yaml
from .framesource import Frame, SourceError, bag_image_topics, choose_topic, open_bag_reader
from .stamp_pairing import StampPairer, stamp_ns

DEPTH_SUFFIXES = (".png", ".tif", ".tiff")
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

log = logging.getLogger("matseg.depth_source")


@dataclass(frozen=True)
class Calibration:
    """The fields of a sensor_msgs/CameraInfo that a calibration fixes."""

    width: int
    height: int
    k: tuple[float, ...]                      # 3x3 row-major
    d: tuple[float, ...] = (0.0,) * 5
    r: tuple[float, ...] = IDENTITY
    p: tuple[float, ...] = ()                 # 3x4 row-major; empty: [K | 0]
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        if not self.p:
            k = self.k
            object.__setattr__(self, "p", (k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0, k[6], k[7], k[8], 0.0))

    @classmethod
    def pinhole(cls, fx: float, fy: float, cx: float, cy: float, width: int, height: int) -> "Calibration":
        """An ideal camera: no distortion (plumb_bob zeros), P = [K | 0]."""
        return cls(int(width), int(height), (float(fx), 0.0, float(cx), 0.0, float(fy), float(cy), 0.0, 0.0, 1.0))

    def sized(self, width: int, height: int) -> "Calibration":
        """This calibration with the size filled in where it was not known (fx/fy/cx/cy)."""
        return self if self.width and self.height else replace(self, width=int(width), height=int(height))


def _matrix(doc: dict, key: str, count: int, path: Path, required: bool) -> tuple[float, ...] | None:
    entry = doc.get(key)
    if entry is None:
        if required:
            raise SourceError(f"{path}: no {key}; expected the camera_calibration format "
                              "(image_width, image_height, camera_matrix: {rows, cols, data}, ...)")
        return None
    data = entry.get("data") if isinstance(entry, dict) else entry
    try:
        values = tuple(float(v) for v in data)
    except (TypeError, ValueError):
        raise SourceError(f"{path}: {key} must be a list of numbers (or {{rows, cols, data}}), "
                          f"got {entry!r}") from None
    if count and len(values) != count:
        raise SourceError(f"{path}: {key} must have {count} values, got {len(values)}")
    return values


def load_calibration(path: str | Path) -> Calibration:
    """A ROS camera_calibration YAML file (what `cameracalibrator` writes and camera drivers read)."""
    path = Path(path)
    doc = read_yaml(path, "the camera calibration", SourceError)
    if not isinstance(doc, dict):
        raise SourceError(f"{path}: expected a camera_calibration mapping, got {type(doc).__name__}")
    size = []
    for key in ("image_width", "image_height"):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SourceError(f"{path}: {key} must be a positive whole number of pixels, got {value!r}")
        size.append(value)
    k = _matrix(doc, "camera_matrix", 9, path, required=True)
    if k[0] <= 0 or k[4] <= 0:
        raise SourceError(f"{path}: camera_matrix must have positive fx and fy, got {k[0]} and {k[4]}")
    d = _matrix(doc, "distortion_coefficients", 0, path, required=False)
    r = _matrix(doc, "rectification_matrix", 9, path, required=False)
    p = _matrix(doc, "projection_matrix", 12, path, required=False)
    model = doc.get("distortion_model", "plumb_bob")
    return Calibration(size[0], size[1], k, (0.0,) * 5 if d is None else d,
                       r or IDENTITY, p or (), str(model))


def depth_files(folder: str | Path) -> dict[str, Path]:
    """Depth images of a folder by stem (frame_0001.png -> frame_0001)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder of depth images")
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in DEPTH_SUFFIXES}


def read_depth(path: Path) -> tuple[np.ndarray, str]:
    """(depth, encoding): a 16-bit image is millimetres (16UC1), a float32 one metres (32FC1)."""
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if depth is None:
        raise SourceError(f"{path}: cannot read as a depth image")
    if depth.ndim != 2:
        raise SourceError(f"{path}: depth must have one channel, got {depth.shape[2]}")
    if depth.dtype == np.uint16:
        return depth, "16UC1"
    if depth.dtype == np.float32:
        return depth, "32FC1"
    raise SourceError(f"{path}: depth must be 16-bit (millimetres) or 32-bit float (metres), got {depth.dtype}")


def with_depth(frames: Iterator[Frame], depth: dict[str, Path]) -> Iterator[Frame]:
    """Each frame with the depth image of its stem, where there is a readable one."""
    for frame in frames:
        path = depth.get(Path(frame.name).stem)
        if path is not None:
            try:
                frame.depth, frame.depth_encoding = read_depth(path)
            except SourceError as exc:
                log.warning("%s; frame %s published without depth", exc, frame.name)
        yield frame


def _bag_topic(path: Path, reader: Any, topic: str, msgtype: str, parameter: str) -> str:
    topics = {c.topic: c.msgtype for c in reader.connections if c.msgtype == msgtype}
    return choose_topic(path, topics, topic, msgtype, parameter)


class BagDepth:
    """A bag's image topic with its depth topic paired by stamp (within `tolerance_ns`) and
    the CameraInfo nearest in stamp. Images without a depth partner are counted, not sent."""

    def __init__(self, path: str | Path, image_topic: str | None, depth_topic: str,
                 info_topic: str | None, tolerance_ns: int = 0) -> None:
        self.path = Path(path)
        self.tolerance_ns = tolerance_ns
        reader = open_bag_reader(self.path)
        try:
            self.depth_topic = _bag_topic(self.path, reader, depth_topic, "sensor_msgs/msg/Image", "depth_topic")
            images = {t: m for t, m in bag_image_topics(reader).items() if t != self.depth_topic}
            self.image_topic = choose_topic(self.path, images, image_topic)
            self.info_topic = _bag_topic(self.path, reader, info_topic or "", INFO_TYPE, "camera_info_topic")
            infos = []
            for conn, _, raw in reader.messages(connections=[c for c in reader.connections
                                                             if c.topic == self.info_topic]):
                msg = reader.deserialize(raw, conn.msgtype)
                infos.append((stamp_ns(msg.header.stamp), msg))
        finally:
            reader.close()
        if not infos:
            raise SourceError(f"{self.path}: camera_info_topic {self.info_topic!r} has no messages")
        infos.sort(key=lambda item: item[0])
        self._info_stamps = [s for s, _ in infos]
        self._infos = [m for _, m in infos]
        self.pairer: StampPairer[Any] = StampPairer(("image", "depth"), tolerance_ns=tolerance_ns)

    def camera_info(self, stamp: int) -> Any:
        i = bisect.bisect_left(self._info_stamps, stamp)
        near = [j for j in (i - 1, i) if 0 <= j < len(self._infos)]
        return self._infos[min(near, key=lambda j: abs(self._info_stamps[j] - stamp))]

    def __iter__(self) -> Iterator[Frame]:
        reader = open_bag_reader(self.path)
        try:
            topics = {self.image_topic: "image", self.depth_topic: "depth"}
            connections = [c for c in reader.connections if c.topic in topics]
            for conn, log_time, raw in reader.messages(connections=connections):
                msg = reader.deserialize(raw, conn.msgtype)
                pair = self.pairer.add(topics[conn.topic], stamp_ns(msg.header.stamp), (conn.msgtype, msg))
                if pair is not None:
                    stamp, (msgtype, image), (_, depth) = pair
                    yield Frame(message=image, msgtype=msgtype, log_time_ns=log_time,
                                name=f"{self.pairer.paired - 1:06d}", depth_message=depth,
                                info_message=self.camera_info(stamp))
        finally:
            reader.close()
            self.pairer.flush()


def millimetres(depth_m: np.ndarray) -> np.ndarray:
    """Metres (0, NaN or inf: no reading) as a 16UC1 image: rounded mm, 0 where there is no
    reading or it is beyond 65.535 m."""
    mm = np.nan_to_num(np.asarray(depth_m, np.float64) * 1000.0, nan=0.0, posinf=0.0, neginf=0.0)
    mm = np.rint(mm)
    mm[(mm < 0) | (mm > 65535)] = 0
    return mm.astype(np.uint16)


def write_calibration(path: str | Path, calibration: Calibration, camera_name: str = "camera") -> None:
    """`calibration` as a camera_calibration YAML file (what `load_calibration` reads)."""
    import yaml

    from ..fileio import atomic_write_text

    def matrix(rows: int, cols: int, values: tuple[float, ...]) -> dict:
        return {"rows": rows, "cols": cols, "data": [float(v) for v in values]}

    doc = {"image_width": calibration.width, "image_height": calibration.height, "camera_name": camera_name,
           "camera_matrix": matrix(3, 3, calibration.k), "distortion_model": calibration.distortion_model,
           "distortion_coefficients": matrix(1, len(calibration.d), calibration.d),
           "rectification_matrix": matrix(3, 3, calibration.r), "projection_matrix": matrix(3, 4, calibration.p)}
    atomic_write_text(path, yaml.safe_dump(doc, sort_keys=False))
