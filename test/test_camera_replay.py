"""camera_replay over real DDS: depth and calibrated CameraInfo beside the image from a bag,
from folders and from the synthetic rooms; Ctrl-C; the Fast DDS profile; and segment_node
with use_depth fed by it."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import cv2
import numpy as np
import pytest

from ros_harness import RosHarness, console_command, scene, start_node, stop

pytestmark = pytest.mark.ros

K = (200.0, 0.0, 31.5, 0.0, 210.0, 23.5, 0.0, 0.0, 1.0)


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


class Sink:
    """Images, depth images and CameraInfo of one camera_replay namespace, by stamp."""

    def __init__(self, harness, ns: str, reliable: bool = True) -> None:
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.got = {"image": {}, "depth": {}, "info": {}}
        node = harness.add(Node(f"sink_{ns.strip('/')}", context=harness.context))
        for kind, msg_type, topic in (("image", Image, "camera/image_raw"), ("info", CameraInfo, "camera/camera_info"),
                                      ("depth", Image, "camera/depth/image_raw")):
            node.create_subscription(msg_type, f"{ns}/{topic}", lambda m, k=kind: self._keep(k, m), qos)

    def _keep(self, kind, msg) -> None:
        self.got[kind][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg


def replay(tmp_path, ns: str, params: dict, timeout: float = 60) -> str:
    """Run camera_replay to the end of its source; its log."""
    log = tmp_path / f"replay{ns.replace('/', '_')}.log"
    proc = start_node("camera_replay", "matseg_ros.ros.camera_replay",
                      {"rate_hz": 20.0, "qos_reliability": "reliable", "wait_for_subscribers": 1, **params},
                      {"__ns": ns}, log=log)
    try:
        assert proc.wait(timeout) == 0, log.read_text()
    finally:
        stop(proc)
    return log.read_text()


def depth_array(msg) -> np.ndarray:
    dtype = np.uint16 if msg.encoding == "16UC1" else np.float32
    return np.frombuffer(bytes(msg.data), dtype).reshape(msg.height, msg.width)


def write_rgbd_bag(path, frames, depths):
    """Images on /cam/color (stamps 10+i s), depth 16UC1 on /cam/depth 3 ms later, CameraInfo
    on /cam/info with each image; a last image whose depth never comes."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    TS = get_typestore(Stores.ROS2_KILTED)
    Image, Info = TS.types["sensor_msgs/msg/Image"], TS.types["sensor_msgs/msg/CameraInfo"]
    Header, Time = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
    ROI = TS.types["sensor_msgs/msg/RegionOfInterest"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        color = writer.add_connection("/cam/color", "sensor_msgs/msg/Image", typestore=TS)
        depth = writer.add_connection("/cam/depth", "sensor_msgs/msg/Image", typestore=TS)
        info = writer.add_connection("/cam/info", "sensor_msgs/msg/CameraInfo", typestore=TS)
        for i, rgb in enumerate(frames):
            t = 1_000_000_000 + i * 100_000_000
            header = Header(stamp=Time(sec=10 + i, nanosec=0), frame_id="cam")
            h, w = rgb.shape[:2]
            writer.write(color, t, TS.serialize_cdr(Image(
                header=header, height=h, width=w, encoding="rgb8", is_bigendian=0, step=w * 3,
                data=rgb.reshape(-1).copy()), "sensor_msgs/msg/Image"))
            writer.write(info, t + 1, TS.serialize_cdr(Info(
                header=header, height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5), k=np.array(K),
                r=np.eye(3).reshape(-1), p=np.array([*K[:3], 0.0, *K[3:6], 0.0, *K[6:], 0.0]), binning_x=0,
                binning_y=0, roi=ROI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)),
                "sensor_msgs/msg/CameraInfo"))
            if i < len(depths):
                late = Header(stamp=Time(sec=10 + i, nanosec=3_000_000), frame_id="cam_depth")
                writer.write(depth, t + 2, TS.serialize_cdr(Image(
                    header=late, height=h, width=w, encoding="16UC1", is_bigendian=0, step=w * 2,
                    data=depths[i].view(np.uint8).reshape(-1).copy()), "sensor_msgs/msg/Image"))


