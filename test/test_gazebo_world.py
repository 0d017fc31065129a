"""The Gazebo worlds: valid SDF (the real parser), resolvable files, labels, robot and cameras."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from matseg_ros.sim.sdf_world import footprint, load_world, pose_matrix, resolve_uri, z_range

ROOT = Path(__file__).resolve().parent.parent
WORLDS_DIR = ROOT / "gazebo_worlds"
MODELS_DIR = WORLDS_DIR / "models"        # what sim.launch.py appends to GZ_SIM_RESOURCE_PATH
WORLDS = sorted(WORLDS_DIR.glob("*.sdf"))
MODEL_FILES = sorted(MODELS_DIR.glob("*/model.sdf"))
HRI_LAB = WORLDS_DIR / "hri_lab.sdf"
URI_TAGS = ("uri", "albedo_map", "normal_map", "roughness_map", "metalness_map", "emissive_map",
            "light_map", "ambient_occlusion_map", "environment_map")


def test_there_are_worlds_and_models():
    assert HRI_LAB in WORLDS
    assert MODELS_DIR / "matseg_bot" / "model.sdf" in MODEL_FILES


def _ign() -> str | None:
    path = shutil.which("ign")
    if path is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("`ign` (Debian ignition-tools + libsdformat-dev) is required in CI to validate the worlds")
        pytest.skip("`ign` not installed (apt-get install ignition-tools libsdformat-dev); CI installs it")
    return path


@pytest.mark.parametrize("sdf", WORLDS + MODEL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_ign_sdf_check_says_valid(sdf):
    ign = _ign()
    # SDF_PATH is libsdformat's resource path: model:// resolves as in Gazebo with
    # GZ_SIM_RESOURCE_PATH=<share>/gazebo_worlds/models (set by sim.launch.py).
    env = dict(os.environ, SDF_PATH=str(MODELS_DIR))
    result = subprocess.run([ign, "sdf", "-k", str(sdf)], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and "Valid." in result.stdout, result.stdout + result.stderr


def test_sdf_version_is_parseable_here():
    for sdf in WORLDS + MODEL_FILES:
        version = ET.parse(sdf).getroot().get("version")
        assert version is not None and tuple(map(int, version.split("."))) <= (1, 9), (sdf, version)


@pytest.mark.parametrize("sdf", WORLDS + MODEL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_uri_resolves_inside_the_package(sdf):
    """Texture maps relative to the SDF file, models through model:// on the models folder."""
    seen = 0
    for element in ET.parse(sdf).getroot().iter():
        if element.tag in URI_TAGS and element.text and element.text.strip():
            seen += 1
            uri = element.text.strip()
            assert not uri.startswith("package://"), f"{sdf}: {uri}: Gazebo Harmonic cannot resolve package://"
            resolved = resolve_uri(uri, sdf, [MODELS_DIR])
            assert resolved is not None, f"{sdf}: {element.tag} {uri!r} does not resolve"
            assert resolved.resolve().is_relative_to(WORLDS_DIR.resolve()), f"{sdf}: {uri} leaves gazebo_worlds/"
    if sdf == HRI_LAB:
        assert seen > 100


def test_resolve_uri_rules(tmp_path):
    (tmp_path / "models" / "bot").mkdir(parents=True)
    (tmp_path / "world" / "textures").mkdir(parents=True)
    (tmp_path / "world" / "textures" / "a.jpg").write_bytes(b"x")
    world = tmp_path / "world" / "w.sdf"
    assert resolve_uri("textures/a.jpg", world, []) == tmp_path / "world" / "textures" / "a.jpg"
    assert resolve_uri("textures/b.jpg", world, []) is None
    assert resolve_uri("model://bot", world, [tmp_path / "nowhere", tmp_path / "models"]) == tmp_path / "models" / "bot"
    assert resolve_uri("model://bot", world, []) is None
    assert resolve_uri("package://matseg_ros/x.jpg", world, [tmp_path]) is None


