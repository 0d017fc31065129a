"""Test helpers for real rclpy over DDS: a private context spun on a thread, node
subprocesses started through their console scripts, and frame messages."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from matseg_ros.demo.run import stop_process
from matseg_ros.paths import use_fastdds_profile

stop = stop_process  # SIGINT (a clean ROS shutdown), then SIGKILL: the demo's own teardown

# Full-size best-effort images between processes need the SHM profile (docs/ros.md);
# set before any rclpy context of this test run creates a participant.
use_fastdds_profile()


class RosHarness:
    """An rclpy context of its own with a background executor; add nodes, then close."""

    def __init__(self) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.nodes = []
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                if self._running:
                    raise

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def remove(self, node) -> None:
        self.executor.remove_node(node)
        self.nodes.remove(node)
        node.destroy_node()

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        for node in list(self.nodes):
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()
        self.context.try_shutdown()


def answered(send: Callable[[], Any], timeout: float = 30.0, resend_s: float = 1.0) -> Any:
    """The result of an idempotent service call, sent again every `resend_s` until one is
    answered. `wait_for_service` only says that the client has discovered the server; a
    server that has not yet discovered the client's response reader drops its reply
    (rmw_fastrtps waits 100 ms for that match, then warns "failed to send response
    (timeout)"), so under load a single call could wait forever."""
    from matseg_ros.ros.output_collector import wait_until
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        future = send()
        if wait_until(future.done, min(resend_s, max(end - time.monotonic(), 0.0))):
            return future.result()
    raise AssertionError(f"no reply within {timeout:g} s")


class LifecycleClient:
    """get_state and change_state of a managed node. A transition is not idempotent, so it is
    sent once, and only after get_state has answered: both clients are in one participant,
    whose endpoints Fast DDS announces in creation order, so a server that has matched the
    later get_state client has matched the change_state client too."""

    def __init__(self, node, target: str, timeout: float = 30.0) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState
        self._change = node.create_client(ChangeState, f"{target}/change_state")  # first: see above
        self._get = node.create_client(GetState, f"{target}/get_state")
        if not (self._get.wait_for_service(timeout_sec=timeout) and self._change.wait_for_service(timeout_sec=timeout)):
            raise AssertionError(f"no lifecycle services on {target} within {timeout:g} s")
        self.state()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState
        return answered(lambda: self._get.call_async(GetState.Request())).current_state.label

    def transition(self, transition_id: int, timeout: float = 30.0) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        from matseg_ros.ros.output_collector import wait_until
        future = self._change.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        if not wait_until(future.done, timeout):
            raise AssertionError(f"no reply to transition {transition_id} within {timeout:g} s")
        return future.result().success


def console_command(script: str, module: str) -> list[str]:
    """The installed console script when there is one (as users run it), else `-m module`."""
    candidate = Path(sys.executable).parent / script
    return [str(candidate)] if candidate.is_file() else [sys.executable, "-m", module]


def start_node(script: str, module: str, params: dict, remaps: dict | None = None,
               log: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    args = console_command(script, module) + ["--ros-args"]
    for key, value in params.items():
        value = str(value).lower() if isinstance(value, bool) else value
        args += ["-p", f"{key}:={value}"]
    for old, new in (remaps or {}).items():
        args += ["-r", f"{old}:={new}"]
    out = log.open("wb") if log else subprocess.DEVNULL
    return subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=out,
                            stderr=subprocess.STDOUT)


def image_msg(array: np.ndarray, encoding: str, sec: int, frame_id: str = "cam"):
    from sensor_msgs.msg import Image

    from matseg_ros.runtime.encodings import numpy_to_image
    msg = numpy_to_image(array, encoding, Image())
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 123
    msg.header.frame_id = frame_id
    return msg


def scene(rng: np.random.Generator, height: int = 48, width: int = 64) -> np.ndarray:
    """An RGB frame with structure (blocks of colour plus noise), so masks are not uniform."""
    blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    big = np.kron(blocks, np.ones((height // 4 + 1, width // 4 + 1, 1), dtype=np.uint8))[:height, :width]
    noise = rng.integers(-20, 21, (height, width, 3))
    return np.clip(big.astype(int) + noise, 0, 255).astype(np.uint8)


def write_image_bag(path, frames, storage):
    """A rosbag2 (rosbags) with /cam/image_raw rgb8 frames (stamps 50+i s, 7 ns), a /note
    String after each, and a last image whose data is too short."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    TS = get_typestore(Stores.ROS2_KILTED)
    Image, String = TS.types["sensor_msgs/msg/Image"], TS.types["std_msgs/msg/String"]
    Header, Time = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        cam = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=TS)
        note = writer.add_connection("/note", "std_msgs/msg/String", typestore=TS)
        for i, rgb in enumerate(frames):
            t = 1_000_000_000 + i * 100_000_000
            header = Header(stamp=Time(sec=50 + i, nanosec=7), frame_id="cam")
            msg = Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8",
                        is_bigendian=0, step=rgb.shape[1] * 3, data=rgb.reshape(-1).copy())
            writer.write(cam, t, TS.serialize_cdr(msg, "sensor_msgs/msg/Image"))
            writer.write(note, t + 1, TS.serialize_cdr(String(data=f"n{i}"), "std_msgs/msg/String"))
        broken = Image(header=Header(stamp=Time(sec=99, nanosec=0), frame_id="cam"), height=4, width=4,
                       encoding="rgb8", is_bigendian=0, step=12, data=np.zeros(5, np.uint8))
        writer.write(cam, 2_000_000_000, TS.serialize_cdr(broken, "sensor_msgs/msg/Image"))
