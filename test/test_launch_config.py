"""The launch file, params file, rviz config and Fast DDS profile, checked statically
(launch, launch_ros and rviz2 are not installable here) against the node's real interface."""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "launch" / "segment.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _kw(call: ast.Call, key: str):
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value
    return None


def _console_scripts() -> set[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for call in _calls(tree, "setup"):
        entry = ast.literal_eval(_kw(call, "entry_points"))
        return {line.split("=")[0].strip() for line in entry["console_scripts"]}
    raise AssertionError("setup() not found in setup.py")


def _declared(path: Path) -> dict:
    """Launch argument -> default (its value where it is a literal or a TOPIC_DEFAULTS entry)."""
    from matseg_ros.ros.launch_checks import TOPIC_DEFAULTS
    args = {}
    for call in _calls(ast.parse(path.read_text()), "DeclareLaunchArgument"):
        name = ast.literal_eval(call.args[0])
        default = _kw(call, "default_value")
        if isinstance(default, ast.Constant):
            default = default.value
        elif isinstance(default, ast.Subscript) and ast.unparse(default.value) == "TOPIC_DEFAULTS":
            default = TOPIC_DEFAULTS[ast.literal_eval(default.slice)]
        args[name] = default
        assert _kw(call, "description") is not None, f"argument {name} has no description"
    return args


def test_launch_arguments_and_defaults():
    args = _declared(LAUNCH)
    assert set(args) == {"image_topic", "params_file", "model_path", "backend", "device", "namespace",
                         "use_sim_time", "rviz", "use_depth", "depth_topic", "camera_info_topic",
                         "cameras", "lifecycle", "compressed", "dose_map", "lamp_topic", "pose_topic"}
    assert args["image_topic"] == "/camera/image_raw" and args["depth_topic"] == "/camera/depth/image_raw"
    assert args["camera_info_topic"] == "/camera/camera_info"
    assert args["compressed"] == ""  # empty: params_file's value
    assert args["rviz"] == "false" and args["use_sim_time"] == "false"
    params_default = ast.unparse(args["params_file"])  # os.path.join(share, "config", "segment.yaml")
    assert "'config'" in params_default and "'segment.yaml'" in params_default
    assert args["lifecycle"] == "false" and args["use_depth"] == "false" and args["cameras"] == "[]"
    for name in args:  # every argument is used
        assert LAUNCH.read_text().count(f'"{name}"') >= 2, f"launch argument {name} is never used"


def test_rviz_is_checked_before_anything_starts_and_other_packages_resolve_at_launch_time():
    """A missing rviz2 stops the launch before segment_node starts (no orphan); sim.launch.py
    finds ros_gz_sim with a substitution, so --show-args works where it is not installed."""
    from types import SimpleNamespace

    from matseg_ros.ros.launch_checks import LaunchArgumentError, missing_rviz, require_rviz
    for path in (LAUNCH, ROOT / "launch" / "sim.launch.py"):
        source = path.read_text()
        tree = ast.parse(source)
        functions = [ast.unparse(_kw(c, "function")) for c in _calls(tree, "OpaqueFunction")]
        assert functions[0] == "require_rviz", (path.name, functions)
        first_check = source.index("OpaqueFunction(function=require_rviz)")
        starts = [source.index(m) for m in ("OpaqueFunction(function=_segment_node)", "IncludeLaunchDescription(")
                  if m in source[source.index("actions += ["):]]
        assert all(first_check < s for s in starts), path.name
        shares = [ast.unparse(c.args[0]) for c in _calls(tree, "get_package_share_directory")]
        assert shares == ["PACKAGE"], (path.name, shares)  # only our own package at description time
    assert "FindPackageShare('ros_gz_sim')" in ast.unparse(ast.parse((ROOT / "launch" / "sim.launch.py").read_text()))
    assert missing_rviz("false", which=lambda name: None) is None
    assert missing_rviz("true", which=lambda name: "/opt/ros/bin/rviz2") is None
    message = missing_rviz("True", which=lambda name: None)
    assert "rviz2 is not installed" in message and "nothing was started" in message and "\n" not in message
    # the launch action itself, on a LaunchContext's launch_configurations
    assert require_rviz(SimpleNamespace(launch_configurations={"rviz": "false"})) == []
    if missing_rviz("true") is not None:  # this machine has no rviz2 (CI): the launch stops
        with pytest.raises(LaunchArgumentError, match="rviz2 is not installed"):
            require_rviz(SimpleNamespace(launch_configurations={"rviz": "true"}))


def test_lifecycle_several_cameras_and_compressed_reach_the_node():
    source = LAUNCH.read_text()
    tree = ast.parse(source)
    assert "node_type = LifecycleNode if overrides['lifecycle'] else Node" in ast.unparse(tree)
    for key in ("lifecycle", "use_depth", "cameras", "compressed"):
        assert f'overrides["{key}"]' in source
    assert "if value('compressed'):" in ast.unparse(tree)  # unset: params_file's value stands
    from matseg_ros.ros import node_params
    assert {"lifecycle", "use_depth", "cameras", "compressed"} <= set(node_params.PARAMETERS)
    # with cameras: remappings from the topic arguments, a warning for each one ignored
    unparsed = ast.unparse(tree)
    assert "remappings, ignored = camera_remappings(cameras, {a: value(a) for a in TOPIC_ARGUMENTS})" in unparsed
    assert "get_logger('segment.launch.py').warning(warning)" in unparsed


def test_camera_remappings_put_each_namespace_in_and_name_the_ignored_arguments():
    from matseg_ros.ros.launch_checks import TOPIC_DEFAULTS, camera_remappings
    topics = {**TOPIC_DEFAULTS, "image_topic": "/{camera}/camera/image_raw",
              "depth_topic": "/{camera}/depth/image_rect_raw"}
    remaps, ignored = camera_remappings(["front", "/robot/rear"], topics)
    assert remaps == [("front/image", "/front/camera/image_raw"),
                      ("front/image/compressed", "/front/camera/image_raw/compressed"),
                      ("/robot/rear/image", "/robot/rear/camera/image_raw"),
                      ("/robot/rear/image/compressed", "/robot/rear/camera/image_raw/compressed"),
                      ("front/depth", "/front/depth/image_rect_raw"),
                      ("/robot/rear/depth", "/robot/rear/depth/image_rect_raw")]
    assert ignored == []  # camera_info_topic left at its default: nothing to say
    remaps, ignored = camera_remappings(["front"], {**TOPIC_DEFAULTS, "image_topic": "/usb_cam/image_raw",
                                                    "camera_info_topic": "/usb_cam/camera_info"})
    assert remaps == [] and len(ignored) == 2
    assert ignored[0].startswith("image_topic:=/usb_cam/image_raw is ignored with cameras")
    assert "image_topic:=/{camera}/image_raw" in ignored[0]
    assert ignored[1].startswith("camera_info_topic:=/usb_cam/camera_info is ignored with cameras")


LAUNCH_LINE = re.compile(r"ros2 launch matseg_ros (\S+\.launch\.py)((?:[ \t]+[^\s`#]+)*)")
ARGUMENT = re.compile(r"^(\w+):=")


def _documented_launch_arguments() -> dict[tuple[str, str], str]:
    """(launch file, argument) -> where a doc shows `name:=value` on a `ros2 launch` line
    (shell continuation lines joined)."""
    found = {}
    for doc in sorted(ROOT.glob("*.md")) + sorted((ROOT / "docs").rglob("*.md")):
        text = re.sub(r"\\\n\s*", " ", doc.read_text())
        for match in LAUNCH_LINE.finditer(text):
            for token in re.findall(r'\S+="[^"]*"|\S+', match.group(2)):
                arg = ARGUMENT.match(token)
                if arg:
                    found.setdefault((match.group(1), arg.group(1)), f"{doc.relative_to(ROOT)}: {match.group(0)}")
    return found


def test_every_launch_argument_in_the_docs_is_declared():
    """ros2 launch accepts an undeclared name:=value without a word, so a documented argument
    the launch file does not declare would be silently ignored."""
    documented = _documented_launch_arguments()
    assert ("segment.launch.py", "compressed") in documented and ("sim.launch.py", "record") in documented
    for (launch_file, name), where in documented.items():
        assert name in _declared(ROOT / "launch" / launch_file), f"{name} is not declared in {launch_file}: {where}"


def test_launch_nodes_exist_and_remap_the_image_topic():
    tree = ast.parse(LAUNCH.read_text())
    nodes = {ast.literal_eval(_kw(c, "executable")): c for c in _calls(tree, "Node") + _calls(tree, "node_type")}
    assert set(nodes) == {"segment_node", "rviz2", "dose_mapper"}
    seg = nodes["segment_node"]
    assert ast.unparse(_kw(seg, "package")) == "PACKAGE" and 'PACKAGE = "matseg_ros"' in LAUNCH.read_text()
    assert ast.literal_eval(_kw(seg, "name")) == "matseg"
    assert "segment_node" in _console_scripts()
    remaps = ast.unparse(next(n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                              and ast.unparse(n.targets[0]) == "remappings" and isinstance(n.value, ast.List)
                              and n.value.elts))
    assert "('image', image_topic)" in remaps and "('image/compressed'" in remaps
    assert "('depth', value('depth_topic'))" in remaps and "('camera_info', value('camera_info_topic'))" in remaps
    rviz = nodes["rviz2"]
    assert "IfCondition(LaunchConfiguration('rviz'))" == ast.unparse(_kw(rviz, "condition"))
    assert "'rviz', 'matseg.rviz'" in ast.unparse(_kw(rviz, "arguments"))
    env = _calls(tree, "SetEnvironmentVariable")
    assert len(env) == 1 and ast.unparse(env[0].args[0]) == "PROFILE_VARIABLE"
    assert 'PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"' in LAUNCH.read_text()
    assert "'fastdds_shm.xml'" in ast.unparse(env[0].args[1])
    assert "if PROFILE_VARIABLE not in os.environ" in LAUNCH.read_text()
    for path in ("config/segment.yaml", "config/rviz/matseg.rviz", "config/fastdds_shm.xml"):
        assert (ROOT / path).is_file()
    compile(LAUNCH.read_text(), str(LAUNCH), "exec")


def test_dose_map_starts_dose_mapper_beside_segment_node_on_its_cloud():
    from matseg_ros.ros.dose_mapper import NODE_NAME
    from matseg_ros.ros.segment_node import NODE_NAME as SEGMENT, TOPICS
    tree = ast.parse(LAUNCH.read_text())
    args = {ast.literal_eval(c.args[0]): _kw(c, "default_value") for c in _calls(tree, "DeclareLaunchArgument")}
    assert ast.literal_eval(args["dose_map"]) == "false"
    (node,) = [c for c in _calls(tree, "Node") if ast.literal_eval(_kw(c, "executable")) == "dose_mapper"]
    assert ast.literal_eval(_kw(node, "name")) == NODE_NAME and "dose_mapper" in _console_scripts()
    assert ast.unparse(_kw(node, "condition")) == "IfCondition(LaunchConfiguration('dose_map'))"
    assert ast.unparse(_kw(node, "namespace")) == "LaunchConfiguration('namespace')"  # beside segment_node
    remaps = dict((ast.literal_eval(e.elts[0]), ast.unparse(e.elts[1])) for e in _kw(node, "remappings").elts)
    cloud = f"{SEGMENT}/" + TOPICS["cloud"].removeprefix("~/")  # relative: segment_node's ~/material_cloud
    assert remaps == {"material_cloud": repr(cloud), "lamp_on": "LaunchConfiguration('lamp_topic')",
                      "pose": "LaunchConfiguration('pose_topic')"}
    assert "'config', 'dose_mapper.yaml'" in ast.unparse(_kw(node, "parameters"))


def test_dose_mapper_params_file_documents_every_parameter_with_valid_values():
    from matseg_ros.ros.dose_mapper_params import PARAMETERS, check
    text = (ROOT / "config" / "dose_mapper.yaml").read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert set(params) == set(PARAMETERS)
    for name, value in params.items():
        assert value == PARAMETERS[name][0] and type(value) is type(PARAMETERS[name][0]), name
        assert check(name, value) is None
        assert "#" in next(line for line in text.splitlines() if line.strip().startswith(f"{name}:")), name
    assert check("pose_source", "gps") == "pose_source must be one of topic, tf, got 'gps'"
    assert check("voxel_size", 0.0) == "voxel_size must be a number in 0.005..1, got 0.0"


def test_dose_map_rviz_colours_the_map_by_fraction():
    from matseg_ros.ros.dose_mapper import NODE_NAME
    config = yaml.safe_load((ROOT / "config" / "rviz" / "dose_map.rviz").read_text())
    manager = config["Visualization Manager"]
    (cloud,) = [d for d in manager["Displays"] if d["Class"] == "rviz_default_plugins/PointCloud2"]
    assert cloud["Topic"]["Value"] == f"/{NODE_NAME}/dose_map" and cloud["Topic"]["Reliability Policy"] == "Reliable"
    assert cloud["Color Transformer"] == "Intensity" and cloud["Channel Name"] == "fraction"
    assert cloud["Autocompute Intensity Bounds"] is False and (cloud["Min Intensity"], cloud["Max Intensity"]) == (0, 1)
    assert manager["Global Options"]["Fixed Frame"] == "map"


def test_rviz_shows_camera_and_the_node_outputs_with_matching_qos():
    from matseg_ros.ros.segment_node import NODE_NAME, TOPICS
    config = yaml.safe_load((ROOT / "config" / "rviz" / "matseg.rviz").read_text())
    displays = {d["Topic"]["Value"]: d for d in config["Visualization Manager"]["Displays"]}
    assert all(d["Class"] == "rviz_default_plugins/Image" for d in displays.values())
    published = {TOPICS[k].replace("~", f"/{NODE_NAME}") for k in ("colored", "overlay")}
    assert set(displays) == {"/camera/image_raw"} | published
    assert displays["/camera/image_raw"]["Topic"]["Reliability Policy"] == "Best Effort"
    for topic in published:  # the node publishes reliable; rviz may ask for either
        assert displays[topic]["Topic"]["Reliability Policy"] in ("Reliable", "Best Effort")
        assert displays[topic]["Topic"]["Durability Policy"] == "Volatile"


def test_params_file_documents_every_parameter_with_valid_values():
    from matseg_ros.ros import node_params
    text = (ROOT / "config" / "segment.yaml").read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    assert set(params) == set(node_params.PARAMETERS)
    for name, value in params.items():
        default = node_params.PARAMETERS[name][0]
        assert type(value) is type(default), f"{name}: {value!r} is not a {type(default).__name__}"
        assert node_params.validate(name, value) is None
        line = next(line for line in text.splitlines() if line.strip().startswith(f"{name}:"))
        assert "#" in line, f"{name} is not documented"


def test_fastdds_profile_has_a_16mb_shm_segment_and_udp():
    ns = {"f": "http://www.eprosima.com"}
    root = ET.parse(ROOT / "config" / "fastdds_shm.xml").getroot()
    transports = {t.find("f:transport_id", ns).text: t for t in root.iterfind(".//f:transport_descriptor", ns)}
    kinds = {t.find("f:type", ns).text: t for t in transports.values()}
    assert set(kinds) == {"SHM", "UDPv4"}
    assert kinds["SHM"].find("f:segment_size", ns).text == "16777216"
    participant = root.find("f:participant", ns)
    assert participant.get("is_default_profile") == "true"
    used = {t.text for t in participant.iterfind(".//f:userTransports/f:transport_id", ns)}
    assert used == set(transports)
    assert participant.find(".//f:useBuiltinTransports", ns).text == "false"


# The parameters semantic_segmentation_layer declares (its onInitialize, 2026 sources).
NAV2_SOURCE_KEYS = {"segmentation_topic", "confidence_topic", "labels_topic", "pointcloud_topic",
                    "observation_persistence", "expected_update_rate", "class_types", "max_obstacle_distance",
                    "min_obstacle_distance", "tile_map_decay_time", "visualize_tile_map", "use_cost_selection"}
NAV2_CLASS_KEYS = {"classes", "base_cost", "max_cost", "mark_confidence", "samples_to_max_cost",
                   "dominant_priority"}


def test_nav2_semantic_layer_example_matches_the_layer_and_the_node():
    from matseg_ros.materials import load_materials
    from matseg_ros.ros.segment_node import NODE_NAME, TOPICS
    doc = yaml.safe_load((ROOT / "config" / "nav2_semantic_layer.yaml").read_text())
    layer = doc["local_costmap"]["local_costmap"]["ros__parameters"]["semantic_segmentation_layer"]
    assert layer["plugin"] == "semantic_segmentation_layer::SemanticSegmentationLayer"
    source = layer[layer["observation_sources"]]
    assert set(source) - set(source["class_types"]) == NAV2_SOURCE_KEYS
    node = f"/{NODE_NAME}/"
    assert source["segmentation_topic"] == node + TOPICS["raw"].removeprefix("~/")
    assert source["confidence_topic"] == node + TOPICS["confidence"].removeprefix("~/")
    assert source["pointcloud_topic"] == node + TOPICS["cloud"].removeprefix("~/")
    assert source["labels_topic"] == node + "label_info"
    names = set(load_materials().names) - {"background"}
    used = []
    for kind in source["class_types"]:
        assert set(source[kind]) == NAV2_CLASS_KEYS, kind
        assert 0 <= source[kind]["base_cost"] <= source[kind]["max_cost"] <= 254
        used += source[kind]["classes"]
    assert sorted(used) == sorted(names)  # every material once
