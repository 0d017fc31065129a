"""segment_node: camera images (and depth) in; class ids, palette mask, overlay, confidence,
material cloud and the material summary out, for one camera or several on one model.

A managed (lifecycle) node: configure loads the model, activate subscribes, deactivate
stops processing, cleanup releases the engine. With `lifecycle: false` (the default) it
configures and activates itself at start-up and offers no lifecycle services or
`~/transition_event`. It advertises only what its mode can publish (`~/material_cloud`
with `use_depth` only). Camera callbacks only drop each message into
its camera's one-slot buffer; one worker thread serves the cameras round-robin, newest
frame first, so a slow model skips frames (counted) instead of building a queue. Outputs
without a subscriber are not computed. All ML and geometry live in `runtime`.
"""
from __future__ import annotations

import gc
import json
import re
import sys
import threading
import time
import traceback
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterType, SetParametersResult
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String

from . import node_params
from ..io.stamp_pairing import stamp_ns
from ..paths import use_fastdds_profile
from ..runtime.depth import DepthError, Intrinsics, depth_to_metres
from ..runtime.encodings import ImageDecodeError, image_to_numpy, numpy_to_image
from ..runtime.latest import LatestSlots
from ..runtime.pipeline import (CLOUD, COLORED, CONFIDENCE, DEPTH_OUTPUTS, MATERIALS, OUTPUTS, OVERLAY, RAW,
                                DepthFrame, FramePipeline, decode_frame, materials_document, resolve_materials)
from ..runtime.runstats import LatencyWindow, RateMeter, WarningThrottle
from .camera import OUTPUT_NAMES, CameraChannel, input_qos
from .cloud import cloud_message
from .runner import run_node

try:  # a ROS install with vision_msgs: also publish the standard LabelInfo
    from vision_msgs.msg import LabelInfo, VisionClass
except ImportError:
    LabelInfo = VisionClass = None

NODE_NAME = "matseg"
TOPICS = {output: f"~/{name}" for output, name in OUTPUT_NAMES.items()}  # with one camera
PUBLISH_PARAM = {RAW: "publish_raw", COLORED: "publish_colored", OVERLAY: "publish_overlay",
                 MATERIALS: "publish_materials", CONFIDENCE: "publish_confidence", CLOUD: "publish_cloud"}
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
DIAGNOSTICS_PERIOD_S = 1.0
WARN_PERIOD_S = 5.0
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class StartupError(RuntimeError):
    """The node cannot run as configured; the message is the one line the user sees."""


def _default_path(kind: str) -> str:
    """The shipped model or disinfection file; "" where the share folder is not found."""
    from ..paths import default_model_path
    from ..runtime.disinfection import default_disinfection_path
    try:
        return str(default_model_path() if kind == "model" else default_disinfection_path())
    except FileNotFoundError:
        return ""


