"""camera_replay: publish an image folder, a video or a rosbag2 image topic as a camera.

    camera_replay --ros-args -p source:=frames/ -p rate_hz:=15.0 -p loop:=true

Publishes `camera/image_raw` (sensor_msgs/Image) and `camera/camera_info` with the
node's clock for stamps (or the recorded ones, for bags, with keep_stamps) and the
`frame_id` parameter. Images from a bag pass through unchanged; compressed ones and
folder/video frames are published in `encoding` (rgb8 or bgr8). Exits when the source
is exhausted unless `loop` is set.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterator

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..io.framesource import Frame, SourceError, iter_frames
from ..runtime.encodings import ImageDecodeError, numpy_to_image
from ..runtime.pipeline import decode_frame
from .node_params import declare_error
from .runner import run_node

SETTLE_S = 0.5  # after wait_for_subscribers is reached, for their side of discovery to finish

PARAMETERS: dict[str, tuple[Any, str]] = {
    "source": ("", "image folder, video file or rosbag2 (folder, .mcap or .db3) to replay"),
    "topic": ("", "bag only: the image topic to replay (may be omitted if the bag has one)"),
    "rate_hz": (10.0, "frames per second, > 0"),
    "loop": (False, "start again at the end instead of exiting"),
    "max_frames": (0, "stop after this many frames; 0: all"),
    "frame_id": ("camera", "header.frame_id of the published images"),
    "encoding": ("rgb8", "encoding of decoded frames: rgb8 or bgr8 (bag Images pass through)"),
    "keep_stamps": (False, "bag only: keep the recorded header stamps instead of the clock's"),
    "qos_reliability": ("best_effort", "best_effort (like a camera driver) or reliable"),
    "qos_depth": (5, "publisher history depth"),
    "wait_for_subscribers": (0, f"wait until this many subscribers match (then {SETTLE_S:g} s more) "
                                "before the first frame"),
    "wait_timeout_s": (30.0, "give up waiting for subscribers after this long (then publish anyway)"),
}


class StartupError(RuntimeError):
    pass


class CameraReplay(Node):
    def __init__(self, **node_kwargs: Any) -> None:
        super().__init__("camera_replay", **node_kwargs)
        p = {}
        for name, (default, text) in PARAMETERS.items():
            try:
                p[name] = self.declare_parameter(
                    name, default, ParameterDescriptor(description=text, read_only=True)).value
            except Exception as exc:  # rclpy's InvalidParameter(Value|Type)Exception
                raise StartupError(declare_error(name, exc)) from exc
        self.p = p
        if not p["source"]:
            raise StartupError("set the source parameter: -p source:=FOLDER|VIDEO|BAG")
        if not p["rate_hz"] > 0:
            raise StartupError(f"rate_hz must be > 0, got {p['rate_hz']}")
        if p["encoding"] not in ("rgb8", "bgr8"):
            raise StartupError(f"encoding must be rgb8 or bgr8, got {p['encoding']!r}")
        if p["qos_reliability"] not in ("best_effort", "reliable"):
            raise StartupError(f"qos_reliability must be best_effort or reliable, got {p['qos_reliability']!r}")
        self._frames = self._open()
        try:  # fail at start-up, not at the first tick, on an unusable source
            self._next: Frame | None = next(self._frames)
        except SourceError as exc:
            raise StartupError(str(exc)) from exc
        except StopIteration:
            raise StartupError(f"{p['source']}: no frames to replay") from None
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(1, p["qos_depth"]),
                         reliability=(ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable"
                                      else ReliabilityPolicy.BEST_EFFORT))
        self.image_pub = self.create_publisher(Image, "camera/image_raw", qos)
        self.info_pub = self.create_publisher(CameraInfo, "camera/camera_info", qos)
        self.published = 0
        self.done = False
        self._wait_started = time.monotonic()
        self._seen_all: float | None = None
        self._timer = self.create_timer(1.0 / p["rate_hz"], self._tick)
        waiting = p["wait_for_subscribers"]
        self.get_logger().info(
            f"publishing {p['source']}{' (' + p['topic'] + ')' if p['topic'] else ''} on "
            f"{self.image_pub.topic_name} and {self.info_pub.topic_name} at {p['rate_hz']:g} Hz "
            f"({p['encoding']} for decoded frames, {p['qos_reliability']}"
            f"{', looping' if p['loop'] else ''}"
            f"{', at most ' + str(p['max_frames']) + ' frames' if p['max_frames'] else ''})"
            + (f"; first waiting for {waiting} subscriber(s)" if waiting > 0 else ""))

    def _open(self) -> Iterator[Frame]:
        while True:
            yield from iter_frames(self.p["source"], self.p["topic"] or None)
            if not self.p["loop"]:
                return

    def _subscribers_ready(self) -> bool:
        """True once `wait_for_subscribers` subscribers have been seen for SETTLE_S: discovery
        runs on each side separately, and a subscriber that this publisher has matched may
        not yet have matched it back (a best-effort frame sent then is lost to it)."""
        wanted = self.p["wait_for_subscribers"]
        if wanted <= 0:
            return True
        if self.image_pub.get_subscription_count() >= wanted:
            if self._seen_all is None:
                self._seen_all = time.monotonic()
            return time.monotonic() - self._seen_all >= SETTLE_S
        if time.monotonic() - self._wait_started > self.p["wait_timeout_s"]:
            self.get_logger().warning(f"only {self.image_pub.get_subscription_count()} of {wanted} "
                                      "subscribers after the wait timeout; publishing anyway")
            self.p["wait_for_subscribers"] = 0
            return True
        return False

    def _tick(self) -> None:
        if self.done or not self._subscribers_ready():
            return
        frame = self._next
        if frame is None or (self.p["max_frames"] and self.published >= self.p["max_frames"]):
            self.done = True
            return
        msg = self._to_image(frame)
        if msg is not None:
            if not (self.p["keep_stamps"] and frame.message is not None):
                msg.header.stamp = self.get_clock().now().to_msg()
            msg.header.frame_id = self.p["frame_id"]
            info = CameraInfo(header=msg.header, height=msg.height, width=msg.width)
            self.image_pub.publish(msg)
            self.info_pub.publish(info)
            self.published += 1
        self._next = next(self._frames, None)

    def _to_image(self, frame: Frame) -> Image | None:
        if frame.message is not None and frame.msgtype.endswith("/Image"):
            src = frame.message
            msg = Image(height=src.height, width=src.width, encoding=src.encoding,
                        is_bigendian=src.is_bigendian, step=src.step, data=np.asarray(src.data).tobytes())
            msg.header.stamp.sec, msg.header.stamp.nanosec = src.header.stamp.sec, src.header.stamp.nanosec
            return msg
        rgb = frame.rgb
        if rgb is None:
            try:
                rgb = decode_frame(frame.message)
            except ImageDecodeError as exc:
                self.get_logger().warning(f"skipping recorded frame {frame.name}: {exc}")
                return None
        msg = Image()
        if self.p["encoding"] == "bgr8":
            numpy_to_image(np.ascontiguousarray(rgb[..., ::-1]), "bgr8", msg)
        else:
            numpy_to_image(rgb, "rgb8", msg)
        if frame.message is not None:
            stamp = frame.message.header.stamp
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp.sec, stamp.nanosec
        return msg


def _replay(node: CameraReplay) -> None:
    while rclpy.ok() and not node.done:
        rclpy.spin_once(node, timeout_sec=0.1)
    end = time.monotonic() + 0.5  # let the last samples leave before the process does
    while rclpy.ok() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)


def _report(node: CameraReplay) -> None:
    """Runs at the end of the source and on Ctrl-C alike."""
    how = "source exhausted" if node.done else "stopped"
    node.get_logger().info(f"{how}: published {node.published} frames on {node.image_pub.topic_name}")


def main(args: list[str] | None = None) -> int:
    return run_node("camera_replay", CameraReplay, (StartupError,), args, spin=_replay, on_exit=_report)


if __name__ == "__main__":
    sys.exit(main())