def test_bag_depth_and_camera_info_are_paired_by_stamp_and_sent_with_the_image(harness, tmp_path, rng):
    frames = [scene(rng, 48, 64) for _ in range(4)]
    depths = [rng.integers(300, 5000, (48, 64), dtype=np.uint16) for _ in range(3)]  # the 4th has none
    write_rgbd_bag(tmp_path / "bag", frames, depths)
    sink = Sink(harness, "/bag")
    log = replay(tmp_path, "/bag", {"source": tmp_path / "bag", "topic": "/cam/color", "depth_topic": "/cam/depth",
                                    "keep_stamps": True, "depth_tolerance_s": 0.005})
    assert "depth from /cam/depth and camera_info from /cam/info, paired with /cam/color within 0.005 s" in log, log
    assert "published 3 frames (3 with depth)" in log and "1 bag images had no depth partner" in log, log
    time.sleep(0.5)
    assert sorted(sink.got["image"]) == sorted(sink.got["depth"]) == sorted(sink.got["info"]) == \
        [(10, 0), (11, 0), (12, 0)]  # the depth's own stamp (+3 ms) gives way to the image's
    for i, key in enumerate(sorted(sink.got["image"])):
        info, depth = sink.got["info"][key], sink.got["depth"][key]
        assert tuple(info.k) == K and (info.width, info.height) == (64, 48) and info.distortion_model == "plumb_bob"
        assert depth.encoding == "16UC1" and depth.header.frame_id == sink.got["image"][key].header.frame_id
        np.testing.assert_array_equal(depth_array(depth), depths[i])


def test_folder_depth_png_and_tiff_with_fx_fy_cx_cy(harness, tmp_path, rng):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    mm = [rng.integers(1, 9000, (48, 64), dtype=np.uint16) for _ in range(2)]
    metres = rng.uniform(0.2, 6.0, (48, 64)).astype(np.float32)
    for i in range(4):  # f3 has no depth: published without
        cv2.imwrite(str(tmp_path / "rgb" / f"f{i}.png"), scene(rng, 48, 64))
    cv2.imwrite(str(tmp_path / "depth" / "f0.png"), mm[0])
    cv2.imwrite(str(tmp_path / "depth" / "f1.png"), mm[1])
    cv2.imwrite(str(tmp_path / "depth" / "f2.tif"), metres)
    sink = Sink(harness, "/fold")
    log = replay(tmp_path, "/fold", {"source": tmp_path / "rgb", "depth_dir": tmp_path / "depth", "fx": 200.0,
                                     "fy": 210.0, "cx": 31.5, "cy": 23.5, "frame_id": "optical"})
    assert "1 of 4 frames have no depth image" in log and "published 4 frames (3 with depth)" in log, log
    time.sleep(0.5)
    stamps = sorted(sink.got["image"])
    assert len(stamps) == 4 and sorted(sink.got["info"]) == stamps and sorted(sink.got["depth"]) == stamps[:3]
    for key in stamps:
        info = sink.got["info"][key]
        assert tuple(info.k) == K and tuple(info.d) == (0.0,) * 5 and info.distortion_model == "plumb_bob"
        assert tuple(info.p) == (200.0, 0.0, 31.5, 0.0, 0.0, 210.0, 23.5, 0.0, 0.0, 0.0, 1.0, 0.0)
        assert (info.width, info.height, info.header.frame_id) == (64, 48, "optical")
    got = [sink.got["depth"][key] for key in stamps[:3]]
    assert [d.encoding for d in got] == ["16UC1", "16UC1", "32FC1"]
    np.testing.assert_array_equal(depth_array(got[0]), mm[0])
    np.testing.assert_array_equal(depth_array(got[1]), mm[1])
    np.testing.assert_array_equal(depth_array(got[2]), metres)


