"""Read a Gazebo SDF world the way Gazebo resolves it, without Gazebo.

The plan renderer and the world tests need the same facts: every visual with its world
pose, geometry, Label-plugin id and albedo map, and every sensor with its topic and
camera. URIs follow Gazebo Harmonic's rules as this package uses them:
- `model://NAME/rest` -> `<dir>/NAME/rest` for the first `<dir>` on the resource path
  (GZ_SIM_RESOURCE_PATH; sim.launch.py puts share/matseg_ros/gazebo_worlds/models there);
- a relative path -> relative to the folder of the SDF file that contains it.
Poses are `x y z roll pitch yaw` relative to the parent frame (no `relative_to`).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

LABEL_PLUGIN = "gz-sim-label-system"


class WorldError(ValueError):
    """An SDF file that cannot be read as this package's worlds are written; names the file."""


@dataclass
class Visual:
    name: str                  # scoped: model::link::visual
    shape: str                 # box, cylinder, sphere, plane, mesh
    size: tuple[float, ...]    # box (x, y, z); cylinder (radius, length); sphere (radius,)
    pose: np.ndarray           # 4x4 world transform
    label: int | None          # Label system plugin id, None when the visual has none
    albedo_map: str | None     # as written in the SDF
    albedo_path: Path | None   # resolved file (None when unresolvable)
    source: Path               # the SDF file that declares it


@dataclass
class Sensor:
    name: str                  # scoped: model::link::sensor
    type: str
    topic: str
    pose: np.ndarray           # 4x4 world transform
    update_rate: float
    camera: dict = field(default_factory=dict)   # horizontal_fov, width, height, near, far, segmentation_type
    source: Path | None = None


@dataclass
class World:
    path: Path
    name: str
    visuals: list[Visual]
    sensors: list[Sensor]
    plugins: list[tuple[str, str]]          # world-level (filename, name)
    model_plugins: dict[str, list[ET.Element]]
    includes: dict[str, Path]               # include uri -> resolved model SDF


def pose_matrix(text: str | None) -> np.ndarray:
    """4x4 transform of an SDF pose `x y z roll pitch yaw` (R = Rz(yaw) Ry(pitch) Rx(roll))."""
    values = [float(v) for v in (text or "").split()] or [0.0] * 6
    if len(values) != 6:
        raise WorldError(f"pose must have 6 numbers (x y z roll pitch yaw), got {text!r}")
    x, y, z, r, p, w = values
    cr, sr, cp, sp, cw, sw = np.cos(r), np.sin(r), np.cos(p), np.sin(p), np.cos(w), np.sin(w)
    out = np.eye(4)
    out[:3, :3] = [[cw * cp, cw * sp * sr - sw * cr, cw * sp * cr + sw * sr],
                   [sw * cp, sw * sp * sr + cw * cr, sw * sp * cr - cw * sr],
                   [-sp, cp * sr, cp * cr]]
    out[:3, 3] = (x, y, z)
    return out


def resolve_uri(uri: str, sdf_file: Path, resource_path: list[Path]) -> Path | None:
    """The file a texture or include URI names, by Gazebo's rules; None if not found."""
    uri = uri.strip()
    if uri.startswith("model://"):
        rest = uri[len("model://"):]
        for root in resource_path:
            candidate = Path(root) / rest
            if candidate.exists():
                return candidate
        return None
    if "://" in uri:
        return None                     # package://, https:// ... not resolvable offline
    candidate = Path(uri) if Path(uri).is_absolute() else sdf_file.parent / uri
    return candidate if candidate.exists() else None


def _model_sdf(folder: Path) -> Path:
    """The SDF file of a model folder, as its model.config names it (default model.sdf)."""
    config = folder / "model.config"
    if config.is_file():
        sdf = ET.parse(config).getroot().find("sdf")
        if sdf is not None and sdf.text:
            return folder / sdf.text.strip()
    return folder / "model.sdf"


def _geometry(visual: ET.Element, where: str) -> tuple[str, tuple[float, ...]]:
    geometry = visual.find("geometry")
    if geometry is None or len(geometry) == 0:
        raise WorldError(f"{where}: visual has no geometry")
    shape = geometry[0]
    if shape.tag == "box":
        return "box", tuple(float(v) for v in shape.findtext("size", "1 1 1").split())
    if shape.tag == "cylinder":
        return "cylinder", (float(shape.findtext("radius", "1")), float(shape.findtext("length", "1")))
    if shape.tag == "sphere":
        return "sphere", (float(shape.findtext("radius", "1")),)
    return shape.tag, ()


def _label(visual: ET.Element) -> int | None:
    for plugin in visual.findall("plugin"):
        if plugin.get("filename") == LABEL_PLUGIN:
            text = plugin.findtext("label")
            return int(text) if text is not None and text.strip().lstrip("-").isdigit() else None
    return None


def _camera(camera: ET.Element | None) -> dict:
    if camera is None:
        return {}
    return {
        "horizontal_fov": float(camera.findtext("horizontal_fov", "1.047")),
        "width": int(camera.findtext("image/width", "320")),
        "height": int(camera.findtext("image/height", "240")),
        "near": float(camera.findtext("clip/near", "0.1")),
        "far": float(camera.findtext("clip/far", "100")),
        "segmentation_type": camera.findtext("segmentation_type"),
    }


