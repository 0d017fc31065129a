"""dose_mapper as users run it: its console script in its own process, over real DDS, fed
segment_node's cloud layout, PoseStamped poses and lamp_on, checked on ~/dose_map and ~/coverage."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from scipy.integrate import quad

from ros_harness import RosHarness, start_node, stop

pytestmark = pytest.mark.ros
METAL, WOOD = 4, 8
E1 = 0.2  # config/disinfection.yaml's lamp at 1 m, mW/cm^2
WIDTH, HEIGHT, HFOV = 160, 40, 120.0
FX = (WIDTH / 2) / np.tan(np.radians(HFOV / 2))
CX, CY = (WIDTH - 1) / 2, (HEIGHT - 1) / 2
TYPES = {6: "<u4", 7: "<f4"}


def rays():
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    return (u - CX) / FX, (v - CY) / FX


def camera_points(depth):
    """The organised points of a depth image (the camera frame: x right, y down, z forward)."""
    a, b = rays()
    return np.stack([a * depth, b * depth, depth], axis=-1).astype(np.float32)


def records(msg) -> np.ndarray:
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": [TYPES[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    return np.frombuffer(bytes(msg.data), dtype, count=msg.width * msg.height)


class Client:
    """Publishes clouds, poses and the lamp; keeps the newest dose map and coverage."""

    def __init__(self, harness, name):
        from geometry_msgs.msg import PoseStamped
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import PointCloud2
        from std_msgs.msg import Bool, String
        from std_srvs.srv import Trigger

        from matseg_ros.ros.output_collector import OutputCollector, wait_until
        self.wait_until = wait_until
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        node = self.node = harness.add(Node(f"{name}_client", context=harness.context))
        self.diagnostics = harness.add(OutputCollector(f"/{name}", outputs=(), name=f"{name}_diag",
                                                       context=harness.context))
        self.cloud_pub = node.create_publisher(PointCloud2, f"/{name}_cloud", qos)
        self.pose_pub = node.create_publisher(PoseStamped, f"/{name}_pose", qos)
        self.lamp_pub = node.create_publisher(Bool, f"/{name}_lamp", qos)
        self.lock = threading.Lock()
        self.map = self.coverage = None
        node.create_subscription(PointCloud2, f"/{name}/dose_map", lambda m: self._keep("map", m), qos)
        node.create_subscription(String, f"/{name}/coverage", lambda m: self._keep("coverage", json.loads(m.data)), qos)
        self.services = {s: node.create_client(Trigger, f"/{name}/{s}") for s in ("reset", "save", "load")}
        self.Trigger, self.PoseStamped, self.Bool = Trigger, PoseStamped, Bool
        self.t = 1000.0  # stamps only go forward, across tests too
        self.sent = 0

    def _keep(self, key, value):
        with self.lock:
            setattr(self, key, value)

    def connected(self):
        return (all(p.get_subscription_count() for p in (self.cloud_pub, self.pose_pub, self.lamp_pub))
                and all(c.service_is_ready() for c in self.services.values()) and self.coverage is not None)

    def stamp(self, t):
        from builtin_interfaces.msg import Time
        return Time(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))

    def pose(self, t, position, quaternion=(0, 0, 0, 1), frame="map"):
        msg = self.PoseStamped()
        msg.header.stamp, msg.header.frame_id = self.stamp(t), frame
        (msg.pose.position.x, msg.pose.position.y, msg.pose.position.z) = map(float, position)
        (msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z,
         msg.pose.orientation.w) = map(float, quaternion)
        self.pose_pub.publish(msg)

    def cloud(self, t, points, labels, frame="cam", drop_label=False):
        from std_msgs.msg import Header

        from matseg_ros.ros.cloud import cloud_message
        from matseg_ros.runtime.depth import pack_cloud
        packed = pack_cloud(points, np.zeros(points.shape[:2] + (3,), np.uint8), labels.astype(np.uint8),
                            np.ones(points.shape[:2], np.float32))
        msg = cloud_message(packed, Header(stamp=self.stamp(t), frame_id=frame))
        if drop_label:
            msg.fields = [f for f in msg.fields if f.name != "label"]
        self.cloud_pub.publish(msg)
        self.sent += 1

    def view(self, position, points, labels, dt=0.1, **pose):
        """One pose and its cloud, `dt` after the previous one; returns the stamp. Every 5th
        waits until the node has mapped it, so none is lost from its queue of 10 on a busy machine."""
        self.t += dt
        self.pose(self.t, position, **pose)
        self.cloud(self.t, points, labels)
        if self.sent % 5 == 0:
            self.map_at(self.t)
        return self.t

    def lamp(self, on):
        self.lamp_pub.publish(self.Bool(data=on))
        assert self.wait_until(lambda: self.coverage["lamp_on"] is on, 10), "lamp state did not arrive"

    def call(self, name):
        future = self.services[name].call_async(self.Trigger.Request())
        assert self.wait_until(future.done, 20), f"~/{name} did not answer"
        return future.result()

    def map_at(self, stamp):
        """The dose map once it includes the cloud stamped `stamp`."""
        want = self.stamp(stamp)
        ok = self.wait_until(lambda: self.map is not None and (self.map.header.stamp.sec, self.map.header.stamp.nanosec)
                             == (want.sec, want.nanosec) == tuple(self.coverage["stamp"].values()), 20)
        assert ok, "the dose map never reached the last cloud"
        return records(self.map), self.coverage

    def fresh_map(self, predicate, timeout=10):
        assert self.wait_until(lambda: self.map is not None and predicate(records(self.map)), timeout)
        return records(self.map)

    def diag(self, key):
        return self.diagnostics.diag(key)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dose")
    harness = RosHarness()
    log = tmp / "dose_mapper.log"
    proc = start_node("dose_mapper", "matseg_ros.ros.dose_mapper",
                      {"camera_frame": "cam", "publish_period_s": 0.1, "map_file": str(tmp / "map.npz")},
                      {"__node": "dm", "material_cloud": "/dm_cloud", "pose": "/dm_pose", "lamp_on": "/dm_lamp"},
                      log=log)
    try:
        c = Client(harness, "dm")
        assert c.wait_until(lambda: c.connected() or proc.poll() is not None, 60) and proc.poll() is None, \
            f"dose_mapper did not start:\n{log.read_text()}"
        c.proc, c.log, c.tmp = proc, log, tmp
        yield c
    finally:
        assert stop(proc) == 0, log.read_text()
        harness.close()


def wall(depth=1.0125, label=METAL):
    return camera_points(np.full((HEIGHT, WIDTH), depth)), np.full((HEIGHT, WIDTH), label)


def test_without_lamp_messages_surfaces_are_mapped_but_get_no_dose(client):
    points, labels = wall()
    client.view((0, 0, 0), points, labels)
    last = client.view((0.1, 0, 0), points, labels)
    r, cov = client.map_at(last)
    assert len(r) > 100 and (r["dose_mj_cm2"] == 0).all() and cov["lamp_on"] is None
    assert client.wait_until(lambda: client.diag("lamp_unknown") >= 2, 5)


def test_a_wall_swept_at_known_speed_gets_the_integral_of_the_lamp_model(client):
    """0.5 m/s past a wall 1.0125 m away, 10 clouds/s, lamp at the camera."""
    assert client.call("reset").success
    client.lamp(True)
    points, labels = wall()
    v, start = 0.5, -3.0
    stamps = [client.view((start + v * k * 0.1, 0, 0), points, labels) for k in range(121)]
    r, cov = client.map_at(stamps[-1])
    assert client.wait_until(lambda: client.diag("clouds_received") == client.sent, 5)  # none lost
    half_width = (WIDTH - 0.5 - CX) / FX * 1.0125
    checked = 0
    for i in np.flatnonzero((np.abs(r["y"]) < 0.05) & (np.abs(r["x"]) < 0.8)):
        x, y, z = (float(r[k][i]) for k in "xyz")
        t_at = lambda t: start + v * (t - stamps[0])  # camera x at stamp t
        e = lambda t: E1 * z / ((x - t_at(t)) ** 2 + y * y + z * z) ** 1.5
        enter, leave = stamps[0] + (x - half_width - start) / v, stamps[0] + (x + half_width - start) / v
        expected, _ = quad(e, enter, leave)
        assert r["dose_mj_cm2"][i] == pytest.approx(expected, rel=0.02)
        checked += 1
    assert checked >= 40
    (metal,) = cov["materials"]
    assert metal["material"] == "metal" and metal["required_mj_cm2"] == 32
    assert metal["area_seen_m2"] == pytest.approx(len(r) * 0.05 ** 2, rel=1e-3)


def test_a_surface_behind_another_gets_none(client):
    assert client.call("reset").success
    client.lamp(False)
    a, b = rays()
    board = (a > 0.3) & (a < 0.9) & (np.abs(b) < 0.2)
    depth = np.where(board, 1.0, 2.0)
    client.view((0, 0, -20), *wall())  # far away: takes the dose of the interval the lamp went off in
    client.view((0, 0, 0), *wall(2.0))  # the wall alone, lamp off: mapped, no dose
    with_board = camera_points(depth), np.where(board, WOOD, METAL)
    client.map_at(client.view((0, 0, 0), *with_board))  # mapped before the lamp goes on
    client.lamp(True)
    for _ in range(5):
        last = client.view((0, 0, 0), *with_board)
    r, _ = client.map_at(last)
    on_wall = np.abs(r["z"] - 2.0) < 0.05
    behind = on_wall & (np.abs(r["y"]) < 0.3) & (r["x"] > 0.75) & (r["x"] < 1.65)  # camera rays cross the board
    assert behind.sum() > 50 and (r["dose_mj_cm2"][behind] == 0).all()
    seen = on_wall & (r["x"] < 0.4)
    assert seen.sum() > 50 and (r["dose_mj_cm2"][seen] > 0).all()
    assert (r["dose_mj_cm2"][r["label"] == WOOD] > 0).all()


def test_labels_fused_from_noisy_views_take_the_majority(client, rng):
    assert client.call("reset").success
    points, labels = wall()
    for _ in range(8):  # 60 % metal, 40 % spread over all nine classes
        noisy = np.where(rng.random(labels.shape) < 0.6, METAL, rng.integers(0, 9, labels.shape))
        client.view((0, 0, 0), points, noisy)
    last = client.view((0, 0, 0), points, np.full_like(labels, WOOD))  # one view all wrong
    r, _ = client.map_at(last)
    assert len(r) > 100 and (r["label"] == METAL).all()


def test_lamp_off_adds_nothing(client):
    assert client.call("reset").success
    client.lamp(True)
    points, labels = wall()
    for k in range(5):
        client.view((0.1 * k, 0, 0), points, labels)
    client.lamp(False)
    before, _ = client.map_at(client.view((0.5, 0, 0), points, labels))  # ends the interval the lamp went off in
    assert before["dose_mj_cm2"].max() > 0
    for k in range(10):
        last = client.view((0.6 + 0.1 * k, 0, 0), points, labels)
    after, _ = client.map_at(last)
    assert len(after) > len(before)  # the drive went on mapping
    np.testing.assert_array_equal(after["dose_mj_cm2"][:len(before)], before["dose_mj_cm2"])
    assert (after["dose_mj_cm2"][len(before):] == 0).all()


def test_reset_save_and_load_round_trip_and_a_bad_file_is_refused(client):
    assert client.call("reset").success
    client.lamp(True)
    points, labels = wall()
    for k in range(4):
        last = client.view((0.1 * k, 0, 0), points, labels)
    saved, _ = client.map_at(last)
    answer = client.call("save")
    assert answer.success and str(client.tmp / "map.npz") in answer.message
    assert client.call("reset").success
    assert len(client.fresh_map(lambda r: len(r) == 0)) == 0
    assert client.call("load").success
    loaded = client.fresh_map(lambda r: len(r) == len(saved))
    assert loaded.tobytes() == saved.tobytes()
    (client.tmp / "map.npz").write_bytes(b"not a map")
    answer = client.call("load")
    assert not answer.success and "cannot read a dose map" in answer.message
    assert client.fresh_map(lambda r: len(r) == len(saved)).tobytes() == saved.tobytes()


def test_each_bad_input_is_refused_counted_and_the_node_keeps_running(client):
    points, labels = wall()
    client.lamp(True)
    counts = {k: client.diag(k) for k in ("pose_bad", "pose_wrong_frame", "pose_stale", "cloud_unknown_frame",
                                          "cloud_bad", "cloud_out_of_order", "clouds_mapped")}
    client.t += 1.0
    client.pose(client.t, (0, 0, 0), (0, 0, 0, float("nan")))  # NaN quaternion
    client.pose(client.t + 0.01, (0, 0, 0), (0, 0, 0.5, 0.5))  # norm 0.71
    client.pose(client.t + 0.02, (0, 0, 0), frame="odom")
    client.cloud(client.t, points, labels)  # none of those poses counts: no pose near it
    client.t += 0.5
    client.pose(client.t, (0, 0, 0))
    client.cloud(client.t, points, labels, frame="elsewhere")
    client.cloud(client.t, points, labels, drop_label=True)
    client.cloud(client.t + 1.0, points, labels)  # the newest pose is 1 s older than the cloud
    good = client.view((0, 0, 0), points, labels, dt=2.0)
    client.cloud(good - 0.05, points, labels)  # older than the last mapped cloud
    assert client.wait_until(lambda: client.diagnostics.diagnostics_level == 1, 5)  # WARN, with the counts
    expected = {"pose_bad": 2, "pose_wrong_frame": 1, "pose_stale": 2, "cloud_unknown_frame": 1, "cloud_bad": 1,
                "cloud_out_of_order": 1, "clouds_mapped": 1}
    assert client.wait_until(lambda: all(client.diag(k) - counts[k] >= n for k, n in expected.items()), 10), \
        {k: client.diag(k) - counts[k] for k in expected}
    client.map_at(good)
    assert client.proc.poll() is None
    log = client.log.read_text()
    for words in ("norm 0.7071", "expected fixed_frame 'map'", "expected camera_frame 'cam'", "missing field(s) ['label']",
                  "no pose within pose_tolerance_s"):
        assert words in log, words