def test_synthetic_rooms_replay_their_rendered_depth_and_camera(harness, tmp_path):
    """The demo's rooms: depth in mm within 0.5 mm of the renderer's z, K the renderer's."""
    from matseg_ros.demo import frames
    sequence = frames.sample_rgbd(2, (48, 64))  # short: the rooms, no photographs
    assert all(d is not None for d in sequence.depth_m)
    frames.write_sequence(sequence.frames, tmp_path / "input")
    frames.write_depth(sequence, tmp_path / "depth", tmp_path / "camera_info.yaml")
    sink = Sink(harness, "/rooms")
    replay(tmp_path, "/rooms", {"source": tmp_path / "input", "depth_dir": tmp_path / "depth",
                                "calibration_file": tmp_path / "camera_info.yaml"})
    time.sleep(0.5)
    stamps = sorted(sink.got["image"])
    assert len(stamps) == 2 and sorted(sink.got["depth"]) == sorted(sink.got["info"]) == stamps
    f = 0.5 * 64 / np.tan(np.radians(frames.ROOM_HFOV_DEG) / 2)  # Camera.look's pinhole
    for key, depth_m in zip(stamps, sequence.depth_m):
        np.testing.assert_allclose(sink.got["info"][key].k, [f, 0, 31.5, 0, f, 23.5, 0, 0, 1], rtol=1e-9)
        mm = depth_array(sink.got["depth"][key])
        assert sink.got["depth"][key].encoding == "16UC1" and (mm > 0).all()
        assert np.abs(mm / 1000.0 - depth_m).max() <= 0.0005 + 1e-6


def test_start_up_errors_name_the_parameter(tmp_path, rng):
    (tmp_path / "rgb").mkdir()
    cv2.imwrite(str(tmp_path / "rgb" / "a.png"), scene(rng, 8, 8))
    cases = [({"depth_dir": tmp_path}, "depth_dir needs the intrinsics: set calibration_file or fx, fy, cx, cy"),
             ({"fx": 100.0}, "parameters fx, fy, cx, cy must all be set"),
             ({"depth_topic": "/d"}, "depth_topic and camera_info_topic are for bags"),
             ({"depth_dir": tmp_path / "none", "fx": 1.0, "fy": 1.0, "cx": 1.0, "cy": 1.0}, "parameter depth_dir:"),
             ({"calibration_file": tmp_path / "missing.yaml"}, "parameter calibration_file:")]
    for params, expected in cases:
        args = console_command("camera_replay", "matseg_ros.ros.camera_replay") + ["--ros-args", "-p",
                                                                                    f"source:={tmp_path / 'rgb'}"]
        for key, value in params.items():
            args += ["-p", f"{key}:={value}"]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 1 and expected in proc.stderr, (params, proc.stderr)


def test_calibration_file_in_the_camera_calibration_format(tmp_path):
    """What cameracalibrator writes, read back field by field (no DDS)."""
    from matseg_ros.io.depth_source import load_calibration
    path = tmp_path / "cam.yaml"
    path.write_text("image_width: 640\nimage_height: 480\ncamera_name: narrow_stereo\n"
                    "camera_matrix:\n  rows: 3\n  cols: 3\n  data: [615.1, 0, 320.5, 0, 615.9, 240.2, 0, 0, 1]\n"
                    "distortion_model: plumb_bob\ndistortion_coefficients:\n  rows: 1\n  cols: 5\n"
                    "  data: [0.1, -0.2, 0.001, 0.002, 0]\n"
                    "rectification_matrix:\n  rows: 3\n  cols: 3\n  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]\n"
                    "projection_matrix:\n  rows: 3\n  cols: 4\n  data: [610, 0, 321, 0, 0, 612, 241, 0, 0, 0, 1, 0]\n")
    cal = load_calibration(path)
    assert (cal.width, cal.height, cal.distortion_model) == (640, 480, "plumb_bob")
    assert cal.k == (615.1, 0, 320.5, 0, 615.9, 240.2, 0, 0, 1) and cal.d == (0.1, -0.2, 0.001, 0.002, 0)
    assert cal.p == (610, 0, 321, 0, 0, 612, 241, 0, 0, 0, 1, 0)
    path.write_text("image_width: 640\nimage_height: 480\n")
    with pytest.raises(ValueError, match="no camera_matrix"):
        load_calibration(path)


def test_sigint_while_publishing_logs_the_count_without_a_rosout_error(tmp_path, rng):
    (tmp_path / "rgb").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "rgb" / f"f{i}.png"), scene(rng, 48, 64))
    args = console_command("camera_replay", "matseg_ros.ros.camera_replay") + [
        "--ros-args", "-p", f"source:={tmp_path / 'rgb'}", "-p", "loop:=true", "-p", "rate_hz:=30.0"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3.0)  # start-up, then a second or more of publishing
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Failed to publish log message to rosout" not in out + err
    assert "context is invalid" not in out + err
    assert "stopped: published " in out + err, out + err