def _read_model(model: ET.Element, parent: np.ndarray, source: Path, resource_path: list[Path],
                world: World, prefix: str = "") -> None:
    name = prefix + model.get("name", "?")
    world.model_plugins[name] = model.findall("plugin")
    model_pose = parent @ pose_matrix(model.findtext("pose"))
    for link in model.findall("link"):
        link_pose = model_pose @ pose_matrix(link.findtext("pose"))
        scope = f"{name}::{link.get('name')}"
        for visual in link.findall("visual"):
            where = f"{source}: {scope}::{visual.get('name')}"
            shape, size = _geometry(visual, where)
            albedo = visual.findtext("material/pbr/metal/albedo_map")
            albedo = albedo.strip() if albedo else None
            world.visuals.append(Visual(
                name=f"{scope}::{visual.get('name')}", shape=shape, size=size,
                pose=link_pose @ pose_matrix(visual.findtext("pose")), label=_label(visual),
                albedo_map=albedo,
                albedo_path=resolve_uri(albedo, source, resource_path) if albedo else None,
                source=source))
        for sensor in link.findall("sensor"):
            world.sensors.append(Sensor(
                name=f"{scope}::{sensor.get('name')}", type=sensor.get("type", ""),
                topic=(sensor.findtext("topic") or "").strip(),
                pose=link_pose @ pose_matrix(sensor.findtext("pose")),
                update_rate=float(sensor.findtext("update_rate", "0")),
                camera=_camera(sensor.find("camera")), source=source))
    for nested in model.findall("model"):
        _read_model(nested, model_pose, source, resource_path, world, prefix=f"{name}::")
    for include in model.findall("include"):
        _read_include(include, model_pose, source, resource_path, world, prefix=f"{name}::")


def _read_include(include: ET.Element, parent: np.ndarray, source: Path, resource_path: list[Path],
                  world: World, prefix: str = "") -> None:
    uri = (include.findtext("uri") or "").strip()
    folder = resolve_uri(uri, source, resource_path)
    if folder is None:
        raise WorldError(f"{source}: include {uri!r} not found on the resource path "
                         f"{[str(p) for p in resource_path]}")
    model_file = _model_sdf(folder) if folder.is_dir() else folder
    world.includes[uri] = model_file
    model = _parse(model_file).find("model")
    if model is None:
        raise WorldError(f"{model_file}: no <model> element (included as {uri!r})")
    if include.findtext("name"):
        model.set("name", include.findtext("name").strip())
    pose = include.find("pose")
    if pose is not None:                 # an include's pose replaces the model's own pose
        own = model.find("pose")
        if own is not None:
            model.remove(own)
        model.insert(0, pose)
    _read_model(model, parent, model_file, resource_path, world, prefix)


def _parse(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise WorldError(f"{path}: cannot read SDF: {exc}") from None


def load_world(path: str | Path, resource_path: list[str | Path] | None = None) -> World:
    """Every visual and sensor of the (first) world in an SDF file, includes resolved."""
    path = Path(path)
    roots = [Path(p) for p in (resource_path or [])]
    element = _parse(path).find("world")
    if element is None:
        raise WorldError(f"{path}: no <world> element")
    world = World(path=path, name=element.get("name", ""), visuals=[], sensors=[],
                  plugins=[(p.get("filename", ""), p.get("name", "")) for p in element.findall("plugin")],
                  model_plugins={}, includes={})
    for model in element.findall("model"):
        _read_model(model, np.eye(4), path, roots, world)
    for include in element.findall("include"):
        _read_include(include, np.eye(4), path, roots, world)
    return world


def footprint(visual: Visual) -> np.ndarray:
    """The visual's outline seen from above: N×2 polygon (world x, y), convex."""
    if visual.shape == "box":
        half = np.asarray(visual.size) / 2
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    elif visual.shape == "cylinder":
        radius, length = visual.size
        angles = np.linspace(0, 2 * np.pi, 33)[:-1]
        ring = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
        corners = np.vstack([np.column_stack([ring, np.full(len(ring), z)]) for z in (-length / 2, length / 2)])
    elif visual.shape == "sphere":
        angles = np.linspace(0, 2 * np.pi, 33)[:-1]
        return visual.pose[:2, 3] + visual.size[0] * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    else:
        return np.empty((0, 2))
    points = (visual.pose[:3, :3] @ corners.T).T[:, :2] + visual.pose[:2, 3]
    return _convex_hull(points)


def z_range(visual: Visual) -> tuple[float, float]:
    """Lowest and highest world z of the visual (bounding, for section cuts and draw order)."""
    if visual.shape == "box":
        extent = np.abs(visual.pose[2, :3]) @ (np.asarray(visual.size) / 2)
    elif visual.shape == "cylinder":
        radius, length = visual.size
        axis = abs(visual.pose[2, 2])
        extent = axis * length / 2 + np.sqrt(max(0.0, 1 - axis ** 2)) * radius
    elif visual.shape == "sphere":
        extent = visual.size[0]
    else:
        extent = 0.0
    z = visual.pose[2, 3]
    return float(z - extent), float(z + extent)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    hull = cv2.convexHull(points.astype(np.float32))
    return hull.reshape(-1, 2).astype(np.float64)
