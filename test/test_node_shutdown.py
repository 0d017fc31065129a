"""Ctrl-C under `ros2 launch`: the terminal's SIGINT and the one launch forwards reach
segment_node about 0.1 s apart while frames flow. The shipped model at 640×480 keeps an
inference in flight; each gap below made the node abort (exit -6, "terminate called without
an active exception") or die by the second signal (exit 130) before runner.py's fix."""
from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from matseg_ros.paths import default_model_path
from ros_harness import RosHarness, image_msg, scene, start_node, stop

pytestmark = pytest.mark.ros
GAPS_S = (0.02, 0.1, 0.25)  # after the first SIGINT: inside destroy_node, during teardown, at exit


@pytest.fixture(scope="module")
def harness():
    h = RosHarness()
    yield h
    h.close()


def test_two_sigints_while_frames_flow_exit_0_without_abort(harness, tmp_path):
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from matseg_ros.ros.output_collector import OutputCollector, wait_until
    source = harness.add(Node("shutdown_camera", context=harness.context))
    camera = source.create_publisher(Image, "/shutdown_in", QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
    frames = [image_msg(scene(np.random.default_rng(i), 480, 640), "rgb8", 0) for i in range(3)]
    sent = 0

    def publish(seconds: float) -> None:
        nonlocal sent
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msg = frames[sent % len(frames)]
            msg.header.stamp.sec = sent
            camera.publish(msg)
            sent += 1
            time.sleep(0.03)

    for gap in GAPS_S:
        name = f"shutdown{int(gap * 100)}"
        log = tmp_path / f"{name}.log"
        collector = harness.add(OutputCollector(f"/{name}", outputs=("raw",), name=f"{name}_collector",
                                                context=harness.context))
        proc = start_node("segment_node", "matseg_ros.ros.segment_node",
                          {"model_path": default_model_path(), "qos_reliability": "reliable"},
                          {"__node": name, "image": "/shutdown_in"}, log=log)
        try:
            started = time.monotonic()
            while collector.count("raw") < 3 and proc.poll() is None and time.monotonic() - started < 60:
                publish(0.2)
            assert collector.count("raw") >= 3, log.read_text()
            proc.send_signal(signal.SIGINT)
            publish(gap)
            proc.send_signal(signal.SIGINT)
            publish(0.3)
            assert wait_until(lambda: proc.poll() is not None, 15), log.read_text()
        finally:
            stop(proc)
            harness.remove(collector)
        text = log.read_text()
        assert proc.returncode == 0, f"gap {gap} s: exit {proc.returncode}\n{text}"
        for needle in ("terminate called", "Aborted", "Traceback"):
            assert needle not in text, f"gap {gap} s:\n{text}"