def test_unset_profile_variable_gets_the_package_profile_and_full_size_best_effort_frames_arrive(
        harness, tmp_path, rng):
    from matseg_ros.paths import PROFILE_VARIABLE, share_path
    assert os.environ[PROFILE_VARIABLE]  # this process subscribes with it (ros_harness)
    (tmp_path / "rgb").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "rgb" / f"f{i}.png"), scene(rng, 480, 640))
    sink = Sink(harness, "/prof", reliable=False)
    env = {k: v for k, v in os.environ.items() if k != PROFILE_VARIABLE}
    log = tmp_path / "replay.log"
    args = console_command("camera_replay", "matseg_ros.ros.camera_replay") + [
        "--ros-args", "-p", f"source:={tmp_path / 'rgb'}", "-p", "loop:=true", "-p", "max_frames:=20",
        "-p", "rate_hz:=20.0", "-p", "wait_for_subscribers:=1", "-r", "__ns:=/prof"]
    proc = subprocess.Popen(args, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        assert proc.wait(60) == 0, log.read_text()
    finally:
        stop(proc)
    text = log.read_text()
    assert f"Fast DDS profile: {share_path('config', 'fastdds_shm.xml')} (the package's" in text, text
    time.sleep(0.3)
    assert len(sink.got["image"]) >= 18, f"{len(sink.got['image'])} of 20 best-effort 640x480 frames arrived"
    assert all((m.width, m.height) == (640, 480) for m in sink.got["image"].values())


def test_segment_node_with_use_depth_fed_by_camera_replay_publishes_the_material_cloud(harness, tmp_path,
                                                                                     tiny_onnx_model):
    from matseg_ros.demo import frames
    from matseg_ros.io.depth_source import millimetres
    from matseg_ros.ros.output_collector import OutputCollector, wait_until
    from matseg_ros.ros.segment_node import SegmentNode
    from matseg_ros.runtime.engine import load_engine
    sequence = frames.sample_rgbd(2, (48, 64))
    frames.write_sequence(sequence.frames, tmp_path / "input")
    frames.write_depth(sequence, tmp_path / "depth", tmp_path / "camera_info.yaml")
    node = harness.add(SegmentNode(engine=load_engine(tiny_onnx_model, device="cpu"), node_name="dseg",
                                   context=harness.context,
                                   cli_args=["--ros-args", "-p", "use_depth:=true", "-p", "cloud_stride:=1",
                                             "-r", "image:=/dcam/camera/image_raw",
                                             "-r", "depth:=/dcam/camera/depth/image_raw",
                                             "-r", "camera_info:=/dcam/camera/camera_info"]))
    collector = harness.add(OutputCollector("/dseg", outputs=("materials", "cloud"), name="dcol",
                                            context=harness.context))
    assert wait_until(collector.connected, 10)
    replay(tmp_path, "/dcam", {"source": tmp_path / "input", "depth_dir": tmp_path / "depth",
                               "calibration_file": tmp_path / "camera_info.yaml", "rate_hz": 4.0,
                               "qos_reliability": "best_effort"})
    assert wait_until(lambda: collector.count("cloud") >= 1, 10), node.stats()
    key = sorted(collector.received["cloud"])[0]
    cloud = collector.get("cloud", key)
    assert (cloud.width, cloud.height) == (64, 48)
    points = np.frombuffer(bytes(cloud.data), np.float32).reshape(48, 64, 6)
    z = points[..., 2]  # the rendered depth, as the millimetre PNG carried it
    assert any(np.abs(z - millimetres(d) / 1000.0).max() < 1e-6 for d in sequence.depth_m)
    doc = collector.get("materials", key)
    measured = [m for m in doc["materials"] if m["area_m2"] is not None]  # tiny regions may have none
    assert measured and all(m["area_m2"] > 0 and m["mean_distance_m"] > 0 for m in measured), doc
    assert sum(m["pixels"] for m in measured) > 0.5 * 48 * 64, doc


def test_docs_table_lists_every_parameter():
    import re
    from pathlib import Path

    from matseg_ros.ros.camera_replay import PARAMETERS
    text = (Path(__file__).resolve().parent.parent / "docs" / "ros.md").read_text()
    section = text.split("## `camera_replay`", 1)[1].split("\n## ", 1)[0]
    documented = {name for row in section.splitlines() if row.startswith("| `")
                  for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert documented == set(PARAMETERS), documented ^ set(PARAMETERS)
