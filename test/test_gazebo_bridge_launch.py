"""Bridge YAML, sim.launch.py and rviz config agree with the SDF sensors and the nodes.

ros_gz_bridge, launch_ros and rviz2 are not installable here, so the launch file is
checked statically (parsed with `ast`): every topic it wires must be one the bridge
provides from a sensor the SDF declares, or one a node of this package publishes.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from matseg_ros.sim.sdf_world import load_world

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = ROOT / "config" / "bridge" / "hri_lab.yaml"
LAUNCH = ROOT / "launch" / "sim.launch.py"
HRI_LAB = ROOT / "gazebo_worlds" / "hri_lab.sdf"
MODELS_DIR = ROOT / "gazebo_worlds" / "models"

# ROS <-> Gazebo message pairs ros_gz_bridge converts (the ones this package needs)
BRIDGE_TYPES = {
    "rosgraph_msgs/msg/Clock": "gz.msgs.Clock",
    "sensor_msgs/msg/Image": "gz.msgs.Image",
    "sensor_msgs/msg/CameraInfo": "gz.msgs.CameraInfo",
    "geometry_msgs/msg/Twist": "gz.msgs.Twist",
    "nav_msgs/msg/Odometry": "gz.msgs.Odometry",
    "tf2_msgs/msg/TFMessage": "gz.msgs.Pose_V",
    "sensor_msgs/msg/JointState": "gz.msgs.Model",
}


@pytest.fixture(scope="module")
def bridge() -> dict[str, dict]:
    entries = yaml.safe_load(BRIDGE.read_text())
    assert isinstance(entries, list) and entries
    by_ros = {}
    for entry in entries:
        assert {"ros_topic_name", "gz_topic_name", "ros_type_name", "gz_type_name", "direction"} <= set(entry)
        assert BRIDGE_TYPES[entry["ros_type_name"]] == entry["gz_type_name"], entry
        assert entry["direction"] in ("GZ_TO_ROS", "ROS_TO_GZ", "BIDIRECTIONAL")
        assert entry["ros_topic_name"] not in by_ros, f"duplicate {entry['ros_topic_name']}"
        by_ros[entry["ros_topic_name"]] = entry
    return by_ros


@pytest.fixture(scope="module")
def world():
    return load_world(HRI_LAB, [MODELS_DIR])


def _gz_camera_topics(sensor) -> dict[str, str]:
    """Topics gz-sensors publishes for a camera / segmentation camera (SDF 1.9 rules)."""
    topic = sensor.topic if sensor.topic.startswith("/") else "/" + sensor.topic
    if sensor.type == "segmentation":
        return {"labels": topic + "/labels_map", "colored": topic + "/colored_map", "info": topic + "/camera_info"}
    return {"image": topic, "info": topic.rsplit("/", 1)[0] + "/camera_info"}


def test_bridge_carries_the_sdf_sensor_topics(bridge, world):
    by_type = {s.type: s for s in world.sensors}
    rgb, seg = _gz_camera_topics(by_type["camera"]), _gz_camera_topics(by_type["segmentation"])
    depth = _gz_camera_topics(by_type["depth_camera"])
    by_gz = {e["gz_topic_name"]: e for e in bridge.values()}
    for gz_topic, ros_type in ((rgb["image"], "sensor_msgs/msg/Image"), (rgb["info"], "sensor_msgs/msg/CameraInfo"),
                               (seg["labels"], "sensor_msgs/msg/Image"), (depth["image"], "sensor_msgs/msg/Image"),
                               ("/clock", "rosgraph_msgs/msg/Clock")):
        assert gz_topic in by_gz, f"bridge lacks {gz_topic}"
        assert by_gz[gz_topic]["ros_type_name"] == ros_type and by_gz[gz_topic]["direction"] == "GZ_TO_ROS"
    gz_topics = set(rgb.values()) | set(seg.values()) | set(depth.values()) | {"/clock", "/cmd_vel", "/odom", "/tf", "/joint_states"}
    assert set(by_gz) <= gz_topics, f"bridged topics nothing publishes: {set(by_gz) - gz_topics}"


def test_depth_camera_is_registered_to_the_rgb_camera_and_feeds_segment_node(bridge, world, launch_tree):
    """segment_node's use_depth needs depth of the colour image's size and view: the depth
    camera shares the RGB camera's pose, field of view, size and rate, so the RGB
    camera_info is its calibration too; sim.launch.py hands both bridged topics over."""
    by_type = {s.type: s for s in world.sensors}
    rgb, depth = by_type["camera"], by_type["depth_camera"]
    np.testing.assert_allclose(depth.pose, rgb.pose)
    assert depth.update_rate == rgb.update_rate
    for key in ("horizontal_fov", "width", "height"):
        assert depth.camera[key] == rgb.camera[key], key
    constants = _constants(launch_tree)
    assert bridge[constants["DEPTH_TOPIC"]]["gz_topic_name"] == _gz_camera_topics(depth)["image"]
    assert bridge[constants["INFO_TOPIC"]]["gz_topic_name"] == _gz_camera_topics(rgb)["info"]
    launch_text = ast.dump(launch_tree)
    for argument in ("'use_depth'", "'depth_topic'", "'camera_info_topic'"):
        assert launch_text.count(argument) >= 1, argument


def test_bridge_drives_the_diff_drive_topic(bridge, world):
    plugins = world.model_plugins["matseg_bot"]
    drive = [p for p in plugins if p.get("filename") == "gz-sim-diff-drive-system"][0]
    cmd = [e for e in bridge.values() if e["gz_topic_name"] == drive.findtext("topic")]
    assert cmd and cmd[0]["direction"] == "ROS_TO_GZ" and cmd[0]["ros_type_name"] == "geometry_msgs/msg/Twist"
    odom = [e for e in bridge.values() if e["gz_topic_name"] == drive.findtext("odom_topic")]
    assert odom and odom[0]["ros_type_name"] == "nav_msgs/msg/Odometry"
    joints = [p for p in plugins if p.get("filename") == "gz-sim-joint-state-publisher-system"][0]
    assert joints.findtext("topic") in {e["gz_topic_name"] for e in bridge.values()}


# --- sim.launch.py, statically ---------------------------------------------------
@pytest.fixture(scope="module")
def launch_tree() -> ast.Module:
    source = LAUNCH.read_text()
    compile(source, str(LAUNCH), "exec")
    return ast.parse(source)


def _constants(tree: ast.Module) -> dict[str, object]:
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def _value(node: ast.AST, constants: dict) -> object:
    """A literal, a module constant, or a (str, ...) tuple/list of those; else the AST dump."""
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [_value(e, constants) for e in node.elts]
    try:
        return ast.literal_eval(node)
    except ValueError:
        return ast.dump(node)


def _calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and (getattr(n.func, "id", None) == name or getattr(n.func, "attr", None) == name)]


def _kwargs(call: ast.Call, constants: dict) -> dict[str, object]:
    return {k.arg: _value(k.value, constants) for k in call.keywords if k.arg}


def _nodes(tree) -> dict[str, dict]:
    constants = _constants(tree)
    nodes = {}
    for call in _calls(tree, "Node"):
        kwargs = _kwargs(call, constants)
        nodes[kwargs["executable"]] = kwargs | {"_call": call}
    return nodes


def _console_scripts() -> set[str]:
    text = (ROOT / "setup.py").read_text()
    return set(re.findall(r'"([a-z_]+) = matseg_ros\.', text))


def test_launch_nodes_exist_and_use_sim_time(launch_tree):
    nodes = _nodes(launch_tree)
    assert {"parameter_bridge", "sim_evaluator", "dataset_recorder", "rviz2"} <= set(nodes)
    scripts = _console_scripts()
    for executable, kwargs in nodes.items():
        if kwargs["package"] == "matseg_ros":
            assert executable in scripts, executable
        # every node runs on the simulation clock
        params = ast.dump(kwargs["_call"])
        assert "sim_time" in params or "use_sim_time" in params, executable
    assert "condition" in nodes["dataset_recorder"] and "condition" in nodes["rviz2"]


def test_launch_remappings_match_bridge_and_node_topics(launch_tree, bridge):
    from matseg_ros.ros import dataset_recorder, sim_evaluator
    from matseg_ros.ros.segment_node import NODE_NAME, TOPICS
    from matseg_ros.runtime.pipeline import RAW

    constants = _constants(launch_tree)
    nodes = _nodes(launch_tree)
    prediction = f"/{NODE_NAME}/{TOPICS[RAW].removeprefix('~/')}"
    assert constants["PREDICTION_TOPIC"] == prediction
    for executable, sides in (("sim_evaluator", sim_evaluator.SIDES), ("dataset_recorder", dataset_recorder.SIDES)):
        remaps = dict(nodes[executable]["remappings"])
        assert set(remaps) == set(sides), (executable, remaps)
        for side, topic in remaps.items():
            if topic == prediction:
                continue
            assert topic in bridge and bridge[topic]["direction"] == "GZ_TO_ROS", (executable, side, topic)
            assert bridge[topic]["ros_type_name"] == "sensor_msgs/msg/Image"
    evaluator = dict(nodes["sim_evaluator"]["remappings"])
    assert evaluator["prediction"] == prediction
    assert evaluator["ground_truth"] == bridge[evaluator["ground_truth"]]["ros_topic_name"]
    assert evaluator["ground_truth"].endswith("/labels_map")
    assert dict(nodes["dataset_recorder"]["remappings"])["image"] == constants["IMAGE_TOPIC"]


def test_launch_includes_gazebo_and_segment_node_on_the_bridged_camera(launch_tree, bridge):
    constants = _constants(launch_tree)
    includes = _calls(launch_tree, "IncludeLaunchDescription")
    assert len(includes) == 2
    sources = ast.dump(launch_tree)
    assert "'gz_sim.launch.py'" in sources and "'segment.launch.py'" in sources
    segment_args = None
    for call in includes:
        for kw in call.keywords:
            if kw.arg == "launch_arguments":
                mapping = kw.value.func.value        # {...}.items()
                keys = [_value(k, constants) for k in mapping.keys]
                values = [_value(v, constants) for v in mapping.values]
                if "image_topic" in keys:
                    segment_args = dict(zip(keys, values))
    assert segment_args is not None
    assert segment_args["image_topic"] == constants["IMAGE_TOPIC"]
    assert bridge[constants["IMAGE_TOPIC"]]["ros_type_name"] == "sensor_msgs/msg/Image"
    assert segment_args["use_sim_time"] == "true"
    declared = {_value(c.args[0], {}) for c in _calls(ast.parse((ROOT / "launch" / "segment.launch.py").read_text()),
                                                      "DeclareLaunchArgument")}
    assert set(segment_args) <= declared, set(segment_args) - declared


def test_launch_sets_resource_path_and_dds_profile(launch_tree):
    constants = _constants(launch_tree)
    assert constants["RESOURCE_VARIABLE"] == "GZ_SIM_RESOURCE_PATH"
    appends = _calls(launch_tree, "AppendEnvironmentVariable")
    assert len(appends) == 1 and ast.dump(appends[0]).count("'gazebo_worlds'") == 1
    assert "'models'" in ast.dump(appends[0])
    assert constants["PROFILE_VARIABLE"] == "FASTDDS_DEFAULT_PROFILES_FILE"
    # every share file the launch file names exists in the package tree
    for call in _calls(launch_tree, "join"):
        if call.args and getattr(call.args[0], "id", None) == "share":
            parts = [_value(a, {}) for a in call.args[1:]]
            assert all(isinstance(p, str) for p in parts), parts
            assert (ROOT.joinpath(*parts)).exists(), parts
    declared = {_value(c.args[0], {}) for c in _calls(launch_tree, "DeclareLaunchArgument")}
    used = {_value(c.args[0], {}) for c in _calls(launch_tree, "LaunchConfiguration")}
    used |= {_value(c.args[0], {}) for c in _calls(launch_tree, "config")}
    assert used <= declared, used - declared


def test_rviz_config_shows_topics_that_exist(bridge):
    from matseg_ros.ros.segment_node import NODE_NAME, TOPICS

    rviz = yaml.safe_load((ROOT / "config" / "rviz" / "sim.rviz").read_text())
    node_topics = {f"/{NODE_NAME}/{t.removeprefix('~/')}" for t in TOPICS.values()}
    shown = [d["Topic"]["Value"] for d in rviz["Visualization Manager"]["Displays"] if "Topic" in d]
    assert len(shown) >= 4
    for topic in shown:
        assert topic in bridge or topic in node_topics, topic
    assert rviz["Visualization Manager"]["Global Options"]["Fixed Frame"] == "odom"
