"""What segment_node advertises in each mode, read from the ROS graph over DDS, against the
topic table of docs/ros.md; and several cameras mapped to a driver's own topic names the way
segment.launch.py passes them."""
from __future__ import annotations

import pytest

from ros_harness import RosHarness, image_msg, scene

pytestmark = pytest.mark.ros

STANDARD = {"/rosout", "/parameter_events", "/diagnostics"}  # every node, and our /diagnostics
OUTPUTS = {"raw_segmentation_mask", "colored_segmentation_mask", "overlay", "materials", "confidence", "classes"}
LIFECYCLE_SERVICES = {"change_state", "get_state", "get_available_states", "get_available_transitions"}


@pytest.fixture(scope="module")
def harness():
    h = RosHarness()
    yield h
    h.close()


@pytest.fixture(scope="module")
def engine(tiny_onnx_model):
    from matseg_ros.runtime.engine import load_engine
    return load_engine(tiny_onnx_model, device="cpu")


@pytest.fixture(scope="module")
def observer(harness):
    from rclpy.node import Node
    return harness.add(Node("interface_observer", context=harness.context))


def _node(harness, engine, name, **params):
    from matseg_ros.ros.segment_node import SegmentNode
    args = ["--ros-args"] + [a for k, v in params.items() for a in ("-p", f"{k}:={str(v).lower()}")]
    return harness.add(SegmentNode(engine=engine, node_name=name, context=harness.context, cli_args=args))


def _label_info() -> set[str]:
    """~/label_info is published where vision_msgs is installed (docs/ros.md)."""
    from importlib.util import find_spec
    return {"label_info"} if find_spec("vision_msgs") is not None else set()


def _graph(observer, name):
    """(topics it publishes, services it offers), own names relative to the node."""
    def mine(names):
        return {n.removeprefix(f"/{name}/") if n.startswith(f"/{name}/") else n for n, _ in names}
    return (mine(observer.get_publisher_names_and_types_by_node(name, "/")),
            mine(observer.get_service_names_and_types_by_node(name, "/")))


def _advertises(observer, name, publishers, services_present, services_absent):
    from matseg_ros.ros.output_collector import wait_until
    ok = wait_until(lambda: _graph(observer, name)[0] == publishers
                    and services_present <= _graph(observer, name)[1]
                    and not services_absent & _graph(observer, name)[1], 10)
    topics, services = _graph(observer, name)
    assert ok, (sorted(topics ^ publishers), sorted(services))


@pytest.mark.parametrize("use_depth", [False, True])
def test_a_plain_node_advertises_its_outputs_the_cloud_only_with_depth_and_no_lifecycle(
        harness, engine, observer, use_depth):
    name = f"iface_depth_{str(use_depth).lower()}"
    node = _node(harness, engine, name, use_depth=use_depth)
    expected = STANDARD | OUTPUTS | _label_info() | ({"material_cloud"} if use_depth else set())
    _advertises(observer, name, expected, set(), LIFECYCLE_SERVICES)
    harness.remove(node)


def test_a_managed_node_advertises_transition_event_and_its_outputs_from_configure(harness, engine, observer):
    name = "iface_managed"
    node = _node(harness, engine, name, lifecycle=True)
    _advertises(observer, name, STANDARD | {"transition_event"}, LIFECYCLE_SERVICES, set())
    node.trigger_configure()
    _advertises(observer, name, STANDARD | {"transition_event"} | OUTPUTS | _label_info(), LIFECYCLE_SERVICES, set())
    harness.remove(node)


def test_cameras_served_on_a_drivers_topics_mapped_with_the_launch_pattern(harness, engine, rng):
    """cameras:="[front, rear]" image_topic:=/{camera}/camera/image_raw, as segment.launch.py
    turns it into remappings: a driver on /front/camera/image_raw gets /front/<node>/ outputs."""
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from matseg_ros.ros.launch_checks import TOPIC_DEFAULTS, camera_remappings
    from matseg_ros.ros.output_collector import OutputCollector, stamp_key, wait_until
    from matseg_ros.ros.segment_node import SegmentNode
    remaps, ignored = camera_remappings(["front", "rear"], {**TOPIC_DEFAULTS, "image_topic": "/{camera}/camera/image_raw"})
    assert ignored == []
    args = ["--ros-args", "-p", "cameras:=[front, rear]", "-p", "qos_reliability:=reliable"]
    args += [a for old, new in remaps for a in ("-r", f"{old}:={new}")]
    node = harness.add(SegmentNode(engine=engine, node_name="iface_cams", context=harness.context, cli_args=args))
    assert {c.image_topic for c in node.channels.values()} == {"/front/camera/image_raw", "/rear/camera/image_raw"}
    driver = harness.add(Node("front_driver", context=harness.context))
    camera = driver.create_publisher(Image, "/front/camera/image_raw",
                                     QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
    collector = harness.add(OutputCollector("/front/iface_cams", outputs=("raw",), name="iface_cams_collector",
                                            context=harness.context))
    assert wait_until(lambda: camera.get_subscription_count() > 0 and collector.connected(), 20)
    key = None
    for sec in range(10):  # a frame sent just as the last endpoint matched may be lost: resend
        msg = image_msg(scene(rng), "rgb8", sec)
        camera.publish(msg)
        if wait_until(lambda: collector.get("raw", stamp_key(msg.header)) is not None, 2):
            key = stamp_key(msg.header)
            break
    assert key is not None, node.stats()
    assert node.stats()["front.frames_served"] >= 1 and node.stats()["rear.frames_served"] == 0
    for n in (collector, driver, node):
        harness.remove(n)
