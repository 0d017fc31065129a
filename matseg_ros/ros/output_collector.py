"""A subscriber that gathers segment_node's outputs, keyed by the input stamp.

Used by `matseg demo`, the benchmark and the tests: it subscribes to the node's output
topics (and optionally the camera topic, to time end to end), decodes nothing itself
and keeps receive times on one monotonic clock.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable, Iterable

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from sensor_msgs.msg import Image
from std_msgs.msg import String

from .camera import OUTPUT_NAMES, OUTPUT_TYPES

RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def stamp_key(header: Any) -> tuple[int, int]:
    return (int(header.stamp.sec), int(header.stamp.nanosec))


class OutputCollector(Node):
    """Collects `<node>/{raw_segmentation_mask,...,materials,confidence,material_cloud}`, its
    classes and /diagnostics of one segment_node; `outputs` chooses which topics (keys of
    camera.OUTPUT_NAMES); `node` is its output namespace (`/C/matseg` for a camera C)."""

    def __init__(self, node: str = "/matseg", outputs: Iterable[str] = ("raw", "colored", "overlay", "materials"),
                 camera_topic: str | None = None, name: str = "matseg_output_collector",
                 **node_kwargs: Any) -> None:
        super().__init__(name, **node_kwargs)
        self.lock = threading.Lock()
        self.received: dict[str, dict[tuple[int, int], tuple[Any, float]]] = {}
        self.camera: dict[tuple[int, int], float] = {}
        self.classes: dict[str, Any] | None = None
        self.diagnostics: dict[str, str] = {}
        self.diagnostics_level: int | None = None
        self.diagnostics_message = ""
        self._node_name = node.rstrip("/").rsplit("/", 1)[-1]
        self._output_subs = []
        for out in outputs:
            self.received[out] = {}
            if out == "materials":
                sub = self.create_subscription(String, f"{node}/materials", self._keep_materials, RELIABLE)
            else:
                sub = self.create_subscription(OUTPUT_TYPES.get(out, Image), f"{node}/{OUTPUT_NAMES[out]}",
                                               lambda msg, out=out: self._keep(out, stamp_key(msg.header), msg),
                                               RELIABLE)
            self._output_subs.append(sub)
        self.create_subscription(String, f"{node}/classes", self._keep_classes, LATCHED)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._keep_diagnostics, 10)
        if camera_topic:
            self.create_subscription(Image, camera_topic, self._keep_camera, qos_profile_sensor_data)

    def _keep(self, output: str, key: tuple[int, int], msg: Any) -> None:
        with self.lock:
            self.received[output][key] = (msg, time.monotonic())

    def _keep_materials(self, msg: String) -> None:
        doc = json.loads(msg.data)
        self._keep("materials", (doc["stamp"]["sec"], doc["stamp"]["nanosec"]), doc)

    def _keep_classes(self, msg: String) -> None:
        with self.lock:
            self.classes = json.loads(msg.data)

    def _keep_camera(self, msg: Image) -> None:
        with self.lock:
            self.camera.setdefault(stamp_key(msg.header), time.monotonic())

    def _keep_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.split(":")[0] == self._node_name:
                with self.lock:
                    self.diagnostics = {kv.key: kv.value for kv in status.values}
                    self.diagnostics_message = status.message
                    self.diagnostics_level = int.from_bytes(status.level, "little") \
                        if isinstance(status.level, bytes) else int(status.level)

    def connected(self) -> bool:
        """Every output subscription has matched the node's publisher. Endpoints are
        discovered one by one, and the node computes only outputs with a subscriber, so
        frames sent before this can arrive with some outputs missing."""
        return all(sub.get_publisher_count() > 0 for sub in self._output_subs)

    def count(self, output: str) -> int:
        with self.lock:
            return len(self.received[output])

    def get(self, output: str, key: tuple[int, int]) -> Any:
        with self.lock:
            item = self.received[output].get(key)
        return None if item is None else item[0]

    def diag(self, key: str, default: float = 0.0) -> float:
        with self.lock:
            value = self.diagnostics.get(key)
        try:
            return float(value) if value is not None else default
        except ValueError:
            return default


class BackgroundSpinner:
    """Spins nodes on a background thread so the main thread can wait on processes."""

    def __init__(self, *nodes: Node) -> None:
        from rclpy.executors import SingleThreadedExecutor
        self.executor = SingleThreadedExecutor(context=nodes[0].context)
        for node in nodes:
            self.executor.add_node(node)
        self._running = True
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self._running:
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context was shut down under us: stop quietly
                return

    def stop(self) -> None:
        self._running = False
        self.thread.join(timeout=2.0)
        self.executor.shutdown()


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.02) -> bool:
    """Poll `predicate` (another thread spins the nodes) until true or `timeout` s passed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()
