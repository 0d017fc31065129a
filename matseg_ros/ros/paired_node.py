"""A node that receives two image streams and handles them in stamp-matched pairs.

Shared by sim_evaluator (prediction + ground truth) and dataset_recorder (image + ground
truth): parameters for the class map and the pairing, sensor-data QoS subscriptions,
throttled warnings, counters and a /diagnostics status. Subclasses implement `on_pair`.
"""
from __future__ import annotations

import re
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..io.stamp_pairing import StampPairer, stamp_ns
from ..materials import MaterialMap, load_materials
from ..runtime.runstats import WarningThrottle

WARN_PERIOD_S = 5.0
DIAGNOSTICS_PERIOD_S = 1.0


class PairedImagesNode(Node):
    """Subscribes the relative topics `sides[0]` and `sides[1]` and pairs them by stamp."""

    def __init__(self, node_name: str, sides: tuple[str, str], **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameter("materials_file", "")
        self.declare_parameter("max_pending", 30)
        self.declare_parameter("stamp_tolerance", 0.0)
        self.declare_parameter("qos_depth", 10)
        materials_file = self.get_parameter("materials_file").value
        self.materials: MaterialMap = load_materials(materials_file or None)
        tolerance = float(self.get_parameter("stamp_tolerance").value)
        max_pending = int(self.get_parameter("max_pending").value)
        try:
            self.pairer: StampPairer = StampPairer(sides, max_pending, int(round(tolerance * 1e9)))
        except ValueError as exc:
            raise ValueError(f"{self.get_fully_qualified_name()}: bad pairing parameters: {exc}") from None
        self.received = {side: 0 for side in sides}
        self.counts: dict[str, int] = {}
        self._throttle = WarningThrottle(WARN_PERIOD_S)
        self._last_problem = ""
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT,
                         depth=int(self.get_parameter("qos_depth").value))
        self.subscriptions_by_side = {
            side: self.create_subscription(Image, side, lambda msg, s=side: self._on_message(s, msg), qos)
            for side in sides}
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)

    def _on_message(self, side: str, msg: Image) -> None:
        self.received[side] += 1
        pair = self.pairer.add(side, stamp_ns(msg.header.stamp), msg)
        if pair is not None:
            self.on_pair(*pair)

    def on_pair(self, stamp: int, first: Image, second: Image) -> None:
        raise NotImplementedError

    def count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def warn(self, problem: str, text: str) -> None:
        """Log at most one warning per kind of problem every few seconds, with a count."""
        self._last_problem = text
        emit, suppressed = self._throttle.check(re.sub(r"\d+", "#", problem))
        if emit:
            more = f" ({suppressed} more like it in the last {WARN_PERIOD_S:g} s)" if suppressed else ""
            self.get_logger().warning(text + more)

    def status_values(self) -> dict[str, Any]:
        """Key/values for /diagnostics; subclasses add their own."""
        values: dict[str, Any] = {f"received_{s}": n for s, n in self.received.items()}
        values["paired"] = self.pairer.paired
        values.update({f"unpaired_{s}": n for s, n in self.pairer.unpaired.items()})
        values.update(self.counts)
        return values

    def status_level(self) -> tuple[bytes, str]:
        if any(self.received.values()) and self.pairer.paired == 0 and sum(self.pairer.unpaired.values()):
            return DiagnosticStatus.WARN, "no stamp-matched pairs yet: are both topics from one camera pair?"
        if self._last_problem:
            return DiagnosticStatus.WARN, self._last_problem[:200]
        return DiagnosticStatus.OK, "ok"

    def _publish_diagnostics(self) -> None:
        level, message = self.status_level()
        status = DiagnosticStatus(level=level, name=f"matseg_ros: {self.get_fully_qualified_name()}",
                                  message=message, hardware_id="gazebo")
        status.values = [KeyValue(key=k, value=str(v)) for k, v in self.status_values().items()]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)
        self._last_problem = ""          # a problem shows in one status, not forever
