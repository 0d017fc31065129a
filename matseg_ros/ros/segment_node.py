"""segment_node: camera images in; class-id mask, palette mask, overlay, material summary out.

The subscription callback only drops the message into a one-slot buffer; one worker
thread runs the model on the newest frame, so a slow model skips frames (counted)
instead of building a queue. Outputs without a subscriber are not computed. All ML
work lives in `matseg_ros.runtime.pipeline`; this module is ROS glue.
"""
from __future__ import annotations

import json
import re
import sys
import threading
import time
import traceback
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import String

from . import node_params
from ..runtime.encodings import ImageDecodeError, numpy_to_image
from ..runtime.latest import LatestSlot
from ..runtime.pipeline import (COLORED, MATERIALS, OUTPUTS, OVERLAY, RAW, FramePipeline, decode_frame,
                                materials_document, resolve_materials)
from ..runtime.runstats import LatencyWindow, RateMeter, WarningThrottle
from .runner import run_node

try:  # a ROS install with vision_msgs: also publish the standard LabelInfo
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None

NODE_NAME = "matseg"
TOPICS = {RAW: "~/raw_segmentation_mask", COLORED: "~/colored_segmentation_mask",
          OVERLAY: "~/overlay", MATERIALS: "~/materials"}
PUBLISH_PARAM = {RAW: "publish_raw", COLORED: "publish_colored", OVERLAY: "publish_overlay",
                 MATERIALS: "publish_materials"}
OUTPUT_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_PERIOD_S = 1.0
WARN_PERIOD_S = 5.0


class StartupError(RuntimeError):
    """The node cannot run as configured; the message is the one line the user sees."""


def _default_model_path() -> str:
    from ..paths import default_model_path
    try:
        return str(default_model_path())
    except FileNotFoundError:
        return ""


