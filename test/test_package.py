"""The package as ROS 2 sees it: package.xml, and a real colcon build of this tree."""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("matseg", "segment_node", "camera_replay", "sim_evaluator", "dataset_recorder", "dose_mapper")


def test_package_xml_is_format3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "matseg_ros"
    assert root.findtext("export/build_type") == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "cv_bridge", "vision_msgs",
                "launch", "launch_ros", "python3-numpy", "python3-opencv", "python3-yaml",
                "geometry_msgs", "std_srvs", "tf2_ros"):
        assert dep in exec_deps, dep
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}
    assert (ROOT / "resource" / "matseg_ros").is_file()
    assert "install_scripts=$base/lib/matseg_ros" in (ROOT / "setup.cfg").read_text()


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [f for f in out.stdout.decode().split("\0") if f]


@pytest.mark.skipif(shutil.which("colcon", path=os.path.dirname(sys.executable)) is None,
                    reason="colcon is installed from requirements.txt")
def test_colcon_build_installs_scripts_and_share_files(tmp_path):
    src = tmp_path / "src" / "matseg_ros"
    for rel in tracked_files():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, src / rel)
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix)
    colcon = os.path.join(os.path.dirname(sys.executable), "colcon")
    result = subprocess.run([colcon, "--log-base", "log", "build"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "matseg_ros"
    for script in SCRIPTS:
        assert (prefix / "lib" / "matseg_ros" / script).is_file(), script
    share = prefix / "share" / "matseg_ros"
    assert (share / "config" / "materials.yaml").is_file() and (share / "package.xml").is_file()
    assert (prefix / "share/ament_index/resource_index/packages/matseg_ros").is_file()
    for rel in tracked_files():  # every file of the shared trees lands in share/, layout kept
        if rel.split("/")[0] in ("launch", "config", "models", "gazebo_worlds"):
            assert (share / rel).is_file(), rel
    site = next(prefix.glob("lib/python*/site-packages"))
    probe = subprocess.run(
        [sys.executable, "-c", "from matseg_ros.paths import share_dir; print(share_dir())"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, AMENT_PREFIX_PATH=f"{prefix}:{sys.prefix}", PYTHONPATH=str(site)))
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()) == share


NO_NETWORK = """
import socket
attempts = []
def refuse(*args, **kwargs):
    attempts.append(args)
    raise OSError("network use during import")
socket.getaddrinfo = socket.create_connection = refuse
socket.socket.connect = lambda self, *args: refuse(*args)
import matseg_ros.training.transforms, matseg_ros.data.augment, matseg_ros.training.train
import matseg_ros.runtime.engine, matseg_ros.cli
print(len(attempts))
"""


def test_importing_the_package_goes_nowhere_online():
    """albumentations looks for a newer release on PyPI when imported unless told not to."""
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", NO_NETWORK], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "0", proc.stderr[-2000:]
