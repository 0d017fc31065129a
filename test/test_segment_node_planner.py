"""What a disinfection planner gets from segment_node, over real rclpy and DDS: the confidence
image, the material cloud and areas from depth, UV-C dwell guidance, bad depth counted and
survived, the lifecycle transitions, and several cameras served fairly by one model.

The model is a stand-in engine whose class ids are known (a rectangle of glass on a
background), so the geometry has hand-computed expectations; everything else is the real node.
"""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from ros_harness import RosHarness, image_msg, start_node, stop

pytestmark = pytest.mark.ros

H, W = 120, 160
FX = FY = 100.0
CX, CY = (W - 1) / 2, (H - 1) / 2
GLASS = 3
BLOCK = (slice(40, 80), slice(60, 120))  # 40 rows × 60 columns of glass


class KnownEngine:
    """Class ids: glass on BLOCK, background elsewhere; confidence 0.25 + 0.5·x/W."""

    backend, device, providers, precision = "stand-in", "cpu", ["none"], "fp32"

    def __init__(self, materials, delay: float = 0.0):
        self.classes, self.delay, self.calls = materials, delay, 0

    def predict(self, rgb):
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        ids = np.zeros(rgb.shape[:2], np.uint8)
        ids[BLOCK] = GLASS
        conf = np.broadcast_to(0.25 + 0.5 * np.arange(rgb.shape[1], dtype=np.float32) / rgb.shape[1],
                               rgb.shape[:2]).copy()
        return ids, conf


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def camera_info(stamp_msg, fx=FX, fy=FY, width=W, height=H):
    from sensor_msgs.msg import CameraInfo
    info = CameraInfo(width=width, height=height)
    info.k = [fx, 0.0, CX, 0.0, fy, CY, 0.0, 0.0, 1.0]
    info.header = stamp_msg.header
    return info


def depth_msg(depth, encoding, sec):
    return image_msg(depth, encoding, sec, frame_id="cam_optical")


def plane_mm(z_m: float) -> np.ndarray:
    return np.full((H, W), int(round(z_m * 1000)), np.uint16)


def tilted_plane_m(z0: float, slope: float) -> np.ndarray:
    """Depth of the plane z = z0 + slope·x (tilted about the camera's y axis), by ray
    intersection: on the ray of pixel u, x = (u − cx)/fx · z, so z = z0 / (1 − slope·(u − cx)/fx)."""
    u = np.arange(W, dtype=np.float64)
    z = z0 / (1.0 - slope * (u - CX) / FX)
    return np.broadcast_to(z, (H, W)).astype(np.float32).copy()