class SegmentNode(Node):
    """The segmentation node. `engine` may be passed in (tests, embedding); else it is
    loaded from the `model_path`, `backend`, `device`, `precision`, `require_gpu` parameters."""

    def __init__(self, engine: Any = None, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self._params = self._declare_parameters()
        p = self._params
        if engine is None:
            engine = self._load_engine(p)
        try:
            materials = resolve_materials(engine.classes, p["materials_file"])
        except (OSError, ValueError) as exc:
            raise StartupError(str(exc)) from exc
        self.engine = engine
        self.pipeline = FramePipeline(engine, materials, p["overlay_alpha"], p["min_material_fraction"])

        self._slot: LatestSlot[tuple[Any, float]] = LatestSlot()
        self._received = RateMeter()
        self._processed = RateMeter()
        self._latency = LatencyWindow()
        self._throttle = WarningThrottle(WARN_PERIOD_S)
        self.counts = {"rejected": 0, "idle": 0, "failed": 0, **{f"published_{o}": 0 for o in OUTPUTS}}
        self._last_reject = ""
        self._reported = {"rejected": 0, "failed": 0}  # counts at the previous /diagnostics

        self._pubs = {name: self.create_publisher(Image if name != MATERIALS else String, topic, OUTPUT_QOS)
                      for name, topic in TOPICS.items()}
        self._publish_class_map(materials)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        input_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=p["qos_depth"],
            reliability=(ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT))
        msg_type, topic = (CompressedImage, "image/compressed") if p["compressed"] else (Image, "image")
        self._sub = self.create_subscription(msg_type, topic, self._on_image, input_qos)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="matseg-worker", daemon=True)
        self._worker.start()
        self._diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(
            f"segmenting {self._sub.topic_name} ({p['qos_reliability']}, depth {p['qos_depth']}) with "
            f"{getattr(engine, 'backend', '?')} on {getattr(engine, 'device', '?')} "
            f"(providers: {', '.join(getattr(engine, 'providers', []) or ['-'])}); "
            f"{len(materials)} classes; outputs under {self.get_fully_qualified_name()}/")

    # --- start-up -----------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        values = {}
        for name, (default, _, _) in node_params.PARAMETERS.items():
            if name == "model_path":
                default = _default_model_path()
            try:
                param = self.declare_parameter(name, default, node_params.descriptor(name))
            except Exception as exc:  # rclpy's InvalidParameter(Value|Type)Exception and kin
                raise StartupError(f"parameter {name}: {exc}") from exc
            values[name] = param.value
            if name == "model_path" and not param.value:  # "" in a params file: the shipped model
                values[name] = _default_model_path()
            reason = node_params.validate(name, param.value)
            if reason:
                raise StartupError(f"parameter {reason}")
        return values

    @staticmethod
    def _load_engine(p: dict[str, Any]) -> Any:
        from ..runtime.engine import load_engine
        if not p["model_path"]:
            raise StartupError("no model: set the model_path parameter (the shipped "
                               "models/default.onnx was not found)")
        try:
            return load_engine(p["model_path"], backend=p["backend"], device=p["device"],
                               precision=p["precision"], require_gpu=p["require_gpu"])
        except (RuntimeError, OSError, ValueError) as exc:  # EngineError, metadata and file errors
            raise StartupError(str(exc)) from exc
        except ImportError as exc:
            raise StartupError(f"backend {p['backend']!r} for {p['model_path']} needs the Python "
                               f"package {exc.name!r}, which is not installed (see the README, "
                               "'On a ROS 2 machine')") from exc

    def _publish_class_map(self, materials: Any) -> None:
        classes = self.create_publisher(String, "~/classes", LATCHED_QOS)
        classes.publish(String(data=json.dumps(
            {"classes": materials.entries(), "ignore_index": materials.ignore_index})))
        if LabelInfo is not None:
            info = LabelInfo(class_map=[VisionClass(class_id=m.id, class_name=m.name) for m in materials],
                             threshold=0.0)
            info.header.stamp = self.get_clock().now().to_msg()
            self.create_publisher(LabelInfo, "~/label_info", LATCHED_QOS).publish(info)

    # --- parameters at run time ---------------------------------------------
    def _check_parameters(self, params: list[Parameter]) -> SetParametersResult:
        for param in params:
            if param.name in node_params.PARAMETERS:
                reason = node_params.validate(param.name, param.value)
                if reason:
                    return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list[Parameter]) -> None:
        for param in params:
            if param.name in node_params.PARAMETERS:
                self._params[param.name] = param.value
        self.pipeline.overlay_alpha = self._params["overlay_alpha"]
        self.pipeline.min_material_fraction = self._params["min_material_fraction"]

    # --- frames ---------------------------------------------------------------
    def _on_image(self, msg: Any) -> None:
        self._received.tick()
        self._slot.put((msg, time.monotonic()))

    def wanted_outputs(self) -> set[str]:
        """Outputs enabled by parameter and with at least one subscriber right now."""
        return {name for name, pub in self._pubs.items()
                if self._params[PUBLISH_PARAM[name]] and pub.get_subscription_count() > 0}

    def _work(self) -> None:
        last_start = -float("inf")
        while not self._stop.is_set():
            max_rate = self._params["max_rate_hz"]
            wait = last_start + 1.0 / max_rate - time.monotonic() if max_rate > 0 else 0.0
            if wait > 0:  # in slices, so that a new max_rate_hz applies at once
                self._stop.wait(min(wait, 0.2))
                continue
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            last_start = time.monotonic()
            try:
                self._process(*item)
            except Exception as exc:  # keep the camera pipeline alive; say what broke, throttled
                if self._stop.is_set() or not self.context.ok():  # Ctrl-C shut rclpy down mid-frame
                    break
                self.counts["failed"] += 1
                self._warn(f"processing failed: {type(exc).__name__}",  # throttled per kind
                           f"processing a frame failed:\n{traceback.format_exc()}")

    def _process(self, msg: Any, received: float) -> None:
        outputs = self.wanted_outputs()
        if not outputs:
            self.counts["idle"] += 1
            return
        try:
            rgb = decode_frame(msg)
        except ImageDecodeError as exc:
            self.counts["rejected"] += 1
            self._last_reject = str(exc)
            self._warn(re.sub(r"\d+", "#", str(exc)),
                       f"rejected a frame on {self._sub.topic_name} "
                       f"(frame_id {msg.header.frame_id!r}): {exc}")
            return
        result = self.pipeline.run(rgb, outputs)
        header = msg.header
        for name, array, encoding in ((RAW, result.ids, "mono8"), (COLORED, result.colored, "rgb8"),
                                      (OVERLAY, result.overlay, "rgb8")):
            if name in outputs:
                out = numpy_to_image(array, encoding, Image())
                out.header = header
                self._pubs[name].publish(out)
                self.counts[f"published_{name}"] += 1
        if MATERIALS in outputs:
            doc = materials_document(result.materials, header.stamp.sec, header.stamp.nanosec,
                                     header.frame_id, rgb.shape[0], rgb.shape[1])
            self._pubs[MATERIALS].publish(String(data=json.dumps(doc, separators=(",", ":"))))
            self.counts[f"published_{MATERIALS}"] += 1
        self._latency.add(time.monotonic() - received)
        self._processed.tick()

    def _warn(self, key: str, text: str) -> None:
        emit, suppressed = self._throttle.check(key)
        if emit:
            more = f" ({suppressed} more like it in the last {WARN_PERIOD_S:g} s)" if suppressed else ""
            self.get_logger().warning(text + more)

    # --- diagnostics ----------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters and rates, as published on /diagnostics."""
        return {
            "input_rate_hz": round(self._received.rate(), 2),
            "output_rate_hz": round(self._processed.rate(), 2),
            "latency_p50_ms": round(self._latency.percentile(50) * 1e3, 2),
            "latency_p95_ms": round(self._latency.percentile(95) * 1e3, 2),
            "frames_received": self._slot.put_count,
            "frames_processed": self._processed.count,
            "frames_dropped": self._slot.dropped,
            "frames_rejected": self.counts["rejected"],
            "frames_idle": self.counts["idle"],
            "frames_failed": self.counts["failed"],
            **{k: v for k, v in self.counts.items() if k.startswith("published_")},
        }

    def status(self) -> tuple[bytes, str]:
        """Level and message of the status: WARN while the input is silent (never started, or
        quiet for input_timeout_s) or while frames are rejected or fail; a problem that has
        passed shows in one status, not forever (the counters keep the totals)."""
        topic, timeout = self._sub.topic_name, self._params["input_timeout_s"]
        silent = self._received.since_last()
        new = {key: self.counts[key] - self._reported[key] for key in self._reported}
        self._reported = {key: self.counts[key] for key in self._reported}
        if silent is None:
            return DiagnosticStatus.WARN, f"no images received on {topic}"
        if timeout > 0 and silent > timeout:
            return DiagnosticStatus.WARN, f"no images on {topic} for {silent:.1f} s"
        if new["rejected"] or new["failed"]:
            return DiagnosticStatus.WARN, (
                f"{new['rejected']} frames rejected, {new['failed']} failed since the last report"
                + (f"; last: {self._last_reject}" if self._last_reject else ""))
        return DiagnosticStatus.OK, "segmenting"

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        level, message = self.status()
        engine = self.engine
        values = {**stats, "backend": getattr(engine, "backend", ""),
                  "providers": ",".join(getattr(engine, "providers", []) or []),
                  "device": getattr(engine, "device", ""), "input_topic": self._sub.topic_name,
                  "model_path": self._params["model_path"]}
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: segmentation", message=message,
                                  hardware_id=str(values["device"]),
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        self._stop.set()
        self._slot.close()
        self._worker.join(timeout=2.0)
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    return run_node("segment_node", SegmentNode, (StartupError,), args)


if __name__ == "__main__":
    sys.exit(main())
