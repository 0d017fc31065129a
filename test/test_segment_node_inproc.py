"""segment_node's scheduling, observed from inside: the node class in this process with
its engine passed in (a slow one for the newest-frame test), frames over real DDS."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from ros_harness import RosHarness, image_msg, scene, start_node, stop, write_image_bag

pytestmark = pytest.mark.ros


class SlowEngine:
    """A real engine that takes at least `delay` s per frame: a model slower than the camera."""

    def __init__(self, engine, delay: float) -> None:
        self.engine, self.delay = engine, delay
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def predict(self, rgb):
        self.calls += 1
        time.sleep(self.delay)
        return self.engine.predict(rgb)


@pytest.fixture(scope="module")
def engine(tiny_onnx_model):
    from matseg_ros.runtime.engine import load_engine
    return load_engine(tiny_onnx_model, device="cpu")


@pytest.fixture
def harness():
    h = RosHarness()
    yield h
    h.close()


def test_outputs_nobody_subscribes_to_are_not_computed(harness, engine, rng):
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from matseg_ros.ros.output_collector import OutputCollector, wait_until
    from matseg_ros.ros.segment_node import SegmentNode
    calls = SlowEngine(engine, 0.0)
    node = harness.add(SegmentNode(engine=calls, node_name="lazy", context=harness.context))
    source = harness.add(Node("lazy_source", context=harness.context))
    pub = source.create_publisher(Image, "image", 10)
    wait_until(lambda: pub.get_subscription_count() > 0, 10)

    for sec in (1, 2):  # nobody listens: frames are counted as idle, the model never runs
        pub.publish(image_msg(scene(rng), "rgb8", sec))
        assert wait_until(lambda: node.counts["idle"] == sec, 5)
    assert calls.calls == 0 and node.wanted_outputs() == set()

    raw_only = harness.add(OutputCollector("/lazy", outputs=("raw",), name="raw_only", context=harness.context))
    assert wait_until(lambda: node.wanted_outputs() == {"raw"}, 10)
    assert wait_until(raw_only.connected, 10)
    nobody = harness.add(OutputCollector("/absent", outputs=("raw",), name="nobody", context=harness.context))
    assert not nobody.connected()  # no node publishes /absent/raw_segmentation_mask
    for sec in (3, 4, 5):
        pub.publish(image_msg(scene(rng), "rgb8", sec))
        assert wait_until(lambda: raw_only.count("raw") == sec - 2, 5)
    assert node.counts["published_raw"] == 3
    assert node.counts["published_colored"] == node.counts["published_overlay"] == 0
    assert node.counts["published_materials"] == 0 and calls.calls == 3

    harness.remove(raw_only)
    overlay_only = harness.add(OutputCollector("/lazy", outputs=("overlay",), name="ov", context=harness.context))
    assert wait_until(lambda: node.wanted_outputs() == {"overlay"}, 10)
    pub.publish(image_msg(scene(rng), "rgb8", 6))
    assert wait_until(lambda: overlay_only.count("overlay") == 1, 5)
    assert node.counts["published_raw"] == 3 and node.counts["published_colored"] == 0



def test_max_rate_hz_caps_processing_and_a_change_applies_at_once(harness, engine, rng):
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import Image

    from matseg_ros.ros.output_collector import OutputCollector, wait_until
    from matseg_ros.ros.segment_node import SegmentNode
    node = harness.add(SegmentNode(engine=engine, node_name="capped", context=harness.context))
    collector = harness.add(OutputCollector("/capped", outputs=("raw",), name="cc", context=harness.context))
    source = harness.add(Node("capped_source", context=harness.context))
    pub = source.create_publisher(Image, "image", 10)
    assert wait_until(lambda: pub.get_subscription_count() > 0 and collector.connected(), 10)

    def stream(seconds: float) -> int:
        """Frames at 20 Hz for `seconds`; how many the node processed meanwhile."""
        before, end = node.stats()["frames_processed"], time.monotonic() + seconds
        while time.monotonic() < end:
            pub.publish(image_msg(scene(rng), "rgb8", 1))
            time.sleep(0.05)
        return node.stats()["frames_processed"] - before

    assert node.set_parameters([Parameter("max_rate_hz", value=2.0)])[0].successful
    capped = stream(2.0)
    assert 2 <= capped <= 6, capped  # 2 Hz for 2 s (about 4); uncapped it would be about 40
    node.set_parameters([Parameter("max_rate_hz", value=0.01)])
    assert stream(1.0) <= 1
    node.set_parameters([Parameter("max_rate_hz", value=0.0)])  # must not wait out the 100 s
    resumed = stream(2.0)
    assert resumed >= 1, resumed  # the old worker slept through the whole window: 0

def test_a_slow_model_processes_only_the_newest_frame_with_bounded_latency(harness, engine, tmp_path):
    """camera_replay (its own process) sends 640×480 best-effort frames at 30 Hz through the
    Fast DDS SHM profile; the model takes >= 0.15 s. The node must skip (and count) frames
    instead of queueing them, so latency stays near one or two model times."""
    from matseg_ros.ros.output_collector import OutputCollector, wait_until
    from matseg_ros.ros.segment_node import SegmentNode
    rng = np.random.default_rng(5)
    for i in range(6):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), scene(rng, 480, 640))
    delay = 0.15
    slow = SlowEngine(engine, delay)
    node = harness.add(SegmentNode(engine=slow, node_name="newest", context=harness.context,
                                   cli_args=["--ros-args", "-r", "image:=/newest_in"]))
    collector = harness.add(OutputCollector("/newest", outputs=("raw",), name="nc", context=harness.context))
    assert node.channels[""].image_topic == "/newest_in"
    n_frames = 60
    replay = start_node("camera_replay", "matseg_ros.ros.camera_replay",
                        {"source": tmp_path, "rate_hz": 30.0, "loop": True, "max_frames": n_frames,
                         "wait_for_subscribers": 1}, {"camera/image_raw": "/newest_in"},
                        log=tmp_path / "replay.log")
    try:
        assert replay.wait(60) == 0, (tmp_path / "replay.log").read_text()
        wait_until(lambda: node.stats()["frames_processed"] + node.stats()["frames_dropped"]
                   >= node.stats()["frames_received"] - 1, 5)
    finally:
        stop(replay)
    s = node.stats()
    received, processed, dropped = s["frames_received"], s["frames_processed"], s["frames_dropped"]
    assert received >= 0.8 * n_frames, f"only {received}/{n_frames} best-effort 640x480 frames arrived"
    assert processed < received / 2, s
    assert dropped >= received - processed - 1 and dropped > 0, s
    assert processed == slow.calls
    assert wait_until(lambda: collector.count("raw") == processed, 5)
    # a depth-10 queue would wait ~10 model times; newest-only waits at most ~one
    assert s["latency_p95_ms"] < 1000 * (4 * delay + 0.3), s


def test_camera_replay_passes_bag_images_through_with_recorded_stamps(harness, tmp_path, rng):
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    from matseg_ros.ros.output_collector import wait_until
    frames = [scene(rng, 30, 40) for _ in range(3)]
    write_image_bag(tmp_path / "bag", frames, "mcap")  # 3 good frames, then one with a broken length
    got = []
    sink = harness.add(Node("replay_sink", context=harness.context))
    sink.create_subscription(Image, "/replayed/image_raw", got.append,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    replay = start_node("camera_replay", "matseg_ros.ros.camera_replay",
                        {"source": tmp_path / "bag", "topic": "/cam/image_raw", "rate_hz": 20.0,
                         "keep_stamps": True, "frame_id": "replayed", "qos_reliability": "reliable",
                         "wait_for_subscribers": 1}, {"camera/image_raw": "/replayed/image_raw"},
                        log=tmp_path / "replay.log")
    try:
        assert replay.wait(60) == 0, (tmp_path / "replay.log").read_text()
    finally:
        stop(replay)
    assert wait_until(lambda: len(got) == 4, 5), len(got)
    for i, rgb in enumerate(frames):
        assert (got[i].header.stamp.sec, got[i].header.stamp.nanosec) == (50 + i, 7)
        assert got[i].header.frame_id == "replayed" and got[i].encoding == "rgb8"
        np.testing.assert_array_equal(np.frombuffer(bytes(got[i].data), np.uint8).reshape(30, 40, 3), rgb)
    assert len(got[3].data) == 5  # passed through unchanged: judging frames is the node's job
    log = (tmp_path / "replay.log").read_text()  # it says what it publishes, where, how fast, and how many
    assert "on /replayed/image_raw and /camera/camera_info at 20 Hz (rgb8 for decoded frames, reliable)" in log, log
    assert "source exhausted: published 4 frames on /replayed/image_raw" in log, log