def decode_cloud(msg):
    """(x, y, z, rgb, label, confidence) rows, read with struct from the message bytes."""
    data = bytes(msg.data)
    assert msg.point_step == 24 and msg.row_step == 24 * msg.width and not msg.is_bigendian
    names = [(f.name, f.offset, f.datatype) for f in msg.fields]
    assert names == [("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("label", 16, 6), ("confidence", 20, 7)]
    return [struct.unpack_from("<fffIIf", data, i * 24) for i in range(msg.width * msg.height)]


class Rig:
    """The node under test, a camera publisher (image, depth, camera_info) and a collector."""

    def __init__(self, harness, materials, params, cameras=("",), delay=0.0, disinfection=None):
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        from matseg_ros.ros.output_collector import OutputCollector
        from matseg_ros.ros.segment_node import SegmentNode

        self.engine = KnownEngine(materials, delay)
        name = params.pop("node_name", "plan")
        args = ["--ros-args"] + [a for k, v in params.items()
                                 for a in ("-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}")]
        if disinfection:
            args += ["-p", f"disinfection_file:={disinfection}"]
        self.node = harness.add(SegmentNode(engine=self.engine, node_name=name, context=harness.context,
                                            cli_args=args))
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.source = harness.add(Node(f"{name}_camera", context=harness.context))
        self.pubs = {}
        for cam in cameras:
            prefix = f"/{cam}/" if cam else "/"
            self.pubs[cam] = (self.source.create_publisher(Image, f"{prefix}image", qos),
                              self.source.create_publisher(Image, f"{prefix}depth", qos),
                              self.source.create_publisher(CameraInfo, f"{prefix}camera_info", qos))
        outputs = ("raw", "materials", "confidence") + (("cloud",) if params.get("use_depth") else ())
        self.collectors = {cam: harness.add(OutputCollector(
            f"/{cam}/{name}" if cam else f"/{name}", outputs=outputs,
            name=f"{name}_collector_{cam or 'one'}", context=harness.context)) for cam in cameras}

    def ready(self):
        """Every output matched by its collector and every input the node reads matched by it
        (depth and camera_info too, when it uses them): a message sent earlier may be lost."""
        from matseg_ros.ros.output_collector import wait_until
        inputs = 3 if self.node._params["use_depth"] else 1
        return wait_until(lambda: all(c.connected() for c in self.collectors.values()) and all(
            p.get_subscription_count() > 0 for pubs in self.pubs.values() for p in pubs[:inputs]), 20)

    def send_until(self, outputs, sec, timeout=20.0, **kwargs):
        """Send the frame (a new stamp each try, 1 s apart) until all `outputs` came back for
        one of them; DDS discovery under load can lose the first. Returns that stamp's key."""
        from matseg_ros.ros.output_collector import wait_until
        collector = self.collectors[kwargs.get("cam", "")]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            key = self.send(sec, **kwargs)
            if wait_until(lambda: all(collector.get(o, key) is not None for o in outputs), 1.0):
                return key
            sec += 1000
        raise AssertionError(f"no {outputs} for frames sent over {timeout:g} s; stats {self.node.stats()}")

    def send(self, sec, depth=None, encoding="16UC1", info=True, cam="", rgb=None, info_kwargs=None):
        image_pub, depth_pub, info_pub = self.pubs[cam]
        rgb = rgb if rgb is not None else np.zeros((H, W, 3), np.uint8)
        msg = image_msg(rgb, "rgb8", sec, frame_id="cam_optical")
        if info:
            info_pub.publish(camera_info(msg, **(info_kwargs or {})))
        if depth is not None:
            depth_pub.publish(depth_msg(depth, encoding, sec))
        image_pub.publish(msg)
        return (sec, 123)


def test_confidence_cloud_areas_and_dwell_from_a_plane(harness, materials, tmp_path):
    dose = 10.0  # mJ/cm² for glass; lamp 0.2 mW/cm² at 1 m, at the camera
    config = tmp_path / "uvc.yaml"
    config.write_text(json.dumps({
        "pathogen": "test", "target_log_reduction": 3,
        "lamp": {"irradiance_at_1m_mw_cm2": 0.2, "min_distance_m": 0.1},
        "materials": {"glass": {"dose_mj_cm2": dose, "source": "hand-computed test"},
                      "background": {"dose_mj_cm2": None, "source": "none"}}}))
    rig = Rig(harness, materials, {"use_depth": True, "cloud_stride": 1, "depth_tolerance_s": 0.05},
              disinfection=config)
    assert rig.ready()
    key = rig.send_until(("raw", "materials", "confidence", "cloud"), 7, depth=plane_mm(1.0))
    collector = rig.collectors[""]

    confidence = collector.get("confidence", key)
    assert confidence.encoding == "mono8" and confidence.header.frame_id == "cam_optical"
    expected = np.clip(np.round((0.25 + 0.5 * np.arange(W, dtype=np.float32) / W) * 255), 0, 255)
    got = np.frombuffer(bytes(confidence.data), np.uint8).reshape(H, W)
    assert np.abs(got.astype(int) - expected[None, :].astype(int)).max() <= 1

    cloud = collector.get("cloud", key)
    assert (cloud.height, cloud.width) == (H, W) and cloud.header.frame_id == "cam_optical"
    rows = decode_cloud(cloud)
    for v, u in ((0, 0), (50, 70), (119, 159), (60, 100)):
        x, y, z, rgb, label, conf = rows[v * W + u]
        assert abs(z - 1.0) < 1e-3 and abs(x - (u - CX) / FX) < 1e-3 and abs(y - (v - CY) / FY) < 1e-3
        inside = BLOCK[0].start <= v < BLOCK[0].stop and BLOCK[1].start <= u < BLOCK[1].stop
        assert label == (GLASS if inside else 0)
        assert rgb == ((81 << 16) | (194 << 8) | 213 if inside else 0)  # the glass palette colour
        assert abs(conf - (0.25 + 0.5 * u / W)) < 1e-6

    doc = collector.get("materials", key)
    glass = next(m for m in doc["materials"] if m["id"] == GLASS)
    true_area = (60 / FX) * (40 / FY) * 1.0 ** 2  # 60×40 pixels at 1 m
    assert glass["area_m2"] == pytest.approx(true_area, rel=0.02)
    assert glass["nearest_distance_m"] == pytest.approx(1.0, rel=0.01)  # the block holds the optical axis
    # dwell by hand: on the plane z = 1 m facing the lamp, E = 0.2·cos θ / r² = 0.2 / r³ (cos θ = 1/r);
    # geometry works on 4×4 blocks (centre 4i + 1.5, labelled by pixel 4i + 2), all of equal
    # area here, so the irradiance 90 % of the area gets is that of the sorted blocks after
    # skipping the dimmest 10 %
    from matseg_ros.runtime.pipeline import GEOMETRY_STRIDE as S
    us = np.array([S * i + (S - 1) / 2 for i in range(W // S) if 60 <= S * i + S // 2 < 120])
    vs = np.array([S * j + (S - 1) / 2 for j in range(H // S) if 40 <= S * j + S // 2 < 80])
    r = np.sqrt(1 + ((us[None, :] - CX) / FX) ** 2 + ((vs[:, None] - CY) / FY) ** 2).ravel()
    e = np.sort(0.2 / r ** 3)
    covered = e[int(np.floor(0.1 * e.size + 1e-9))]
    dwell = {m["id"]: m for m in doc["disinfection"]["materials"]}
    assert dwell[GLASS]["dwell_s"] == pytest.approx(dose / covered, rel=2e-3)
    assert 50.0 < dwell[GLASS]["dwell_s"] < 60.0  # 50 s straight ahead at 1 m, more off-axis
    assert dwell[0]["dwell_s"] is None and "no guidance" in dwell[0]["reason"]


def test_tilted_plane_area_within_2_percent_and_float_depth(harness, materials):
    from matseg_ros.runtime.depth import Intrinsics, back_project

    rig = Rig(harness, materials, {"use_depth": True, "depth_tolerance_s": 0.05, "node_name": "tilt"})
    assert rig.ready()
    depth = tilted_plane_m(2.0, np.tan(np.radians(40)))
    key = rig.send_until(("materials", "cloud"), 3, depth=depth, encoding="32FC1")
    collector = rig.collectors[""]
    glass = next(m for m in collector.get("materials", key)["materials"] if m["id"] == GLASS)
    # the true area: the plane region seen through the block's pixel edges, from its corner points
    intr = Intrinsics(FX, FY, CX, CY, W, H)
    corners_uv = [(59.5, 39.5), (119.5, 39.5), (119.5, 79.5), (59.5, 79.5)]
    pts = []
    for u, v in corners_uv:
        z = 2.0 / (1.0 - np.tan(np.radians(40)) * (u - CX) / FX)
        pts.append(np.array([(u - CX) / FX * z, (v - CY) / FY * z, z]))
    a, b, c, d = pts  # a planar quadrilateral: half the cross product of its diagonals
    true_area = 0.5 * np.linalg.norm(np.cross(c - a, d - b))
    assert glass["area_m2"] == pytest.approx(true_area, rel=0.02)
    points = back_project(depth, intr)[BLOCK]
    distances = np.linalg.norm(points, axis=-1)
    assert glass["nearest_distance_m"] == pytest.approx(distances.min(), rel=0.01)
    assert glass["mean_distance_m"] == pytest.approx(distances.mean(), rel=0.01)


def test_bad_depth_is_counted_warned_and_survived(harness, materials):
    from matseg_ros.ros.output_collector import wait_until

    rig = Rig(harness, materials, {"use_depth": True, "depth_tolerance_s": 0.02, "node_name": "baddepth"})
    assert rig.ready()
    collector = rig.collectors[""]
    node = rig.node
    rig.send_until(("raw", "cloud"), 9, depth=plane_mm(1.0))  # every link up before the bad cases
    cases = [
        ("depth_rejected", dict(depth=np.zeros((H // 2, W // 2), np.uint16))),           # wrong size
        ("depth_rejected", dict(depth=np.zeros((H, W), np.uint8), encoding="mono8")),     # wrong encoding
        ("depth_rejected", dict(depth=plane_mm(1.0), info_kwargs={"fx": 0.0})),           # zero intrinsics
        ("depth_unpaired", dict(depth=None)),                                              # never pairs
    ]
    for sec, (kind, kwargs) in enumerate(cases, start=10):
        before = node.stats()[kind]
        key = rig.send(sec, **kwargs)
        assert wait_until(lambda: collector.get("raw", key) is not None, 10), kind  # the frame still goes out
        assert wait_until(lambda: node.stats()[kind] == before + 1, 5), (kind, node.stats())
    # NaN, zero and negative depth are invalid pixels, not errors: they drop out of the cloud
    holes = plane_mm(1.0)
    holes[:, :W // 2] = 0
    key = rig.send_until(("materials", "cloud"), 20, depth=holes)
    glass = next(m for m in collector.get("materials", key)["materials"] if m["id"] == GLASS)
    assert glass["area_m2"] == pytest.approx((40 / FX) * (40 / FY), rel=0.05)  # only the right 40 columns
    # diagnostics say so, and the next good frame is processed in full
    assert wait_until(lambda: "without usable depth" in collector.diagnostics_message
                      or collector.diag("depth_rejected") >= 3, 5)
    rig.send_until(("cloud",), 21, depth=plane_mm(1.5))
    assert node.stats()["frames_failed"] == 0


def test_confidence_as_32fc1(harness, materials):
    rig = Rig(harness, materials, {"confidence_encoding": "32FC1", "node_name": "conf32"})
    assert rig.ready()
    key = rig.send_until(("confidence",), 5)
    collector = rig.collectors[""]
    msg = collector.get("confidence", key)
    values = np.frombuffer(bytes(msg.data), np.float32).reshape(H, W)
    assert msg.encoding == "32FC1"
    np.testing.assert_allclose(values[0], 0.25 + 0.5 * np.arange(W, dtype=np.float32) / W, rtol=1e-6)


def test_two_cameras_one_model_served_fairly_under_overload(harness, materials):
    """A model slower than two 30 Hz cameras: each gets its share of the processed frames
    (within ±10 % of 1/2), outputs under each camera's namespace, one engine."""
    from matseg_ros.ros.output_collector import wait_until

    rig = Rig(harness, materials, {"cameras": "[front, rear]", "node_name": "duo"},
              cameras=("front", "rear"), delay=0.05)
    assert rig.ready()
    assert {c.image_topic for c in rig.node.channels.values()} == {"/front/image", "/rear/image"}
    end, sec = time.monotonic() + 6.0, 100
    while time.monotonic() < end:
        for cam in ("front", "rear"):
            rig.send(sec, cam=cam)
        sec += 1
        time.sleep(1 / 30)
    wait_until(lambda: False, 0.5)
    stats = rig.node.stats()
    served = {cam: stats[f"{cam}.frames_served"] for cam in ("front", "rear")}
    total = sum(served.values())
    assert total == rig.engine.calls and total >= 40, stats
    for cam, n in served.items():
        assert abs(n / total - 0.5) <= 0.05, served  # ±10 % of 1/N
        assert stats[f"{cam}.frames_dropped"] > 0, stats  # overload: skipped, not queued
    for cam in ("front", "rear"):
        assert rig.collectors[cam].count("raw") > 0


@pytest.fixture(scope="module")
def lifecycle_process(tmp_path_factory, tiny_onnx_model):
    log = tmp_path_factory.mktemp("lifecycle") / "node.log"
    proc = start_node("segment_node", "matseg_ros.ros.segment_node",
                      {"lifecycle": True, "model_path": tiny_onnx_model},
                      {"__node": "managed", "image": "/managed_in"}, log=log)
    yield proc, log
    stop(proc)


def test_lifecycle_transitions_over_the_lifecycle_services(harness, lifecycle_process, rng):
    from lifecycle_msgs.msg import Transition
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from matseg_ros.ros.output_collector import OutputCollector, wait_until
    from ros_harness import LifecycleClient, scene

    proc, log = lifecycle_process
    client = harness.add(Node("lifecycle_manager", context=harness.context))
    manager = LifecycleClient(client, "/managed")
    state, transition = manager.state, manager.transition

    camera = client.create_publisher(Image, "/managed_in", QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    collector = harness.add(OutputCollector("/managed", outputs=("raw",), name="lc_collector",
                                            context=harness.context))
    assert state() == "unconfigured" and camera.get_subscription_count() == 0
    assert transition(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    assert camera.get_subscription_count() == 0  # inactive: not subscribed
    assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
    assert wait_until(lambda: camera.get_subscription_count() > 0 and collector.connected(), 10)
    for sec in range(3):
        camera.publish(image_msg(scene(rng), "rgb8", sec))
        time.sleep(0.1)
    assert wait_until(lambda: collector.count("raw") >= 2, 10), log.read_text()
    assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    assert wait_until(lambda: camera.get_subscription_count() == 0, 10)
    count = collector.count("raw")
    camera.publish(image_msg(scene(rng), "rgb8", 50))
    time.sleep(0.5)
    assert collector.count("raw") == count  # deactivated: nothing processed
    assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert "cleaned up: engine released" in log.read_text()
    assert transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert proc.wait(15) == 0, log.read_text()


def test_lifecycle_configure_failure_reports_and_stays_unconfigured(harness, tmp_path):
    from lifecycle_msgs.msg import Transition
    from rclpy.node import Node

    from matseg_ros.ros.output_collector import wait_until
    from ros_harness import LifecycleClient

    log = tmp_path / "node.log"
    proc = start_node("segment_node", "matseg_ros.ros.segment_node",
                      {"lifecycle": True, "model_path": str(tmp_path / "missing.onnx")},
                      {"__node": "broken"}, log=log)
    try:
        client = harness.add(Node("lifecycle_manager2", context=harness.context))
        manager = LifecycleClient(client, "/broken")
        assert not manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.state() == "unconfigured"
        assert wait_until(lambda: "missing.onnx" in log.read_text(), 5)
        assert proc.poll() is None  # a managed node waits for its manager, it does not exit
    finally:
        stop(proc)
    assert Path(log).read_text().count("configure failed") == 1