def test_pose_matrix_matches_hand_rotations():
    yaw90 = pose_matrix("1 2 3 0 0 1.5707963267948966")
    np.testing.assert_allclose(yaw90[:3, :3] @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(yaw90[:3, 3], [1, 2, 3])
    roll90 = pose_matrix("0 0 0 1.5707963267948966 0 0")
    np.testing.assert_allclose(roll90[:3, :3] @ [0, 0, 1], [0, -1, 0], atol=1e-12)
    pitch = pose_matrix("0 0 0 0 0.3 0")   # positive pitch tilts +x down
    assert (pitch[:3, :3] @ [1, 0, 0])[2] == pytest.approx(-np.sin(0.3))
    # SDF order: roll, then pitch, then yaw, about fixed axes
    r, p, y = 0.2, -0.4, 1.1
    expected = pose_matrix(f"0 0 0 0 0 {y}") @ pose_matrix(f"0 0 0 0 {p} 0") @ pose_matrix(f"0 0 0 {r} 0 0")
    np.testing.assert_allclose(pose_matrix(f"0 0 0 {r} {p} {y}"), expected, atol=1e-12)


@pytest.fixture(scope="module")
def world():
    return load_world(HRI_LAB, [MODELS_DIR])


def test_every_visual_has_a_material_label_and_all_eight_appear(world, materials):
    unlabelled = [v.name for v in world.visuals if v.label is None]
    assert not unlabelled, f"visuals without a Label plugin: {unlabelled}"
    material_ids = set(materials.ids) - {0}
    wrong = [(v.name, v.label) for v in world.visuals if v.label not in material_ids]
    assert not wrong, f"labels must be material ids 1..8 (0 is background): {wrong}"
    room = [v for v in world.visuals if not v.name.startswith("matseg_bot::")]
    assert {v.label for v in room} == material_ids


def test_each_material_is_on_several_surfaces_of_several_objects(world, materials):
    for material in materials.materials[1:]:
        visuals = [v for v in world.visuals if v.label == material.id and not v.name.startswith("matseg_bot::")]
        models = {v.name.split("::")[0] for v in visuals}
        assert len(visuals) >= 4 and len(models) >= 3, (material.name, len(visuals), sorted(models))


def test_room_visuals_carry_an_albedo_map_of_their_own_material(world, materials):
    for visual in world.visuals:
        if visual.name.startswith("matseg_bot::"):
            continue
        assert visual.albedo_path is not None and visual.albedo_path.is_file(), visual.name
        texture_material = Path(visual.albedo_map).stem.split("_")[0]
        assert materials.by_name(texture_material).id == visual.label, (visual.name, visual.albedo_map)


def test_texture_files_are_modest_tileable_images():
    files = sorted((WORLDS_DIR / "materials" / "textures").glob("*"))
    assert files and sum(f.stat().st_size for f in files) < 5 * 2 ** 20
    for path in files:
        image = cv2.imread(str(path))
        assert image is not None, path
        assert 128 <= image.shape[0] <= 1024 and image.shape[0] == image.shape[1], (path, image.shape)
    check = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_hri_lab_textures.py"), "--check"],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr


def test_texture_script_renders_a_named_style(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import make_hri_lab_textures as script
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    data = script.render(tmp_path / "wood_planks.jpg", 64, 90)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (64, 64, 3)
    assert data == script.render(tmp_path / "wood_planks.jpg", 64, 90)   # deterministic per name
    with pytest.raises(ValueError, match="material"):
        script.render(tmp_path / "marble_polished.jpg", 64, 90)


def test_world_systems(world):
    names = {name for _, name in world.plugins}
    for system in ("gz::sim::systems::Physics", "gz::sim::systems::Sensors",
                   "gz::sim::systems::SceneBroadcaster", "gz::sim::systems::UserCommands"):
        assert system in names
    sensors = [p for p in ET.parse(HRI_LAB).getroot().iter("plugin") if p.get("name") == "gz::sim::systems::Sensors"]
    assert sensors[0].findtext("render_engine") == "ogre2"
    root = ET.parse(HRI_LAB).getroot()
    assert root.find("world/light") is not None and root.find("world/scene/ambient") is not None


def test_robot_drives_on_cmd_vel(world):
    model = ET.parse(MODELS_DIR / "matseg_bot" / "model.sdf").getroot().find("model")
    joints = {j.get("name"): j for j in model.findall("joint")}
    drive = [p for p in world.model_plugins["matseg_bot"] if p.get("filename") == "gz-sim-diff-drive-system"]
    assert len(drive) == 1 and drive[0].findtext("topic") == "/cmd_vel"
    for key in ("left_joint", "right_joint"):
        joint = joints[drive[0].findtext(key)]
        assert joint.get("type") == "revolute"
    wheel = [v for v in world.visuals if v.name == "matseg_bot::left_wheel::visual"][0]
    assert float(drive[0].findtext("wheel_radius")) == pytest.approx(wheel.size[0])
    left = [v for v in world.visuals if v.name.startswith("matseg_bot::left_wheel")][0].pose[:3, 3]
    right = [v for v in world.visuals if v.name.startswith("matseg_bot::right_wheel")][0].pose[:3, 3]
    assert float(drive[0].findtext("wheel_separation")) == pytest.approx(np.linalg.norm(left - right), abs=1e-6)
    assert z_range(wheel)[0] == pytest.approx(0.0, abs=1e-6)       # wheels stand on the floor


def test_rgb_and_segmentation_cameras_are_pixel_aligned(world):
    by_type = {s.type: s for s in world.sensors}
    rgb, seg = by_type["camera"], by_type["segmentation"]
    assert seg.camera["segmentation_type"] == "semantic"
    np.testing.assert_allclose(rgb.pose, seg.pose, atol=1e-12)
    for key in ("horizontal_fov", "width", "height", "near", "far"):
        assert rgb.camera[key] == seg.camera[key], key
    assert rgb.update_rate == seg.update_rate > 0       # same rate: same render steps, same stamps
    assert rgb.name.rsplit("::", 1)[0] == seg.name.rsplit("::", 1)[0]   # same link


def test_robot_starts_inside_the_room_facing_labelled_things(world):
    camera = [s for s in world.sensors if s.type == "camera"][0]
    x, y, _ = camera.pose[:3, 3]
    assert -3.5 < x < 3.5 and -2.5 < y < 2.5
    floor = [v for v in world.visuals if v.name.startswith("floor::")]
    outline = np.vstack([footprint(v) for v in floor])
    assert outline[:, 0].min() <= -4 and outline[:, 0].max() >= 4   # the floor covers the room


def test_plan_renderer_draws_every_material(tmp_path, materials):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import render_world_plan as script
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    out = tmp_path / "plan.png"
    drawn = script.render_plan(HRI_LAB, out, [MODELS_DIR], cut=1.2, dpi=40)
    assert set(drawn) == set(materials.ids) - {0}
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 100
    wood = np.array(materials.by_name("wood").color[::-1])      # BGR: the table top is drawn
    assert np.any(np.all(np.abs(image.astype(int) - wood) <= 3, axis=2))
    assert (ROOT / "docs" / "images" / "hri_lab_plan.png").is_file()
