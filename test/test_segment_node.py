"""segment_node as users run it: its console script in its own process, over real DDS."""
from __future__ import annotations

import itertools
import json
import os
import time

import cv2
import numpy as np
import pytest

from ros_harness import RosHarness, answered, image_msg, scene, start_node, stop

pytestmark = pytest.mark.ros
STAMPS = itertools.count(1000)


def _array(msg) -> np.ndarray:
    data = np.frombuffer(bytes(msg.data), np.uint8)
    channels = {"mono8": 1, "rgb8": 3}[msg.encoding]
    assert msg.step == msg.width * channels
    return data.reshape(msg.height, msg.width, channels).squeeze(-1) if channels == 1 \
        else data.reshape(msg.height, msg.width, 3)


@pytest.fixture(scope="module")
def pipeline(tiny_onnx_model):
    from matseg_ros.runtime.engine import load_engine
    from matseg_ros.runtime.pipeline import FramePipeline
    return FramePipeline(load_engine(tiny_onnx_model, device="cpu"))


@pytest.fixture(scope="module")
def harness():
    h = RosHarness()
    yield h
    h.close()


class NodeUnderTest:
    """A segment_node process plus a collector of its outputs and a publisher to its input."""

    def __init__(self, harness, name, model, tmp, compressed=False, **params):
        self.name, self.log = name, tmp / f"{name}.log"
        topic = f"/{name}_in"
        self.proc = start_node("segment_node", "matseg_ros.ros.segment_node",
                               {"model_path": model, "device": "cpu", "qos_reliability": "reliable",
                                "compressed": compressed, **params},
                               {"__node": name, "image": topic, "image/compressed": topic + "/compressed"},
                               log=self.log)
        try:
            self._connect(harness, name, topic, compressed)
        except BaseException:  # never leave the process behind
            stop(self.proc)
            raise

    def _connect(self, harness, name, topic, compressed):
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CompressedImage, Image

        from matseg_ros.ros.output_collector import OutputCollector, wait_until
        self.collector = harness.add(OutputCollector(f"/{name}", name=f"{name}_collector",
                                                     context=harness.context))
        self.source = harness.add(Node(f"{name}_source", context=harness.context))
        self.pub = self.source.create_publisher(
            CompressedImage if compressed else Image, topic + ("/compressed" if compressed else ""),
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        ready = wait_until(lambda: (self.collector.classes is not None and self.collector.connected())
                           or self.proc.poll() is not None, 90)
        assert ready and self.proc.poll() is None, f"{name} did not start:\n{self.log.read_text()}"
        wait_until(lambda: self.pub.get_subscription_count() > 0, 30)
        self.wait_until = wait_until

    def send(self, msg, outputs=("raw", "colored", "overlay", "materials"), timeout=20.0):
        """Publish `msg` and return its outputs (None for those that did not arrive)."""
        from matseg_ros.ros.output_collector import stamp_key
        key = stamp_key(msg.header)
        self.pub.publish(msg)
        self.wait_until(lambda: all(self.collector.get(o, key) is not None for o in outputs), timeout)
        return {o: self.collector.get(o, key) for o in outputs}

    def diag(self, key):
        return self.collector.diag(key)


@pytest.fixture(scope="module")
def node(harness, tiny_onnx_model, tmp_path_factory):
    n = NodeUnderTest(harness, "seg", tiny_onnx_model, tmp_path_factory.mktemp("seg"))
    yield n
    stop(n.proc)


@pytest.fixture(scope="module")
def compressed_node(harness, tiny_onnx_model, tmp_path_factory):
    n = NodeUnderTest(harness, "segc", tiny_onnx_model, tmp_path_factory.mktemp("segc"), compressed=True,
                      publish_colored=False, publish_overlay=False)
    yield n
    stop(n.proc)


def test_outputs_equal_the_core_pipeline_with_the_header_copied(node, pipeline, rng):
    from matseg_ros.runtime.pipeline import materials_document
    rgb = scene(rng, 60, 80)
    sec = next(STAMPS)
    out = node.send(image_msg(rgb, "rgb8", sec, frame_id="camera_optical"))
    expected = pipeline.run(rgb)
    for name in ("raw", "colored", "overlay"):
        assert out[name] is not None, f"no {name} output; node log:\n{node.log.read_text()}"
        assert out[name].header.frame_id == "camera_optical"
        assert (out[name].header.stamp.sec, out[name].header.stamp.nanosec) == (sec, 123)
    assert out["raw"].encoding == "mono8" and out["colored"].encoding == "rgb8"
    np.testing.assert_array_equal(_array(out["raw"]), expected.ids)
    np.testing.assert_array_equal(_array(out["colored"]), expected.colored)
    np.testing.assert_array_equal(_array(out["overlay"]), expected.overlay)
    doc = materials_document(expected.materials, sec, 123, "camera_optical", 60, 80)
    assert out["materials"] == json.loads(json.dumps(doc))
    assert {m["name"] for m in out["materials"]["materials"]} <= set(pipeline.materials.names)


def _encoded(rgb: np.ndarray, encoding: str, rng) -> np.ndarray:
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return {
        "bgr8": lambda: rgb[..., ::-1].copy(),
        "bgra8": lambda: cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA),
        "mono8": lambda: gray,
        "mono16": lambda: gray.astype(np.uint16) * 257,
        "32FC1": lambda: gray.astype(np.float32) / 7.0 - 3.0,
        "yuv422_yuy2": lambda: cv2.cvtColor(rgb[..., ::-1], cv2.COLOR_BGR2YUV_YUY2),
        "bayer_rggb8": lambda: np.where(rng.random(gray.shape) < 2, gray, 0).astype(np.uint8),
    }[encoding]()


