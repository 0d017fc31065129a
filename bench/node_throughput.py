"""segment_node against bare inference, over real DDS (the node in its own process).

    python bench/node_throughput.py [--model M.onnx] [--frames 5000] [--seconds 10]

1. throughput: bare `engine.predict` frames/s vs the node's output frames/s on the same
   model and frames, input published faster than the model (ratio, goal >= 0.95);
2. added latency: node receipt->publish (its /diagnostics p50/p95) minus bare predict
   p50/p95, one frame at a time (goal <= 3 ms p50 at 640x480 on CPU);
3. overload: 30 Hz input and a model slower than 30 Hz; input->output p95 of the node vs a
   naive node that infers inside its callback behind a depth-10 reliable queue;
4. memory: node RSS while it segments --frames frames with every output subscribed.
Without --model, tiny networks are exported (240x320 input for 1-2, 480x640 for 3-4).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_shm.xml"))


def tiny_model(folder: Path, size: tuple[int, int]) -> Path:
    sys.path.insert(0, str(ROOT / "test"))
    from conftest import export_tiny_onnx  # the test suite's small real network

    from matseg_ros.materials import load_materials
    path = folder / f"tiny_{size[0]}x{size[1]}.onnx"
    export_tiny_onnx(path, load_materials(), input_size=size)
    return path


def frames(n: int, height: int, width: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
    big = np.kron(base, np.ones((8, 8, 1), np.uint8))
    return [np.roll(big, 7 * i, axis=1) for i in range(n)]


def naive_node_main(model: str, name: str) -> int:
    """The baseline: inference inside the subscription callback, depth-10 reliable queue."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from matseg_ros.runtime.encodings import image_to_rgb, numpy_to_image
    from matseg_ros.runtime.engine import load_engine

    engine = load_engine(model, device="cpu")
    try:
        with rclpy.init():
            node = Node(name)
            pub = node.create_publisher(Image, "~/raw_segmentation_mask", 10)

            def callback(msg):
                ids, _ = engine.predict(image_to_rgb(msg))
                out = numpy_to_image(ids, "mono8", Image())
                out.header = msg.header
                pub.publish(out)

            node.create_subscription(Image, "image", callback,
                                     QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


class Driver:
    """Publishes frames to a node process and timestamps what comes back."""

    def __init__(self, node_name: str, outputs=("raw",), reliable=True):
        import rclpy
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from matseg_ros.ros.output_collector import BackgroundSpinner, OutputCollector
        self.Image = Image
        self.ctx = rclpy.context.Context()
        rclpy.init(context=self.ctx)
        self.src = Node("bench_source", context=self.ctx)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self.pub = self.src.create_publisher(Image, f"/{node_name}_in", qos)
        self.collector = OutputCollector(f"/{node_name}", outputs=outputs, name="bench_collector",
                                         context=self.ctx)
        self.sent: dict[tuple[int, int], float] = {}
        self.spinner = BackgroundSpinner(self.src, self.collector)
        self.seq = 0

    def message(self, rgb):
        from matseg_ros.runtime.encodings import numpy_to_image
        msg = numpy_to_image(rgb, "rgb8", self.Image())
        self.seq += 1
        msg.header.stamp.sec, msg.header.stamp.nanosec = self.seq // 1000, (self.seq % 1000) * 1000
        msg.header.frame_id = "bench"
        return msg

    def send(self, msg):
        self.sent[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = time.monotonic()
        self.pub.publish(msg)

    def latencies(self) -> np.ndarray:
        with self.collector.lock:
            got = dict(self.collector.received["raw"])
        return np.array([t - self.sent[k] for k, (_, t) in got.items() if k in self.sent])

    def close(self):
        self.spinner.stop()
        self.src.destroy_node()
        self.collector.destroy_node()
        self.ctx.try_shutdown()


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=dict(os.environ))


def stop(proc: subprocess.Popen) -> None:
    import signal
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def node_cmd(model: Path, name: str, **params) -> list[str]:
    cmd = [sys.executable, "-m", "matseg_ros.ros.segment_node", "--ros-args", "-r", f"__node:={name}",
           "-r", f"image:=/{name}_in", "-p", f"model_path:={model}", "-p", "device:=cpu",
           "-p", "qos_reliability:=reliable"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={value}"]
    return cmd


def wait_ready(driver: Driver, proc: subprocess.Popen, name: str, log: Path) -> None:
    from matseg_ros.ros.output_collector import wait_until
    ready = wait_until(lambda: proc.poll() is not None or (
        driver.pub.get_subscription_count() > 0
        and driver.collector.count_publishers(f"/{name}/raw_segmentation_mask") > 0), 90)
    if not ready or proc.poll() is not None:
        raise SystemExit(f"{name} did not start:\n{log.read_text()}")
    time.sleep(1.0)  # let every endpoint finish matching


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, q) -> float:
    return float(np.percentile(values, q)) * 1e3 if len(values) else float("nan")


def bench_throughput(model: Path, imgs, seconds: float, tmp: Path, rounds: int = 3) -> None:
    """Alternates bare-engine and node windows (the machine's load drifts) and pairs each
    node round trip with a bare predict of the same frame."""
    from matseg_ros.ros.output_collector import wait_until
    from matseg_ros.runtime.engine import load_engine
    engine = load_engine(model, device="cpu")
    log = tmp / "node_tp.log"
    proc = start(node_cmd(model, "bench_tp"), log)
    driver = Driver("bench_tp")
    window = seconds / rounds
    bare_fps, node_fps, bare_t, added, node_diag = [], [], [], [], []
    try:
        wait_ready(driver, proc, "bench_tp", log)
        for _ in range(rounds):
            t0, i = time.perf_counter(), 0
            while time.perf_counter() - t0 < window:
                engine.predict(imgs[i % len(imgs)])
                i += 1
            bare_fps.append(i / (time.perf_counter() - t0))
            period = 1.0 / (1.5 * bare_fps[-1])  # input faster than the model
            before, t0, k = driver.collector.count("raw"), time.monotonic(), 0
            while time.monotonic() - t0 < window:
                driver.send(driver.message(imgs[k % len(imgs)]))
                k += 1
                time.sleep(max(0.0, t0 + k * period - time.monotonic()))
            wait_until(lambda: False, 0.5)  # the frame in flight
            node_fps.append((driver.collector.count("raw") - before) / (time.monotonic() - t0 - 0.5))
            time.sleep(0.5)
        for k in range(100):  # one frame at a time: bare predict, then the node on the same frame
            t = time.perf_counter()
            engine.predict(imgs[k % len(imgs)])
            bare_t.append(time.perf_counter() - t)
            msg = driver.message(imgs[k % len(imgs)])
            key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            driver.send(msg)
            wait_until(lambda: driver.collector.get("raw", key) is not None, 5, poll=0.0002)
            added.append(driver.collector.received["raw"][key][1] - driver.sent[key] - bare_t[-1])
        time.sleep(1.5)
        node_diag = [driver.collector.diag("latency_p50_ms"), driver.collector.diag("latency_p95_ms")]
    finally:
        driver.close()
        stop(proc)
    ratios = [n / b for n, b in zip(node_fps, bare_fps)]
    h, w = imgs[0].shape[:2]
    print(f"[1] throughput at {w}x{h} ({model.name}), input 1.5x the model's rate, raw mask subscribed: "
          + "; ".join(f"bare {b:.1f} / node {n:.1f} frames/s" for b, n in zip(bare_fps, node_fps))
          + f" -> node/bare median {np.median(ratios):.3f}")
    print(f"[2] one frame at a time: bare predict p50 {pct(bare_t, 50):.2f} ms p95 {pct(bare_t, 95):.2f} ms; "
          f"node receipt->publish (its /diagnostics) p50 {node_diag[0]:.2f} ms p95 {node_diag[1]:.2f} ms; "
          f"publish->mask received minus bare predict of the same frame: p50 {pct(added, 50):.2f} ms "
          f"p95 {pct(added, 95):.2f} ms")


def bench_overload(model: Path, imgs, seconds: float, tmp: Path) -> None:
    from matseg_ros.runtime.engine import load_engine
    engine = load_engine(model, device="cpu")
    t = time.perf_counter()
    for rgb in imgs[:10]:
        engine.predict(rgb)
    model_hz = 10 / (time.perf_counter() - t)
    results = {}
    for kind in ("newest-frame node", "naive node (in-callback, depth-10 reliable)"):
        name = "bench_newest" if kind.startswith("newest") else "bench_naive"
        log = tmp / f"{name}.log"
        cmd = node_cmd(model, name) if name == "bench_newest" else \
            [sys.executable, __file__, "--naive-node", str(model), "--name", name, "--ros-args",
             "-r", f"__node:={name}", "-r", f"image:=/{name}_in"]
        proc = start(cmd, log)
        driver = Driver(name)
        try:
            wait_ready(driver, proc, name, log)
            t0, k = time.monotonic(), 0
            while time.monotonic() - t0 < seconds:
                driver.send(driver.message(imgs[k % len(imgs)]))
                k += 1
                time.sleep(max(0.0, t0 + k / 30.0 - time.monotonic()))
            time.sleep(3.0)
            lat = driver.latencies()
            results[kind] = (k, len(lat), pct(lat, 50), pct(lat, 95))
        finally:
            driver.close()
            stop(proc)
    print(f"[3] overload: 30 Hz input for {seconds:g} s, model {model_hz:.1f} Hz ({model.name}, "
          f"{imgs[0].shape[1]}x{imgs[0].shape[0]})")
    for kind, (sent, done, p50, p95) in results.items():
        print(f"    {kind}: {done}/{sent} frames segmented, input->output p50 {p50:.0f} ms, p95 {p95:.0f} ms")
    (_, _, _, a), (_, _, _, b) = results.values()
    print(f"    p95 naive / newest-frame = {b / a:.1f}x")


def bench_memory(model: Path, imgs, n: int, tmp: Path) -> None:
    log = tmp / "node_mem.log"
    proc = start(node_cmd(model, "bench_mem"), log)
    driver = Driver("bench_mem", outputs=("raw", "colored", "overlay", "materials"))
    samples = []
    try:
        wait_ready(driver, proc, "bench_mem", log)
        t0 = time.monotonic()
        for k in range(n):
            driver.send(driver.message(imgs[k % len(imgs)]))
            time.sleep(max(0.0, t0 + (k + 1) / 60.0 - time.monotonic()))
            if k % max(1, n // 10) == 0 or k == n - 1:
                samples.append((k, rss_mb(proc.pid)))
        time.sleep(2.0)
        processed = driver.collector.count("raw")
    finally:
        driver.close()
        stop(proc)
    warm = samples[1][1] if len(samples) > 1 else samples[0][1]
    print(f"[4] memory: {n} frames sent at 60 Hz, {processed} segmented with all 4 outputs; node RSS MB at "
          + ", ".join(f"{k}:{m:.0f}" for k, m in samples)
          + f" -> growth after warm-up {samples[-1][1] - warm:+.1f} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model for every part (default: tiny networks)")
    parser.add_argument("--frames", type=int, default=5000, help="frames for the memory part")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of the rate parts")
    parser.add_argument("--size", default="480x640", help="frame HxW")
    parser.add_argument("--parts", default="1,3,4", help="which parts to run: 1 (throughput and latency, "
                        "also prints 2), 3 (overload), 4 (memory)")
    parser.add_argument("--naive-node", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--name", default="bench_naive", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()
    if args.naive_node:
        return naive_node_main(args.naive_node, args.name)
    height, width = (int(v) for v in args.size.split("x"))
    imgs = frames(8, height, width)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fast = args.model or tiny_model(tmp, (240, 320))
        slow = args.model or tiny_model(tmp, (480, 640))
        print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; ROS_DOMAIN_ID "
              f"{os.environ['ROS_DOMAIN_ID']}", flush=True)
        parts = set(args.parts.split(","))
        if "1" in parts:
            bench_throughput(fast, imgs, args.seconds, tmp)
        if "3" in parts:
            bench_overload(slow, imgs, args.seconds, tmp)
        if "4" in parts:
            bench_memory(fast, imgs, args.frames, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
