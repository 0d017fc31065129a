"""One camera of segment_node: its input subscriptions (image, depth, camera_info), its
output publishers, its depth partner buffer and its counters.

With a single camera the topics are the node's own (`image`, `~/raw_segmentation_mask`);
with several, each camera C has `C/image`, `C/depth`, `C/camera_info` in and
`C/<node name>/<output>` out, so every output sits under its camera's namespace.
"""
from __future__ import annotations

from typing import Any, Callable

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import String

from ..io.stamp_pairing import NearestStamp, stamp_ns
from ..runtime.pipeline import CLOUD, COLORED, CONFIDENCE, MATERIALS, OVERLAY, RAW

OUTPUT_NAMES = {RAW: "raw_segmentation_mask", COLORED: "colored_segmentation_mask", OVERLAY: "overlay",
                MATERIALS: "materials", CONFIDENCE: "confidence", CLOUD: "material_cloud"}
OUTPUT_TYPES = {MATERIALS: String, CLOUD: PointCloud2}
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
DEPTH_BUFFER = 10


def input_qos(reliability: str, depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=(ReliabilityPolicy.RELIABLE if reliability == "reliable"
                                   else ReliabilityPolicy.BEST_EFFORT))


class CameraChannel:
    """Topics and per-camera state; the node owns the model, the worker and the schedule."""

    def __init__(self, node: Any, name: str, node_name: str) -> None:
        self.node = node
        self.name = name                      # "" for the single default camera
        self.prefix = f"{name.rstrip('/')}/" if name else ""
        self.out_prefix = f"{self.prefix}{node_name}/" if name else "~/"
        self.publishers: dict[str, Any] = {}
        self.subscriptions: list[Any] = []
        self.depth = NearestStamp(DEPTH_BUFFER)
        self.camera_info: Any = None
        self.counts = {"rejected": 0, "depth_rejected": 0, "depth_unpaired": 0, "no_camera_info": 0}
        self.last_problem = ""

    @property
    def image_topic(self) -> str:
        return self.subscriptions[0].topic_name if self.subscriptions else f"{self.prefix}image"

    def create_publishers(self, with_cloud: bool) -> None:
        """Every output, the cloud only `with_cloud` (use_depth): nothing is advertised that
        can never be published."""
        for output, name in OUTPUT_NAMES.items():
            if output == CLOUD and not with_cloud:
                continue
            self.publishers[output] = self.node.create_lifecycle_publisher(
                OUTPUT_TYPES.get(output, Image), f"{self.out_prefix}{name}", OUTPUT_QOS)

    def destroy_publishers(self) -> None:
        for publisher in self.publishers.values():
            self.node.destroy_lifecycle_publisher(publisher)
        self.publishers = {}

    def subscribe(self, on_image: Callable[[Any], None], compressed: bool, use_depth: bool,
                  qos: QoSProfile) -> None:
        msg_type, topic = (CompressedImage, "image/compressed") if compressed else (Image, "image")
        self.subscriptions = [self.node.create_subscription(msg_type, f"{self.prefix}{topic}", on_image, qos)]
        if use_depth:
            self.subscriptions += [
                self.node.create_subscription(Image, f"{self.prefix}depth", self._on_depth, qos),
                self.node.create_subscription(CameraInfo, f"{self.prefix}camera_info", self._on_info, qos)]

    def unsubscribe(self) -> None:
        for subscription in self.subscriptions:
            self.node.destroy_subscription(subscription)
        self.subscriptions = []

    def _on_depth(self, msg: Image) -> None:
        self.depth.add(stamp_ns(msg.header.stamp), msg)

    def _on_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def wanted(self, enabled: Callable[[str], bool]) -> set[str]:
        """Outputs enabled by parameter and with at least one subscriber right now."""
        return {output for output, pub in self.publishers.items()
                if enabled(output) and pub.get_subscription_count() > 0}
