"""The launch file, params file, rviz config and Fast DDS profile, checked statically
(launch, launch_ros and rviz2 are not installable here) against the node's real interface."""
from __future__ import annotations

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

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


def test_launch_arguments_and_defaults():
    tree = ast.parse(LAUNCH.read_text())
    args = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        name = ast.literal_eval(call.args[0])
        default = _kw(call, "default_value")
        args[name] = ast.literal_eval(default) if isinstance(default, ast.Constant) else default
        assert _kw(call, "description") is not None, f"argument {name} has no description"
    assert set(args) == {"image_topic", "params_file", "model_path", "backend", "device", "namespace",
                         "use_sim_time", "rviz"}
    assert args["image_topic"] == "/camera/image_raw"
    assert args["rviz"] == "false" and args["use_sim_time"] == "false"
    params_default = ast.unparse(args["params_file"])  # os.path.join(share, "config", "segment.yaml")
    assert "'config'" in params_default and "'segment.yaml'" in params_default
    for name in ("image_topic", "params_file", "model_path", "backend", "device", "namespace",
                 "use_sim_time", "rviz"):  # every argument is used
        assert LAUNCH.read_text().count(f'"{name}"') >= 2, f"launch argument {name} is never used"


def test_launch_nodes_exist_and_remap_the_image_topic():
    tree = ast.parse(LAUNCH.read_text())
    nodes = {ast.literal_eval(_kw(c, "executable")): c for c in _calls(tree, "Node")}
    assert set(nodes) == {"segment_node", "rviz2"}
    seg = nodes["segment_node"]
    assert ast.unparse(_kw(seg, "package")) == "PACKAGE" and 'PACKAGE = "matseg_ros"' in LAUNCH.read_text()
    assert ast.literal_eval(_kw(seg, "name")) == "matseg"
    assert "segment_node" in _console_scripts()
    remaps = ast.unparse(_kw(seg, "remappings"))
    assert "('image', image_topic)" in remaps and "('image/compressed'" in remaps
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
