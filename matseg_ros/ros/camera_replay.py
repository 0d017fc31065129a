"""camera_replay: publish an image folder, a video or a rosbag2 image topic as a camera,
with depth and calibration where the source has them.

    camera_replay --ros-args -p source:=frames/ -p rate_hz:=15.0 -p loop:=true
    camera_replay --ros-args -p source:=rooms/images -p depth_dir:=rooms/depth -p calibration_file:=rooms/camera_info.yaml

Publishes `camera/image_raw` (sensor_msgs/Image), `camera/camera_info` (calibrated with
`calibration_file`, fx/fy/cx/cy or a bag's CameraInfo; else size only) and, with
`depth_dir` or a bag's `depth_topic`, `camera/depth/image_raw` (16UC1 mm or 32FC1 m), all
three with one header: the node's clock for stamps (or the recorded ones, for bags, with
keep_stamps) and the `frame_id` parameter. Images from a bag pass through unchanged;
compressed ones and folder/video frames are published in `encoding` (rgb8 or bgr8).
Exits when the source is exhausted unless `loop` is set. Fast DDS gets the package's
large-image profile unless FASTDDS_DEFAULT_PROFILES_FILE is set.
"""
from __future__ import annotations

import functools
import signal
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import uninstall_signal_handlers
from sensor_msgs.msg import CameraInfo, Image

from ..io.depth_source import BagDepth, Calibration, depth_files, load_calibration, with_depth
from ..io.framesource import Frame, SourceError, is_bag, iter_frames, list_images
from ..paths import use_fastdds_profile
from ..runtime.encodings import ImageDecodeError, numpy_to_image
from ..runtime.pipeline import decode_frame
from .node_params import declare_error
from .runner import run_node

SETTLE_S = 0.5  # after wait_for_subscribers is reached, for their side of discovery to finish
INTRINSICS = ("fx", "fy", "cx", "cy")

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
    "depth_dir": ("", "folder or video: depth images named like the frames (16-bit PNG in mm or "
                      "32-bit float TIFF in m), published on camera/depth/image_raw"),
    "depth_topic": ("", "bag only: the depth Image topic, paired by stamp with the image topic and "
                        "published on camera/depth/image_raw"),
    "camera_info_topic": ("", "bag only, with depth_topic: the CameraInfo topic (may be omitted if the "
                              "bag has one)"),
    "depth_tolerance_s": (0.02, "bag only: largest stamp difference between an image and its depth "
                                "image, 0..1 s"),
    "calibration_file": ("", "camera_calibration YAML (image_width, image_height, camera_matrix, "
                             "distortion_coefficients) for camera/camera_info"),
    **{name: (0.0, "instead of calibration_file: intrinsics in pixels (all four of fx, fy, cx, cy; "
                   "0: unset)") for name in INTRINSICS},
}


class StartupError(RuntimeError):
    pass


