"""sim_evaluator and dataset_recorder over real rclpy + Fast DDS (no Gazebo: a test node
publishes what the bridge would: mono8 predictions and rgb8 labels maps with the id in
every channel, stamped like Gazebo's paired cameras)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from matseg_ros.io import dataset_layout as layout  # noqa: E402
from matseg_ros.io.masks import read_mask  # noqa: E402
from matseg_ros.runtime.encodings import numpy_to_image  # noqa: E402

pytestmark = pytest.mark.ros
ROOT = Path(__file__).resolve().parent.parent
S = 1_000_000_000
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def split_frame(boundary: int, left: int = 8, right: int = 3, h: int = 48, w: int = 64) -> np.ndarray:
    ids = np.full((h, w), right, np.uint8)
    ids[:, :boundary] = left
    return ids


def image_msg(array: np.ndarray, encoding: str, stamp: int) -> Image:
    msg = numpy_to_image(array, encoding, Image())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, S)
    msg.header.frame_id = "matseg_bot::camera_link::rgb_camera"
    return msg


def labels_msg(ids: np.ndarray, stamp: int) -> Image:
    return image_msg(np.repeat(ids[..., None], 3, axis=2), "rgb8", stamp)


@pytest.fixture
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


def spin_until(executor, condition, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        executor.spin_once(timeout_sec=0.05)
    return condition()


class Feeder:
    """Publishes on two topics and waits until the node under test has each message."""

    def __init__(self, context, executor, node, topics: dict[str, str]):
        self.node = rclpy.create_node("sim_test_feeder", context=context)
        executor.add_node(self.node)
        self.executor, self.target = executor, node
        self.pubs = {side: self.node.create_publisher(Image, topic, RELIABLE) for side, topic in topics.items()}
        assert spin_until(executor, lambda: all(p.get_subscription_count() >= 1 for p in self.pubs.values()))

    def send(self, side: str, msg: Image) -> None:
        before = self.target.received[side]
        self.pubs[side].publish(msg)
        assert spin_until(self.executor, lambda: self.target.received[side] > before), f"{side} not delivered"


def test_sim_evaluator_scores_pairs_over_dds(context):
    from matseg_ros.ros.sim_evaluator import SimEvaluator

    executor = SingleThreadedExecutor(context=context)
    evaluator = SimEvaluator(context=context, cli_args=["--ros-args", "-r", "prediction:=/t/pred",
                                                       "-r", "ground_truth:=/t/labels",
                                                       "-p", "write_report:=false"])
    executor.add_node(evaluator)
    feeder = Feeder(context, executor, evaluator, {"prediction": "/t/pred", "ground_truth": "/t/labels"})
    metrics: list[dict] = []
    feeder.node.create_subscription(String, "/sim_evaluator/metrics", lambda m: metrics.append(json.loads(m.data)),
                                    RELIABLE)
    assert spin_until(executor, lambda: evaluator.count_subscribers("/sim_evaluator/metrics") >= 1)
    gt = split_frame(32)
    try:
        # 1 s: identical; 1.5 s: ground truth the node "skipped"; 2 s: partial overlap, prediction first
        feeder.send("ground_truth", labels_msg(gt, 1 * S))
        feeder.send("prediction", image_msg(gt, "mono8", 1 * S))
        assert spin_until(executor, lambda: len(metrics) == 1)
        assert metrics[0]["frame"]["mIoU"] == 1.0 and metrics[0]["mIoU"] == 1.0
        assert metrics[0]["frame"]["per_class_iou"]["wood"] == 1.0
        assert metrics[0]["frame"]["per_class_iou"]["paper"] is None

        feeder.send("ground_truth", labels_msg(split_frame(10), 3 * S // 2))
        feeder.send("prediction", image_msg(split_frame(40), "mono8", 2 * S))
        feeder.send("ground_truth", labels_msg(gt, 2 * S))
        assert spin_until(executor, lambda: len(metrics) == 2)
        frame = metrics[1]["frame"]
        assert frame["stamp"] == 2.0
        assert frame["per_class_iou"]["wood"] == pytest.approx(32 / 40)
        assert frame["per_class_iou"]["glass"] == pytest.approx(24 / 32)
        assert frame["mIoU"] == pytest.approx(0.775) and frame["pixel_accuracy"] == pytest.approx(56 / 64)
        assert metrics[1]["mIoU"] == pytest.approx(127 / 144)                  # running
        assert metrics[1]["unpaired"] == {"prediction": 0, "ground_truth": 1}   # the 1.5 s frame

        # a malformed pair is counted and skipped, not fatal
        feeder.send("prediction", image_msg(split_frame(16, w=32), "mono8", 3 * S))
        feeder.send("ground_truth", labels_msg(gt, 3 * S))
        assert spin_until(executor, lambda: evaluator.session.skipped.get("mismatch") == 1)
        assert len(metrics) == 2 and evaluator.pairer.paired == 3
    finally:
        executor.shutdown()
        evaluator.destroy_node()
        feeder.node.destroy_node()


def test_sim_evaluator_console_script_writes_report_on_sigint(context, tmp_path):
    report_dir = tmp_path / "report"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "matseg_ros.ros.sim_evaluator", "--ros-args", "-r", "prediction:=/u/pred",
         "-r", "ground_truth:=/u/labels", "-p", f"report_dir:={report_dir}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = rclpy.create_node("sim_report_feeder", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        metrics: list[dict] = []
        node.create_subscription(String, "/sim_evaluator/metrics", lambda m: metrics.append(json.loads(m.data)),
                                 RELIABLE)
        pred = node.create_publisher(Image, "/u/pred", RELIABLE)
        labels = node.create_publisher(Image, "/u/labels", RELIABLE)
        ready = spin_until(executor, lambda: pred.get_subscription_count() >= 1 and labels.get_subscription_count() >= 1
                           and node.count_publishers("/sim_evaluator/metrics") >= 1, timeout=60)
        assert ready, "sim_evaluator did not come up"
        time.sleep(0.5)
        gt = split_frame(32)
        labels.publish(labels_msg(gt, 7 * S))
        pred.publish(image_msg(split_frame(40), "mono8", 7 * S))
        assert spin_until(executor, lambda: len(metrics) == 1, timeout=20)
        pred.publish(image_msg(gt, "mono8", 8 * S))          # never gets its ground truth
        spin_until(executor, lambda: False, timeout=1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        executor.shutdown()
        node.destroy_node()
    assert proc.returncode == 0, out
    report = json.loads((report_dir / "report.json").read_text())
    assert report["frames"] == 1 and report["mIoU"] == pytest.approx(0.775)
    assert report["unpaired"]["prediction"] == 1
    assert report["topics"] == {"prediction": "/u/pred", "ground_truth": "/u/labels"}
    assert (report_dir / "frames.csv").read_text().count("\n") == 2


def test_dataset_recorder_writes_a_valid_dataset(context, tmp_path, rng, materials):
    from matseg_ros.ros.dataset_recorder import DatasetRecorder

    out = tmp_path / "sim_ds"
    executor = SingleThreadedExecutor(context=context)
    recorder = DatasetRecorder(context=context, cli_args=[
        "--ros-args", "-r", "image:=/r/image", "-r", "ground_truth:=/r/labels", "-p", f"output_dir:={out}",
        "-p", "prefix:=drive_", "-p", "min_interval:=1.0", "-p", "val_every:=2",
        "-p", "block_size:=1"])
    executor.add_node(recorder)
    feeder = Feeder(context, executor, recorder, {"image": "/r/image", "ground_truth": "/r/labels"})
    try:
        # smooth, distinct colour fields (JPEG keeps them; per-pixel noise it would not)
        frames = [cv2.resize(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8), (64, 48),
                             interpolation=cv2.INTER_LINEAR) for _ in range(4)]
        plan = [(0.0, frames[0], 20), (0.5, frames[1], 30),     # too soon
                (2.0, frames[0], 20),                           # unchanged
                (3.0, frames[1], 30), (4.5, frames[2], 40)]
        for t, rgb, boundary in plan:
            stamp = int(t * S)
            feeder.send("image", image_msg(rgb, "rgb8", stamp))
            feeder.send("ground_truth", labels_msg(split_frame(boundary), stamp))
        assert recorder.writer.written == 3
        assert recorder.counts == {"gate_kept": 3, "gate_interval": 1, "gate_unchanged": 1}
        # a bgr8 camera works too; the stored image is RGB
        feeder.send("image", image_msg(frames[3][..., ::-1].copy(), "bgr8", 6 * S))
        feeder.send("ground_truth", labels_msg(split_frame(50), 6 * S))
        recorder.writer.flush()
    finally:
        executor.shutdown()
        recorder.destroy_node()
        feeder.node.destroy_node()
    ids = layout.read_split(out, "trainval")
    assert ids == [f"drive_{k:06d}" for k in (1, 3, 2, 4)]
    assert layout.read_split(out, "val") == ["drive_000002", "drive_000004"]
    for sample_id, boundary in zip([f"drive_{k:06d}" for k in (1, 2, 3, 4)], (20, 30, 40, 50)):
        mask, ignored = read_mask(layout.mask_path(out, sample_id), materials)
        np.testing.assert_array_equal(mask, split_frame(boundary))
        assert ignored == 0
    stored = layout.read_rgb(layout.find_image(out, "drive_000004")).astype(int)
    assert np.abs(stored - frames[3]).mean() < 4         # JPEG of the RGB frame ...
    assert np.abs(stored - frames[3][..., ::-1]).mean() > 4 * np.abs(stored - frames[3]).mean()  # ... not BGR
    _validate(out)


def _validate(root: Path) -> None:
    """`matseg data validate` when the data tools are there; the layout checks otherwise."""
    try:
        from matseg_ros.data import cli as data_cli  # noqa: F401
    except ImportError:
        data_cli = None
    if data_cli is not None and hasattr(data_cli, "run"):
        result = subprocess.run([sys.executable, "-m", "matseg_ros.cli", "data", "validate", str(root)],
                                capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert result.returncode == 0, result.stdout + result.stderr
        return
    images = layout.list_ids(layout.image_dir(root))
    masks = sorted(p.stem for p in layout.mask_dir(root).glob("*.png"))
    assert images == masks == sorted(layout.read_split(root, "trainval"))