@pytest.mark.parametrize("encoding", ["bgr8", "bgra8", "mono8", "mono16", "32FC1", "yuv422_yuy2",
                                      "bayer_rggb8"])
def test_every_encoding_is_segmented_like_the_core_decodes_it(node, pipeline, rng, encoding):
    from matseg_ros.runtime.encodings import image_to_rgb
    msg = image_msg(_encoded(scene(rng), encoding, rng), encoding, next(STAMPS))
    out = node.send(msg, outputs=("raw",))
    assert out["raw"] is not None, f"no output for {encoding}; log:\n{node.log.read_text()}"
    np.testing.assert_array_equal(_array(out["raw"]), pipeline.run(image_to_rgb(msg), ("raw",)).ids)


def _malformed(rng):
    good = scene(rng)
    frames = {}
    m = image_msg(good, "rgb8", 0)
    m.step = 10
    frames["step shorter than a row"] = m
    m = image_msg(good, "rgb8", 0)
    m.data = m.data[:-7]
    frames["data length"] = m
    m = image_msg(good, "rgb8", 0)
    m.encoding = "rgb9"
    frames["unknown encoding"] = m
    m = image_msg(good, "rgb8", 0)
    m.height, m.width, m.step, m.data = 0, 0, 0, []
    frames["zero size"] = m
    depth = np.ones((48, 64), np.float32)
    depth[5, 7] = np.nan
    frames["NaN float image"] = image_msg(depth, "32FC1", 0)
    m = image_msg(good[..., 0].copy(), "mono8", 0)
    m.height, m.width, m.step = 200_000, 100_000, 100_000
    frames["absurd size"] = m
    return frames


def test_each_malformed_frame_is_rejected_and_counted_and_the_next_good_one_processed(node, pipeline, rng):
    from matseg_ros.ros.output_collector import stamp_key
    time.sleep(1.2)  # a fresh /diagnostics baseline
    before = node.diag("frames_rejected")
    bad = _malformed(rng)
    for kind, msg in bad.items():
        msg.header.stamp.sec = next(STAMPS)
        node.pub.publish(msg)
        time.sleep(0.3)
        rgb = scene(rng)
        out = node.send(image_msg(rgb, "rgb8", next(STAMPS)), outputs=("raw",))
        assert out["raw"] is not None, f"good frame after {kind!r} not processed:\n{node.log.read_text()}"
        np.testing.assert_array_equal(_array(out["raw"]), pipeline.run(rgb, ("raw",)).ids)
        assert node.collector.get("raw", stamp_key(msg.header)) is None
    assert node.wait_until(lambda: node.diag("frames_rejected") - before == len(bad), 5), \
        f"rejected {node.diag('frames_rejected') - before} of {len(bad)}"
    log = node.log.read_text()
    for needle in ("step is shorter", "data has", "unsupported encoding", "must be positive",
                   "not finite", "exceeds the limit"):
        assert needle in log, f"no warning mentioning {needle!r}:\n{log}"