class CameraReplay(Node):
    def __init__(self, profile: tuple[str, bool] | None = None, **node_kwargs: Any) -> None:
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
        if not 0.0 <= p["depth_tolerance_s"] <= 1.0:
            raise StartupError(f"depth_tolerance_s must be in 0..1 s, got {p['depth_tolerance_s']}")
        self.calibration = self._calibration()
        self._bag_depth: BagDepth | None = None
        self._depth: dict[str, Path] | None = None
        self._check_depth()
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
        self.depth_pub = (self.create_publisher(Image, "camera/depth/image_raw", qos)
                          if self._depth is not None or self._bag_depth is not None else None)
        self.published = 0
        self.with_depth = 0
        self.done = False
        self._wait_started = time.monotonic()
        self._seen_all: float | None = None
        self._timer = self.create_timer(1.0 / p["rate_hz"], self._tick)
        waiting = p["wait_for_subscribers"]
        topics = [pub.topic_name for pub in (self.image_pub, self.info_pub, self.depth_pub) if pub is not None]
        self.get_logger().info(
            f"publishing {p['source']}{' (' + p['topic'] + ')' if p['topic'] else ''} on "
            f"{', '.join(topics[:-1])} and {topics[-1]} at {p['rate_hz']:g} Hz "
            f"({p['encoding']} for decoded frames, {p['qos_reliability']}"
            f"{', looping' if p['loop'] else ''}"
            f"{', at most ' + str(p['max_frames']) + ' frames' if p['max_frames'] else ''})"
            f"; {self._describe_depth()}"
            + (f"; first waiting for {waiting} subscriber(s)" if waiting > 0 else ""))
        if profile is not None:
            path, ours = profile
            self.get_logger().info(f"Fast DDS profile: {path} ("
                                   + ("the package's, as FASTDDS_DEFAULT_PROFILES_FILE was unset)" if ours
                                      else "from FASTDDS_DEFAULT_PROFILES_FILE)"))

    def _calibration(self) -> Calibration | None:
        p = self.p
        given = [name for name in INTRINSICS if p[name] != 0.0]
        if given and p["calibration_file"]:
            raise StartupError("set calibration_file or fx, fy, cx, cy, not both")
        if given:
            if len(given) != 4 or p["fx"] <= 0 or p["fy"] <= 0:
                raise StartupError("parameters fx, fy, cx, cy must all be set (fx, fy > 0) together, got "
                                   + ", ".join(f"{n}={p[n]:g}" for n in INTRINSICS))
            return Calibration.pinhole(p["fx"], p["fy"], p["cx"], p["cy"], 0, 0)
        if p["calibration_file"]:
            try:
                return load_calibration(p["calibration_file"])
            except SourceError as exc:
                raise StartupError(f"parameter calibration_file: {exc}") from exc
        return None

    def _check_depth(self) -> None:
        """Depth parameters that fit the source; a depth folder that matches some frames."""
        p = self.p
        bag = is_bag(Path(p["source"]))
        if p["depth_dir"] and bag:
            raise StartupError("depth_dir is for folders and videos; for a bag set depth_topic")
        if (p["depth_topic"] or p["camera_info_topic"]) and not bag:
            raise StartupError(f"depth_topic and camera_info_topic are for bags; {p['source']} is not a "
                               "rosbag2 (for folders set depth_dir)")
        if p["camera_info_topic"] and not p["depth_topic"]:
            raise StartupError("camera_info_topic needs depth_topic")
        if p["depth_topic"]:
            if self.calibration is not None:
                raise StartupError("with depth_topic the calibration is the bag's CameraInfo: leave "
                                   "calibration_file and fx, fy, cx, cy unset")
            try:
                self._bag_depth = BagDepth(p["source"], p["topic"] or None, p["depth_topic"],
                                           p["camera_info_topic"] or None, int(p["depth_tolerance_s"] * 1e9))
            except SourceError as exc:
                raise StartupError(str(exc)) from exc
        if p["depth_dir"]:
            if self.calibration is None:
                raise StartupError("depth_dir needs the intrinsics: set calibration_file or fx, fy, cx, cy")
            try:
                self._depth = depth_files(p["depth_dir"])
            except SourceError as exc:
                raise StartupError(f"parameter depth_dir: {exc}") from exc
            source = Path(p["source"])
            stems = {f.stem for f in list_images(source)} if source.is_dir() else set(self._depth)
            matched = len(stems & set(self._depth))
            if not matched:
                raise StartupError(f"parameter depth_dir: {p['depth_dir']} has no depth image named like a "
                                   f"frame of {source} (frame_0000.png needs frame_0000.png or .tif)")
            if matched < len(stems):
                self.get_logger().warning(f"{len(stems) - matched} of {len(stems)} frames have no depth "
                                          f"image in {p['depth_dir']}: published without depth")

    def _describe_depth(self) -> str:
        p = self.p
        if self._bag_depth is not None:
            b = self._bag_depth
            return (f"depth from {b.depth_topic} and camera_info from {b.info_topic}, paired with "
                    f"{b.image_topic} within {p['depth_tolerance_s']:g} s")
        calibration = ("camera_info from " + (p["calibration_file"] or "fx, fy, cx, cy")
                       if self.calibration is not None else "camera_info without calibration (size only)")
        return calibration + (f", depth from {p['depth_dir']}" if p["depth_dir"] else ", no depth")

    def _open(self) -> Iterator[Frame]:
        while True:
            if self._bag_depth is not None:
                yield from self._bag_depth
            elif self._depth is not None:
                yield from with_depth(iter_frames(self.p["source"]), self._depth)
            else:
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
            depth = self._to_depth(frame, msg.header)
            self.info_pub.publish(self._camera_info(frame, msg))
            if depth is not None:  # before the image: segment_node pairs the image with a depth it has
                self.depth_pub.publish(depth)
                self.with_depth += 1
            self.image_pub.publish(msg)
            self.published += 1
        self._next = next(self._frames, None)

    def _camera_info(self, frame: Frame, image: Image) -> CameraInfo:
        """The image's header with the bag's CameraInfo, the calibration, or its size only."""
        src, cal = frame.info_message, self.calibration
        if src is not None:
            return CameraInfo(header=image.header, height=src.height, width=src.width,
                              distortion_model=src.distortion_model, d=[float(v) for v in src.d],
                              k=[float(v) for v in src.k], r=[float(v) for v in src.r],
                              p=[float(v) for v in src.p], binning_x=src.binning_x, binning_y=src.binning_y)
        if cal is None:
            return CameraInfo(header=image.header, height=image.height, width=image.width)
        cal = cal.sized(image.width, image.height)
        return CameraInfo(header=image.header, height=cal.height, width=cal.width,
                          distortion_model=cal.distortion_model, d=list(cal.d), k=list(cal.k),
                          r=list(cal.r), p=list(cal.p))

    def _to_depth(self, frame: Frame, header: Any) -> Image | None:
        """The frame's depth image with the colour image's header (one stamp for the pair)."""
        if frame.depth_message is not None:
            msg = _pass_through(frame.depth_message)
        elif frame.depth is not None:
            msg = numpy_to_image(frame.depth, frame.depth_encoding, Image())
        else:
            return None
        msg.header = header
        return msg

    def _to_image(self, frame: Frame) -> Image | None:
        if frame.message is not None and frame.msgtype.endswith("/Image"):
            return _pass_through(frame.message)
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


