"""dose_mapper: segment_node's material cloud, the camera pose and the lamp state in; the UV-C
dose map of every surface seen along the route, per-material coverage and services out.

The map, the lamp model and the dose accrual live in `dosemap`; this node reads messages,
finds the pose of each cloud (a PoseStamped topic, or TF), refuses bad input with a reason
(counted, throttled, in /diagnostics) and publishes. Clouds, services and the publishing
timer share one callback group, so the map is never touched by two threads at once; poses
and lamp messages arrive on another, so a cloud may wait for its late pose.
"""
from __future__ import annotations

import json
import os
import re
import sys
import threading
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import Bool, Header, String
from std_srvs.srv import Trigger

from ..dosemap.cloud import CloudError, read_cloud
from ..dosemap.coverage import COVERAGE_SCHEMA, coverage, dose_fields, dose_records
from ..dosemap.exposure import DoseMap, LampTimer
from ..dosemap.pose import PoseError, pose_from
from ..dosemap.voxels import MapFileError
from ..io.stamp_pairing import NearestStamp, stamp_ns
from ..runtime.runstats import WarningThrottle
from .cloud import records_message
from .dose_mapper_params import DEFAULT_MAP_FILE, StartupError, declare
from .runner import run_node

NODE_NAME = "dose_mapper"
WARN_PERIOD_S = 5.0
POSE_BUFFER = 200
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
NEWEST = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)  # big maps
FIELDS = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in dose_fields()]
REFUSALS = ("cloud_unknown_frame", "cloud_out_of_order", "cloud_bad", "pose_missing", "pose_stale",
            "pose_bad", "pose_wrong_frame", "tf_failed")
NOTES = ("lamp_unknown", "lamp_silent", "interval_capped")  # the cloud is mapped, but adds no (or less) dose