def test_corrupt_compressed_frame_rejected_then_jpeg_and_png_segmented(compressed_node, pipeline, rng):
    from sensor_msgs.msg import CompressedImage

    from matseg_ros.runtime.encodings import compressed_to_rgb
    n = compressed_node
    for fmt, ext in (("jpeg", ".jpg"), ("png", ".png")):
        rgb = scene(rng)
        msg = CompressedImage(format=fmt, data=cv2.imencode(ext, rgb[..., ::-1])[1].tobytes())
        msg.header.stamp.sec, msg.header.frame_id = next(STAMPS), "cam_c"
        corrupt = CompressedImage(format=fmt, data=bytes(msg.data)[: len(msg.data) // 3])
        corrupt.header.stamp.sec = next(STAMPS)
        n.pub.publish(corrupt)
        time.sleep(0.3)
        out = n.send(msg, outputs=("raw", "materials"))
        assert out["raw"] is not None, n.log.read_text()
        assert out["raw"].header.frame_id == "cam_c"
        np.testing.assert_array_equal(_array(out["raw"]), pipeline.run(compressed_to_rgb(msg), ("raw",)).ids)
    assert n.wait_until(lambda: n.diag("frames_rejected") == 2 and n.diag("published_raw") == 2, 5)
    assert "corrupt or truncated" in n.log.read_text()
    # publish_colored/publish_overlay false: nothing computed or published for them
    assert n.diag("published_colored") == 0 and n.diag("published_overlay") == 0


def test_diagnostics_report_rates_latency_and_the_backend_really_used(node, rng):
    for _ in range(3):
        node.send(image_msg(scene(rng), "rgb8", next(STAMPS)), outputs=("raw",))
    assert node.wait_until(lambda: node.diag("frames_processed") >= 3 and node.diag("latency_p50_ms") > 0, 5)
    d = dict(node.collector.diagnostics)
    assert d["backend"] == "onnxruntime" and d["device"] == "cpu"
    assert d["providers"] == "CPUExecutionProvider"
    assert d["input_topic"] == "/seg_in"
    assert float(d["latency_p50_ms"]) > 0 and float(d["latency_p95_ms"]) >= float(d["latency_p50_ms"])
    for key in ("input_rate_hz", "output_rate_hz", "frames_dropped", "frames_rejected"):
        assert key in d



def test_diagnostics_level_follows_the_input_now_not_its_history(node, rng):
    """A rejected frame shows as WARN in one status and is gone once good frames flow again;
    a camera that stops turns the status WARN after input_timeout_s (2 s by default)."""
    from diagnostic_msgs.msg import DiagnosticStatus
    c = node.collector

    def status():
        with c.lock:
            return c.diagnostics_level, c.diagnostics_message

    def stream_until(done, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            node.pub.publish(image_msg(scene(rng), "rgb8", next(STAMPS)))
            if node.wait_until(done, 0.25):
                return True
        return False

    ok = lambda: status() == (int.from_bytes(DiagnosticStatus.OK, "little"), "segmenting")  # noqa: E731
    assert stream_until(ok, 10), status()
    bad = image_msg(scene(rng), "rgb8", next(STAMPS))
    bad.encoding = "yuv999"
    node.pub.publish(bad)
    time.sleep(0.3)  # taken by the worker before a newer frame replaces it
    assert stream_until(lambda: "1 frames rejected" in status()[1], 10), status()
    assert status()[0] == int.from_bytes(DiagnosticStatus.WARN, "little")
    assert stream_until(ok, 10), status()  # the totals remain in the counters only
    assert node.diag("frames_rejected") >= 1
    assert node.wait_until(lambda: status()[1].startswith("no images on /seg_in for"), 6), status()
    assert status()[0] == int.from_bytes(DiagnosticStatus.WARN, "little")

def test_parameters_are_validated_at_run_time(node, harness, pipeline, rng):
    from rclpy.parameter import Parameter
    from rclpy.parameter_client import AsyncParameterClient
    client = AsyncParameterClient(node.source, "/seg")
    assert client.wait_for_services(20)

    def set_params(*params):  # the same values again give the same results
        return answered(lambda: client.set_parameters(list(params))).results

    refused = set_params(Parameter("overlay_alpha", value=1.5), Parameter("max_rate_hz", value=-2.0),
                         Parameter("max_rate_hz", value=float("nan")),
                         Parameter("backend", value="tpu"), Parameter("qos_depth", value=3),
                         Parameter("input_timeout_s", value=-1.0))
    assert [r.successful for r in refused] == [False] * 6
    assert "overlay_alpha" in refused[0].reason and "1.5" in refused[0].reason
    assert "max_rate_hz" in refused[1].reason and "max_rate_hz" in refused[2].reason
    assert "read-only" in refused[3].reason and "read-only" in refused[4].reason
    assert "input_timeout_s" in refused[5].reason
    wrong_type = set_params(Parameter("publish_overlay", value="yes"))
    assert not wrong_type[0].successful
    assert [r.successful for r in set_params(Parameter("overlay_alpha", value=0.25))] == [True]
    rgb = scene(rng)
    out = node.send(image_msg(rgb, "rgb8", next(STAMPS)), outputs=("overlay",))
    pipeline.overlay_alpha = 0.25
    try:
        np.testing.assert_array_equal(_array(out["overlay"]), pipeline.run(rgb, ("overlay",)).overlay)
    finally:
        pipeline.overlay_alpha = 0.5


def test_start_up_errors_exit_non_zero_with_one_clear_line(tiny_onnx_model, tmp_path):
    wrong = tmp_path / "materials.yaml"
    wrong.write_text("classes:\n  - {id: 0, name: background, color: [0, 0, 0]}\n"
                     "  - {id: 1, name: carpet, color: [9, 9, 9]}\n")
    cases = {
        "missing": ({"model_path": tmp_path / "nope.onnx"}, "nope.onnx: model file not found"),
        "mismatch": ({"model_path": tiny_onnx_model, "materials_file": wrong},
                     "class map does not match the model's"),
        "choice": ({"model_path": tiny_onnx_model, "backend": "tpu"}, "backend must be one of"),
        "range": ({"model_path": tiny_onnx_model, "overlay_alpha": 3.0}, "overlay_alpha"),
        "package": ({"model_path": tiny_onnx_model}, "needs the Python package 'onnx'"),
    }
    # a robot without the onnx package: an `onnx` module that fails to import shadows it
    (tmp_path / "no_onnx").mkdir()
    (tmp_path / "no_onnx" / "onnx.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnx'\", name='onnx')\n")
    shadow = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "no_onnx"),
                                             os.environ.get("PYTHONPATH", "")])}
    procs = {name: start_node("segment_node", "matseg_ros.ros.segment_node", params,
                              log=tmp_path / f"{name}.log", env=shadow if name == "package" else None)
             for name, (params, _) in cases.items()}
    for name, (_, needle) in cases.items():
        procs[name].wait(60)
        lines = [line for line in (tmp_path / f"{name}.log").read_text().splitlines()
                 if line.startswith("segment_node: error:")]
        assert procs[name].returncode == 1, (tmp_path / f"{name}.log").read_text()
        assert len(lines) == 1 and needle in lines[0], lines
        assert "Traceback" not in (tmp_path / f"{name}.log").read_text()


def test_sigint_exits_cleanly_and_promptly(node):
    """Last in this module: stops the shared node."""
    start = time.monotonic()
    assert stop(node.proc, timeout=10) == 0, node.log.read_text()
    assert time.monotonic() - start < 10
    assert "Traceback" not in node.log.read_text()