def _pass_through(src: Any) -> Image:
    """A recorded rosbags Image as an rclpy one, unchanged, header stamp included."""
    msg = Image(height=src.height, width=src.width, encoding=src.encoding,
                is_bigendian=src.is_bigendian, step=src.step, data=np.asarray(src.data).tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = src.header.stamp.sec, src.header.stamp.nanosec
    return msg


def _replay(node: CameraReplay) -> None:
    # Ctrl-C (and SIGTERM) as a plain KeyboardInterrupt: rclpy's handler would shut the context
    # down first, and the final report's log would then fail to reach /rosout ("context is
    # invalid"). Set, not restored: a process started in the background inherits SIGINT ignored.
    uninstall_signal_handlers()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.default_int_handler)
    while rclpy.ok() and not node.done:
        rclpy.spin_once(node, timeout_sec=0.1)
    end = time.monotonic() + 0.5  # let the last samples leave before the process does
    while rclpy.ok() and time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)


def _report(node: CameraReplay) -> None:
    """Runs at the end of the source and on Ctrl-C alike, while the context is still valid."""
    how = "source exhausted" if node.done else "stopped"
    depth = f" ({node.with_depth} with depth)" if node.depth_pub is not None else ""
    unpaired = node._bag_depth.pairer.unpaired["image"] if node._bag_depth is not None else 0
    node.get_logger().info(f"{how}: published {node.published} frames{depth} on {node.image_pub.topic_name}"
                           + (f"; {unpaired} bag images had no depth partner" if unpaired else ""))


def main(args: list[str] | None = None) -> int:
    profile = use_fastdds_profile()  # before rclpy.init creates the participant
    return run_node("camera_replay", functools.partial(CameraReplay, profile), (StartupError,), args,
                    spin=_replay, on_exit=_report)


if __name__ == "__main__":
    sys.exit(main())