class DoseMapper(Node):
    """The dose map node; parameters in dose_mapper_params, topics and services in docs/ros.md."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        p = self._params = declare(self)
        self.dose = DoseMap(*self._load_configs(), p["voxel_size"], p["max_voxels"])
        self._tf = self._start_tf() if p["pose_source"] == "tf" else None
        self.lamp = LampTimer()
        self.poses: NearestStamp[Any] = NearestStamp(POSE_BUFFER)
        self._lock = threading.Lock()
        self.counts = {k: 0 for k in ("clouds_received", "clouds_mapped", "poses_received", "voxels_new",
                                      "voxels_dropped", "points_dropped", "voxels_occluded", *REFUSALS, *NOTES)}
        self._reported: dict[str, int] = {}
        self.last_problem = ""
        self._throttle = WarningThrottle(WARN_PERIOD_S)
        self._cap_logged = False
        self._last: tuple[int, float, float] | None = None  # stamp (ns), lamp clock, lamp-on seconds
        self._last_stamp = None
        self._map_file = os.path.expanduser(p["map_file"] or DEFAULT_MAP_FILE)
        mapping, inputs = MutuallyExclusiveCallbackGroup(), ReentrantCallbackGroup()
        self.create_subscription(PointCloud2, "material_cloud", self._on_cloud, RELIABLE, callback_group=mapping)
        self.create_subscription(Bool, "lamp_on", lambda msg: self.lamp.set(msg.data), RELIABLE,
                                 callback_group=inputs)
        if self._tf is None:
            self.create_subscription(PoseStamped, "pose", self._on_pose, RELIABLE, callback_group=inputs)
        self._map_pub = self.create_publisher(PointCloud2, "~/dose_map", NEWEST)
        self._coverage_pub = self.create_publisher(String, "~/coverage", RELIABLE)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        for name, handler in (("reset", self._reset), ("save", self._save), ("load", self._load)):
            self.create_service(Trigger, f"~/{name}", handler, callback_group=mapping)
        self.create_timer(p["publish_period_s"], self._publish, callback_group=mapping)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=mapping)
        self.get_logger().info(
            f"mapping {self.resolve_topic_name('material_cloud')} in {p['fixed_frame']} at "
            f"{p['voxel_size']:g} m (cap {p['max_voxels']} voxels), poses from "
            f"{'TF' if self._tf else self.resolve_topic_name('pose')}, lamp on "
            f"{self.resolve_topic_name('lamp_on')}; lamp "
            f"{'at the camera' if self.dose.lamp_at_camera else 'offset: ray casting'}")

    # --- start-up -----------------------------------------------------------
    def _load_configs(self):
        from ..materials import MaterialsError, load_materials
        from ..runtime.disinfection import DisinfectionConfigError, load_disinfection
        try:
            config = load_disinfection(self._params["disinfection_file"] or None)
            materials = load_materials(self._params["materials_file"] or None)
        except (DisinfectionConfigError, MaterialsError, OSError) as exc:
            raise StartupError(str(exc)) from exc
        by_id = {m.id: m.name for m in materials.materials}
        return config, [by_id.get(i, f"class_{i}") for i in range(materials.num_classes)]

    def _start_tf(self):
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError:
            raise StartupError("parameter pose_source is 'tf' but the Python package tf2_ros is not installed "
                               "(sudo apt install ros-$ROS_DISTRO-tf2-ros); or set pose_source: topic and "
                               "publish the camera pose on `pose`") from None
        buffer = Buffer()
        self._tf_listener = TransformListener(buffer, self, spin_thread=True)
        return buffer

    # --- input ----------------------------------------------------------------
    def _refuse(self, kind: str, reason: str) -> None:
        with self._lock:
            self.counts[kind] += 1
            self.last_problem = f"{kind}: {reason}"
        emit, suppressed = self._throttle.check(f"{kind}:{re.sub(r'[0-9.+-]+', '#', reason)}")
        if emit:
            more = f" ({suppressed} more like it in the last {WARN_PERIOD_S:g} s)" if suppressed else ""
            self.get_logger().warning(f"{kind}: {reason}{more}")

    def _on_pose(self, msg: PoseStamped) -> None:
        with self._lock:
            self.counts["poses_received"] += 1
        if msg.header.frame_id != self._params["fixed_frame"]:
            return self._refuse("pose_wrong_frame", f"pose in frame {msg.header.frame_id!r}; expected "
                                f"fixed_frame {self._params['fixed_frame']!r}")
        p, q = msg.pose.position, msg.pose.orientation
        try:
            pose = pose_from((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))
        except PoseError as exc:
            return self._refuse("pose_bad", str(exc))
        self.poses.add(stamp_ns(msg.header.stamp), pose)

    def _pose_for(self, header: Any):
        tolerance = self._params["pose_tolerance_s"]
        if self._tf is not None:
            return self._tf_pose(header, tolerance)
        stamp = stamp_ns(header.stamp)
        pose = self.poses.nearest(stamp, int(tolerance * 1e9), wait_s=min(tolerance, 0.5))
        if pose is None:
            newest = self.poses.newest_stamp()
            if newest is None:
                self._refuse("pose_missing", f"no pose received yet on {self.resolve_topic_name('pose')}")
            else:
                self._refuse("pose_stale", f"no pose within pose_tolerance_s {tolerance:g} s of the cloud "
                             f"(newest pose is {(newest - stamp) / 1e9:+.3f} s away)")
        return pose

    def _tf_pose(self, header: Any, tolerance: float):
        """The camera pose from TF (needs tf2_ros; not installable where the tests run)."""
        from rclpy.duration import Duration
        from rclpy.time import Time
        fixed = self._params["fixed_frame"]
        try:
            t = self._tf.lookup_transform(fixed, header.frame_id, Time.from_msg(header.stamp),
                                          timeout=Duration(seconds=tolerance)).transform
            return pose_from((t.translation.x, t.translation.y, t.translation.z),
                             (t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w))
        except Exception as exc:  # tf2's Lookup/Extrapolation/Connectivity exceptions, PoseError
            self._refuse("tf_failed", f"no usable transform {fixed} <- {header.frame_id!r}: {exc}")
            return None

    def _on_cloud(self, msg: PointCloud2) -> None:
        with self._lock:
            self.counts["clouds_received"] += 1
        p, frame, stamp = self._params, msg.header.frame_id, stamp_ns(msg.header.stamp)
        if not frame or (p["camera_frame"] and frame != p["camera_frame"]):
            return self._refuse("cloud_unknown_frame", f"cloud in frame {frame!r}; expected camera_frame "
                                f"{p['camera_frame'] or '(any non-empty)'!r}")
        if self._last is not None and stamp <= self._last[0]:
            return self._refuse("cloud_out_of_order", f"cloud stamp {stamp / 1e9:.3f} s is not after the "
                                f"previous cloud's {self._last[0] / 1e9:.3f} s")
        try:
            cloud = read_cloud([(f.name, f.offset, f.datatype, f.count) for f in msg.fields], msg.height,
                               msg.width, msg.point_step, msg.row_step, msg.data, msg.is_bigendian)
        except CloudError as exc:
            return self._refuse("cloud_bad", str(exc))
        pose = self._pose_for(msg.header)
        if pose is None:
            return
        lamp_now, lamp_total = self.lamp.on_seconds()
        exposure = self._exposure(stamp, lamp_now, lamp_total)
        report = self.dose.integrate(cloud, pose, exposure)
        self._last, self._last_stamp = (stamp, lamp_now, lamp_total), msg.header.stamp
        with self._lock:
            self.counts["clouds_mapped"] += 1
            for key, value in (("voxels_new", report.new_voxels), ("voxels_dropped", report.dropped_voxels),
                               ("points_dropped", report.dropped_points), ("voxels_occluded", report.occluded)):
                self.counts[key] += value
        if report.dropped_voxels and not self._cap_logged:
            self._cap_logged = True
            self.get_logger().error(f"the dose map is full: max_voxels {p['max_voxels']} reached; new surfaces "
                                    "are not mapped from now on (counted as voxels_dropped). Save and reset, "
                                    "or raise max_voxels")

    def _exposure(self, stamp: int, lamp_now: float, lamp_total: float) -> float:
        """Lamp-on seconds since the previous mapped cloud: the stamps' interval (capped at
        max_exposure_interval_s) times the share of it the lamp was on, on the receipt clock."""
        timeout = self._params["lamp_timeout_s"]
        if self.lamp.on is None:
            self._refuse("lamp_unknown", f"no lamp_on message received yet on {self.resolve_topic_name('lamp_on')}: "
                         "mapping without dose")
            return 0.0
        if timeout > 0 and lamp_now - self.lamp.last_message > timeout:
            self._refuse("lamp_silent", f"no lamp_on message for {lamp_now - self.lamp.last_message:.1f} s "
                         f"(lamp_timeout_s {timeout:g}): mapping without dose")
            return 0.0
        if self._last is None:
            return 0.0
        interval = (stamp - self._last[0]) / 1e9
        cap = self._params["max_exposure_interval_s"]
        if interval > cap:
            self._refuse("interval_capped", f"{interval:.3f} s since the previous cloud; counting "
                         f"max_exposure_interval_s {cap:g} s of it")
            interval = cap
        elapsed = lamp_now - self._last[1]
        share = (lamp_total - self._last[2]) / elapsed if elapsed > 0 else float(self.lamp.on)
        return interval * min(max(share, 0.0), 1.0)

    # --- services -------------------------------------------------------------
    def _reset(self, request: Any, response: Any) -> Any:
        self.dose.reset()
        response.success, response.message = True, "dose map cleared"
        return response

    def _save(self, request: Any, response: Any) -> Any:
        try:
            self.dose.voxels.save(self._map_file)
        except OSError as exc:
            response.success, response.message = False, f"{self._map_file}: cannot write: {exc.strerror or exc}"
        else:
            response.success, response.message = True, f"saved {len(self.dose.voxels)} voxels to {self._map_file}"
        return response

    def _load(self, request: Any, response: Any) -> Any:
        try:
            self.dose.voxels.load(self._map_file)
        except MapFileError as exc:
            response.success, response.message = False, str(exc)
            return response
        self.dose.forget_view()
        response.success, response.message = True, f"loaded {len(self.dose.voxels)} voxels from {self._map_file}"
        return response

    # --- output ---------------------------------------------------------------
    def _header(self) -> Header:
        """The fixed frame, stamped with the latest mapped cloud (the map's time)."""
        header = Header(frame_id=self._params["fixed_frame"])
        header.stamp = self._last_stamp if self._last_stamp is not None else self.get_clock().now().to_msg()
        return header

    def _publish(self) -> None:
        header = self._header()
        if self._map_pub.get_subscription_count():
            self._map_pub.publish(records_message(dose_records(self.dose), FIELDS, header, True))
        doc = {"schema": COVERAGE_SCHEMA, "stamp": {"sec": header.stamp.sec, "nanosec": header.stamp.nanosec},
               "frame_id": header.frame_id, "voxel_size_m": self.dose.voxels.voxel_size,
               "voxels": len(self.dose.voxels), "lamp_on": self.lamp.on,
               "coverage_fraction": self.dose.config.coverage_fraction, "materials": coverage(self.dose)}
        self._coverage_pub.publish(String(data=json.dumps(doc, separators=(",", ":"))))

    def stats(self) -> dict[str, Any]:
        with self._lock:
            counts = dict(self.counts)
        return {**counts, "voxels": len(self.dose.voxels), "map_mb": round(self.dose.voxels.nbytes() / 2**20, 2),
                "map_full": len(self.dose.voxels) >= self._params["max_voxels"],
                "lamp": {None: "unknown", True: "on", False: "off"}[self.lamp.on], "map_file": self._map_file}

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        new = {k: stats[k] - self._reported.get(k, 0) for k in (*REFUSALS, *NOTES, "voxels_dropped")}
        self._reported = {k: stats[k] for k in new}
        problems = {k: v for k, v in new.items() if v}
        if not stats["clouds_received"]:
            level, message = DiagnosticStatus.WARN, f"no material cloud received on {self.resolve_topic_name('material_cloud')}"
        elif problems:
            level = DiagnosticStatus.WARN
            message = ", ".join(f"{v} {k}" for k, v in problems.items()) + f" since the last report; last: {self.last_problem}"
        else:
            level, message = DiagnosticStatus.OK, "mapping"
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: dose map", message=message,
                                  values=[KeyValue(key=k, value=str(v)) for k, v in stats.items()])
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)


def spin_multithreaded(node: Node) -> None:
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.spin()


def main(args: list[str] | None = None) -> int:
    return run_node("dose_mapper", DoseMapper, (StartupError,), args, spin=spin_multithreaded)


if __name__ == "__main__":
    sys.exit(main())