class SegmentNode(LifecycleNodeMixin, Node):  # the order of rclpy's LifecycleNode
    """The segmentation node. `engine` may be passed in (tests, embedding); else configure
    loads it from the `model_path`, `backend`, `device`, `precision`, `require_gpu` parameters.
    rclpy's LifecycleNode, taken apart: the `lifecycle` parameter, read first, decides whether
    there is a state machine (with its services and `~/transition_event`) at all."""

    def __init__(self, engine: Any = None, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        Node.__init__(self, node_name, **node_kwargs)
        self._params = self._declare_parameters()
        p = self._params
        if p["lifecycle"]:
            LifecycleNodeMixin.__init__(self)
        else:  # no state machine: even without its services, rcl_lifecycle's advertises ~/transition_event
            self._managed_entities = set()  # the mixin's: lifecycle publishers, activated by on_activate
        self._given_engine = engine
        self.engine: Any = None
        self.pipeline: FramePipeline | None = None
        self.channels = {name: CameraChannel(self, name, self.get_name()) for name in p["cameras"] or [""]}
        self._slots: LatestSlots[tuple[Any, float]] = LatestSlots(self.channels)
        self._received = RateMeter()
        self._processed = RateMeter()
        self._latency = LatencyWindow()
        self._throttle = WarningThrottle(WARN_PERIOD_S)
        self.counts = {"idle": 0, "failed": 0, **{f"published_{o}": 0 for o in OUTPUTS}}
        self._reported = {"rejected": 0, "failed": 0, "depth": 0}  # totals at the previous /diagnostics
        self._state = "unconfigured"
        self._startup_error = ""
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.finished = threading.Event()  # set by the shutdown transition: main() exits
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._diag_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if not p["lifecycle"]:  # the transitions' callbacks, called directly
            if self.on_configure(None) != SUCCESS:
                raise StartupError(self._startup_error or "configure failed")
            self.on_activate(None)

    # --- start-up -----------------------------------------------------------
    def _declare_parameters(self) -> dict[str, Any]:
        values = {}
        for name, (default, _, _) in node_params.PARAMETERS.items():
            if name == "model_path":
                default = _default_path("model")
            elif name == "disinfection_file":
                default = _default_path("disinfection")
            try:
                if name == "cameras":  # a string array that may be empty: declared by type
                    descriptor = node_params.descriptor(name)
                    descriptor.type = ParameterType.PARAMETER_STRING_ARRAY
                    param = self.declare_parameter(name, Parameter.Type.STRING_ARRAY, descriptor)
                else:
                    param = self.declare_parameter(name, default, node_params.descriptor(name))
            except Exception as exc:  # rclpy's InvalidParameter(Value|Type)Exception and kin
                override = getattr(self, "_parameter_overrides", {}).get(name)
                raise StartupError(node_params.declare_error(
                    name, exc, None if override is None else override.value)) from exc
            value = param.value
            if name == "cameras":
                value = list(value or [])
            elif name in ("model_path", "disinfection_file") and not value:  # "": the shipped file
                value = default
            values[name] = value
            reason = node_params.validate(name, value)
            if reason:
                raise StartupError(f"parameter {reason}")
        return values

    def _load_engine(self) -> Any:
        from ..runtime.engine import load_engine
        p = self._params
        if not p["model_path"]:
            raise StartupError("no model: set the model_path parameter (the shipped "
                               "models/default.onnx was not found)")
        try:
            return load_engine(p["model_path"], backend=p["backend"], device=p["device"],
                               precision=p["precision"], require_gpu=p["require_gpu"],
                               trt_engine_cache_enable=p["trt_engine_cache_enable"],
                               trt_engine_cache_path=p["trt_engine_cache_path"])
        except (RuntimeError, OSError, ValueError) as exc:  # EngineError, metadata and file errors
            raise StartupError(str(exc)) from exc
        except ImportError as exc:
            raise StartupError(f"backend {p['backend']!r} for {p['model_path']} needs the Python "
                               f"package {exc.name!r}, which is not installed (see the README, "
                               "'On a ROS 2 machine')") from exc

    def _build_pipeline(self, engine: Any) -> FramePipeline:
        from ..runtime.disinfection import load_disinfection
        p = self._params
        try:
            materials = resolve_materials(engine.classes, p["materials_file"])
            guidance = load_disinfection(p["disinfection_file"]) if p["disinfection_file"] else None
        except (OSError, ValueError) as exc:  # MaterialsError, DisinfectionConfigError
            raise StartupError(str(exc)) from exc
        return FramePipeline(engine, materials, p["overlay_alpha"], p["min_material_fraction"],
                             confidence_encoding=p["confidence_encoding"], cloud_stride=p["cloud_stride"],
                             disinfection=guidance)

    def _publish_class_map(self) -> None:
        materials = self.pipeline.materials
        classes = self.create_publisher(String, "~/classes", LATCHED_QOS)
        classes.publish(String(data=json.dumps(
            {"classes": materials.entries(), "ignore_index": materials.ignore_index})))
        if LabelInfo is not None:
            info = LabelInfo(class_map=[VisionClass(class_id=m.id, class_name=m.name) for m in materials],
                             threshold=0.0)
            info.header.stamp = self.get_clock().now().to_msg()
            self.create_publisher(LabelInfo, "~/label_info", LATCHED_QOS).publish(info)

    # --- lifecycle ------------------------------------------------------------
    def on_configure(self, state: LifecycleState | None) -> TransitionCallbackReturn:
        try:
            self.engine = self._given_engine if self._given_engine is not None else self._load_engine()
            self.pipeline = self._build_pipeline(self.engine)
        except Exception as exc:  # StartupError says it all; anything else also needs its traceback
            self._startup_error = str(exc) if isinstance(exc, StartupError) else \
                f"configuring failed: {type(exc).__name__}: {exc}"
            self.engine = self.pipeline = None
            if self._params["lifecycle"] or not isinstance(exc, StartupError):  # else main() prints it
                detail = "" if isinstance(exc, StartupError) else "\n" + traceback.format_exc()
                self.get_logger().error(f"configure failed: {self._startup_error}{detail}")
            return FAILURE
        for channel in self.channels.values():
            channel.create_publishers(with_cloud=self._params["use_depth"])
        self._publish_class_map()
        self._stop.clear()
        self._slots = LatestSlots(self.channels)
        self._worker = threading.Thread(target=self._work, name="matseg-worker", daemon=True)
        self._worker.start()
        self._state = "inactive"
        engine = self.engine
        self.get_logger().info(
            f"configured: {getattr(engine, 'backend', '?')} on {getattr(engine, 'device', '?')} "
            f"(providers: {', '.join(getattr(engine, 'providers', []) or ['-'])}), "
            f"{len(self.pipeline.materials)} classes, {len(self.channels)} camera(s)")
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState | None) -> TransitionCallbackReturn:
        p = self._params
        qos = input_qos(p["qos_reliability"], p["qos_depth"])
        for key, channel in self.channels.items():
            channel.subscribe(lambda msg, k=key: self._on_image(k, msg), p["compressed"], p["use_depth"], qos)
        self._state = "active"
        self.get_logger().info(
            f"active: segmenting {', '.join(c.image_topic for c in self.channels.values())} "
            f"({p['qos_reliability']}, depth {p['qos_depth']}"
            f"{', with depth and camera_info' if p['use_depth'] else ''}); outputs under "
            f"{', '.join(self._output_namespaces())}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        for channel in self.channels.values():
            channel.unsubscribe()
        self._state = "inactive"
        self.get_logger().info("inactive: not subscribed, not processing")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self.get_logger().info("cleaned up: engine released")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_serving()
        self._state = "finalized"
        self.finished.set()
        return super().on_shutdown(state)

    def _stop_serving(self) -> None:
        """In this order: no new frames, the frame in flight finished, the engine released."""
        if self._state == "active":
            for channel in self.channels.values():
                channel.unsubscribe()
        if self._state in ("inactive", "active"):
            self._release()

    def _release(self) -> None:
        """Stop the worker, drop the publishers and the engine (and its GPU memory). The join
        waits for the frame in flight: a process that exits while the worker is inside ONNX
        Runtime aborts (runner.py)."""
        self._stop.set()
        self._slots.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        for channel in self.channels.values():
            channel.destroy_publishers()
        self.engine = self.pipeline = None
        self._given_engine = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        self._state = "unconfigured"

    def _output_namespaces(self) -> list[str]:
        return [c.publishers[RAW].topic_name.rsplit("/", 1)[0] + "/" for c in self.channels.values()]

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
        if self.pipeline is not None:
            self.pipeline.overlay_alpha = self._params["overlay_alpha"]
            self.pipeline.min_material_fraction = self._params["min_material_fraction"]
            self.pipeline.cloud_stride = self._params["cloud_stride"]

    # --- frames ---------------------------------------------------------------
    def _on_image(self, key: str, msg: Any) -> None:
        self._received.tick()
        self._slots.put((msg, time.monotonic()), key)

    def wanted_outputs(self, key: str = "") -> set[str]:
        """Outputs of camera `key` enabled by parameter and with a subscriber right now."""
        return self.channels[key].wanted(lambda output: self._params[PUBLISH_PARAM[output]])

    def _work(self) -> None:
        last_start = -float("inf")
        while not self._stop.is_set():
            max_rate = self._params["max_rate_hz"]
            wait = last_start + 1.0 / max_rate - time.monotonic() if max_rate > 0 else 0.0
            if wait > 0:  # in slices, so that a new max_rate_hz applies at once
                self._stop.wait(min(wait, 0.2))
                continue
            item = self._slots.take(timeout=0.2)
            if item is None or self._state != "active":
                continue
            last_start = time.monotonic()
            key, (msg, received) = item
            try:
                self._process(self.channels[key], msg, received)
            except Exception as exc:  # keep the camera pipeline alive; say what broke, throttled
                if self._stop.is_set() or not self.context.ok():  # Ctrl-C shut rclpy down mid-frame
                    break
                self.counts["failed"] += 1
                self._warn(f"processing failed: {type(exc).__name__}",  # throttled per kind
                           f"processing a frame failed:\n{traceback.format_exc()}")

    def _process(self, channel: CameraChannel, msg: Any, received: float) -> None:
        outputs = channel.wanted(lambda output: self._params[PUBLISH_PARAM[output]])
        if not outputs:
            self.counts["idle"] += 1
            return
        try:
            rgb = decode_frame(msg)
        except ImageDecodeError as exc:
            self._problem(channel, "rejected", str(exc), f"rejected a frame on {channel.image_topic} "
                          f"(frame_id {msg.header.frame_id!r}): {exc}")
            return
        depth = None
        if self._params["use_depth"] and outputs & set(DEPTH_OUTPUTS):
            depth = self._depth_for(channel, msg.header, rgb.shape[:2])
        result = self.pipeline.run(rgb, outputs, depth)
        header = msg.header
        for name, array, encoding in ((RAW, result.ids, "mono8"), (COLORED, result.colored, "rgb8"),
                                      (OVERLAY, result.overlay, "rgb8"),
                                      (CONFIDENCE, result.confidence_image, self._params["confidence_encoding"])):
            if name in outputs:
                out = numpy_to_image(array, encoding, Image())
                out.header = header
                channel.publishers[name].publish(out)
                self.counts[f"published_{name}"] += 1
        if CLOUD in outputs and result.cloud is not None:
            channel.publishers[CLOUD].publish(cloud_message(result.cloud, header))
            self.counts[f"published_{CLOUD}"] += 1
        if MATERIALS in outputs:
            doc = materials_document(result.materials, header.stamp.sec, header.stamp.nanosec,
                                     header.frame_id, rgb.shape[0], rgb.shape[1], result.disinfection)
            channel.publishers[MATERIALS].publish(String(data=json.dumps(doc, separators=(",", ":"))))
            self.counts[f"published_{MATERIALS}"] += 1
        self._latency.add(time.monotonic() - received)
        self._processed.tick()

    def _depth_for(self, channel: CameraChannel, header: Any, shape: tuple[int, int]) -> DepthFrame | None:
        """The depth image paired with this colour frame, in metres, with the intrinsics
        scaled to the frame; None (counted, warned) when there is no usable one."""
        tolerance = self._params["depth_tolerance_s"]
        msg = channel.depth.nearest(stamp_ns(header.stamp), int(tolerance * 1e9), wait_s=tolerance)
        topic = f"{channel.prefix}depth"
        if msg is None:
            newest = channel.depth.newest_stamp()
            why = ("no depth image received yet" if newest is None else
                   f"no depth image within {tolerance:g} s of the colour frame "
                   f"(newest depth is {(stamp_ns(header.stamp) - newest) / 1e9:+.3f} s away)")
            self._problem(channel, "depth_unpaired", why, f"{topic}: {why}")
            return None
        if channel.camera_info is None:
            self._problem(channel, "no_camera_info", "no camera_info", f"{channel.prefix}camera_info: "
                          "no CameraInfo received yet: the cloud and areas need the intrinsics")
            return None
        try:
            metres = depth_to_metres(image_to_numpy(msg), msg.encoding)
            if metres.shape != shape:
                raise DepthError(f"depth is {metres.shape[1]}x{metres.shape[0]} but the colour image is "
                                 f"{shape[1]}x{shape[0]}: publish depth registered to the colour camera")
            intrinsics = Intrinsics.from_camera_info(channel.camera_info).scaled(shape[1], shape[0])
        except (DepthError, ImageDecodeError) as exc:
            self._problem(channel, "depth_rejected", str(exc), f"{topic}: {exc}")
            return None
        return DepthFrame(metres, intrinsics)

    def _problem(self, channel: CameraChannel, kind: str, key: str, text: str) -> None:
        channel.counts[kind] += 1
        channel.last_problem = key
        self._warn(f"{channel.name}:{kind}:{re.sub(r'[0-9.+-]+', '#', key)}", text)

    def _warn(self, key: str, text: str) -> None:
        emit, suppressed = self._throttle.check(key)
        if emit:
            more = f" ({suppressed} more like it in the last {WARN_PERIOD_S:g} s)" if suppressed else ""
            self.get_logger().warning(text + more)

    # --- diagnostics ----------------------------------------------------------
    def _total(self, kind: str) -> int:
        return sum(c.counts[kind] for c in self.channels.values())

    def stats(self) -> dict[str, Any]:
        """Counters and rates, as published on /diagnostics (per camera when there are several)."""
        slots = self._slots
        out = {
            "state": self._state,
            "input_rate_hz": round(self._received.rate(), 2),
            "output_rate_hz": round(self._processed.rate(), 2),
            "latency_p50_ms": round(self._latency.percentile(50) * 1e3, 2),
            "latency_p95_ms": round(self._latency.percentile(95) * 1e3, 2),
            "frames_received": sum(slots.put_count.values()),
            "frames_processed": self._processed.count,
            "frames_dropped": sum(slots.dropped.values()),
            "frames_rejected": self._total("rejected"),
            "frames_idle": self.counts["idle"],
            "frames_failed": self.counts["failed"],
            "depth_unpaired": self._total("depth_unpaired"),
            "depth_rejected": self._total("depth_rejected"),
            "depth_no_camera_info": self._total("no_camera_info"),
            **{k: v for k, v in self.counts.items() if k.startswith("published_")},
        }
        if len(self.channels) > 1:
            for key, channel in self.channels.items():
                out.update({f"{key}.frames_received": slots.put_count[key], f"{key}.frames_served": slots.taken[key],
                            f"{key}.frames_dropped": slots.dropped[key],
                            **{f"{key}.{k}": v for k, v in channel.counts.items()}})
        return out

    def status(self) -> tuple[bytes, str]:
        """Level and message: WARN while the input is silent (never started, or quiet for
        input_timeout_s), while frames are rejected or fail, or while depth cannot be used;
        a problem that has passed shows in one status, not forever (the counters keep it)."""
        if self._state != "active":
            return DiagnosticStatus.OK, f"{self._state}" + (f": {self._startup_error}" if self._startup_error else "")
        timeout = self._params["input_timeout_s"]
        silent = self._received.since_last()
        depth_total = sum(self._total(k) for k in ("depth_unpaired", "depth_rejected", "no_camera_info"))
        totals = {"rejected": self._total("rejected"), "failed": self.counts["failed"], "depth": depth_total}
        new = {key: totals[key] - self._reported[key] for key in totals}
        self._reported = totals
        topics = ", ".join(c.image_topic for c in self.channels.values())
        last = "; ".join(f"{c.name or c.image_topic}: {c.last_problem}" for c in self.channels.values() if c.last_problem)
        if silent is None:
            return DiagnosticStatus.WARN, f"no images received on {topics}"
        if timeout > 0 and silent > timeout:
            return DiagnosticStatus.WARN, f"no images on {topics} for {silent:.1f} s"
        if new["rejected"] or new["failed"] or new["depth"]:
            return DiagnosticStatus.WARN, (
                f"{new['rejected']} frames rejected, {new['failed']} failed, {new['depth']} without usable "
                f"depth since the last report" + (f"; last: {last}" if last else ""))
        return DiagnosticStatus.OK, "segmenting"

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        level, message = self.status()
        engine = self.engine
        values = {**stats, "backend": getattr(engine, "backend", ""),
                  "providers": ",".join(getattr(engine, "providers", []) or []),
                  "device": getattr(engine, "device", ""),
                  "input_topic": ", ".join(c.image_topic for c in self.channels.values()),
                  "model_path": self._params["model_path"]}
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: segmentation", message=message,
                                  hardware_id=str(values["device"]),
                                  values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def destroy_node(self) -> None:
        self._stop_serving()
        super().destroy_node()


def spin_until_finished(node: SegmentNode) -> None:
    """Spin until Ctrl-C or, for a managed node, until the shutdown transition."""
    executor = rclpy.get_global_executor()
    executor.add_node(node)
    while rclpy.ok() and not node.finished.is_set():
        executor.spin_once(timeout_sec=0.2)


def main(args: list[str] | None = None) -> int:
    use_fastdds_profile()  # before rclpy.init: `ros2 run` gets the large-image profile as launch does
    return run_node("segment_node", SegmentNode, (StartupError,), args, spin=spin_until_finished)


if __name__ == "__main__":
    sys.exit(main())
