"""Top-down dose map of a synthetic room after a scripted drive with the lamp on: the fused
materials (left) and the share of each surface's dose delivered (right), with the route.

    python docs/make_dose_map_figure.py [--output docs/images/dose_map.jpg]

The room is made analytically (axis-aligned boxes, ray-cast per pixel into depth and
labels: no renderer needed) and fed to the dosemap core directly, as the node would
from segment_node's cloud and a SLAM pose: 160x120 clouds, 90 degree view, camera 1 m
up and pitched 20 degrees down, the lamp at the camera at 1.0 mW/cm^2 at 1 m (5x the
shipped example value). Drive 0.2 m/s, 2 clouds/s, and three stops that each spin once in
300 s. No ceiling in the picture (it would hide the rest).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from matseg_ros.dosemap.cloud import CloudArrays
from matseg_ros.dosemap.coverage import coverage, dose_records
from matseg_ros.dosemap.exposure import DoseMap
from matseg_ros.dosemap.pose import Pose
from matseg_ros.fileio import atomic_path
from matseg_ros.materials import load_materials
from matseg_ros.runtime.disinfection import load_disinfection

from _figures import legend

ROOM = (6.0, 4.0, 2.5)  # x, y, z extent, m (z up)
# (low corner, high corner, material id): table, cabinet, sofa, bin
FURNITURE = [((2.2, 1.4, 0.0), (3.4, 2.2, 0.75), 8), ((0.0, 3.4, 0.0), (1.6, 4.0, 1.8), 4),
             ((4.4, 0.0, 0.0), (6.0, 0.9, 0.8), 2), ((5.3, 3.3, 0.0), (5.7, 3.7, 0.6), 6)]
WALLS, FLOOR, CEILING = 1, 7, 3
WIDTH, HEIGHT, FX = 160, 120, 80.0  # 90 degrees across
STOPS = [(1.2, 1.0), (4.3, 2.3), (1.3, 2.6)]
SPIN = 600  # clouds of a stop's turn: 300 s at 2 clouds/s
SCALE = 60  # pixels a metre in the picture
ORIGIN = 0.0125  # the room's corner in the map: walls off the voxel boundaries (on one, a wall fills two layers)


def boxes_hit(origin, rays, box_low, box_high):
    """Entry distance of each ray into an axis-aligned box (inf where it misses), and the axis."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (box_low - origin) / rays, (box_high - origin) / rays
    near = np.minimum(t1, t2)
    t_near, t_far = near.max(axis=1), np.maximum(t1, t2).min(axis=1)
    return np.where((t_near <= t_far) & (t_near > 1e-6), t_near, np.inf)


def render(pose: Pose) -> CloudArrays:
    """The camera-frame organised cloud and labels of the room from `pose`."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    cam = np.stack([(u - (WIDTH - 1) / 2) / FX, (v - (HEIGHT - 1) / 2) / FX, np.ones(u.shape)], -1).reshape(-1, 3)
    rays = cam @ pose.rotation.T
    origin = pose.translation - ORIGIN
    with np.errstate(divide="ignore", invalid="ignore"):  # inside the room: the exit of its box
        t1, t2 = (0 - origin) / rays, (np.array(ROOM) - origin) / rays
    exits = np.maximum(t1, t2)
    depth = exits.min(axis=1)
    label = np.where(exits.argmin(axis=1) == 2, np.where(rays[:, 2] > 0, CEILING, FLOOR), WALLS)
    for low, high, material in FURNITURE:
        t = boxes_hit(origin, rays, np.array(low), np.array(high))
        nearer = t < depth
        depth, label = np.where(nearer, t, depth), np.where(nearer, material, label)
    points = (cam * depth[:, None]).reshape(HEIGHT, WIDTH, 3).astype(np.float32)
    return CloudArrays(points, label.reshape(HEIGHT, WIDTH), None)


def camera_pose(x: float, y: float, heading: float, pitch: float = np.radians(20)) -> Pose:
    """Camera optical frame (x right, y down, z forward) 1 m above (x, y), facing `heading`."""
    forward = np.array([np.cos(heading) * np.cos(pitch), np.sin(heading) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.sin(heading), -np.cos(heading), 0.0])
    down = np.cross(forward, right)
    return Pose(np.stack([right, down, forward], axis=1), np.array([x, y, 1.0]))


def route():
    """(stamp step s, pose) along the drive: straight legs between stops, a spin at each."""
    dt, speed = 0.5, 0.2
    position, heading = np.array(STOPS[0]), 0.0
    for stop in STOPS + [STOPS[0]]:
        leg = np.array(stop) - position
        heading = np.arctan2(leg[1], leg[0]) if np.linalg.norm(leg) > 0 else heading
        for s in np.arange(0, np.linalg.norm(leg), speed * dt):
            yield dt, camera_pose(*(position + leg / np.linalg.norm(leg) * s), heading), position + leg / np.linalg.norm(leg) * s
        position = np.array(stop)
        for k in range(SPIN):  # one slow turn
            yield dt, camera_pose(*position, heading + 2 * np.pi * k / SPIN), position


def red_to_green(fraction: np.ndarray) -> np.ndarray:
    """N x 3 uint8: red at 0, yellow at 0.5, green at 1 (and above)."""
    stops = np.array([[215, 48, 39], [250, 220, 80], [26, 152, 80]], float)
    f = np.clip(fraction, 0, 1) * 2
    low = np.minimum(f.astype(int), 1)
    return (stops[low] + (stops[low + 1] - stops[low]) * (f - low)[:, None]).astype(np.uint8)


def top_down(records, values_rgb) -> np.ndarray:
    """Per 5 cm column the topmost voxel below 2.3 m, coloured by `values_rgb` (N x 3)."""
    h, w = int(ROOM[1] * SCALE), int(ROOM[0] * SCALE)
    image = np.full((h, w, 3), 40, np.uint8)
    keep = records["z"] < 2.3
    order = np.argsort(records["z"][keep])  # higher voxels drawn last, on top
    x = np.clip((records["x"][keep][order] * SCALE).astype(int), 0, w - 1)
    y = np.clip(((ROOM[1] - records["y"][keep][order]) * SCALE).astype(int), 0, h - 1)
    side = int(np.ceil(0.05 * SCALE))
    for dy in range(side):
        for dx in range(side):
            image[np.clip(y - side // 2 + dy, 0, h - 1), np.clip(x - side // 2 + dx, 0, w - 1)] = values_rgb[keep][order]
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "images" / "dose_map.jpg")
    args = parser.parse_args()
    materials = load_materials()
    config = dataclasses.replace(load_disinfection(), irradiance_at_1m_mw_cm2=1.0)
    dmap = DoseMap(config, materials.names, 0.05, 1_000_000)
    path, exposure = [], 0.0
    for dt, pose, where in route():
        dmap.integrate(render(pose), pose, exposure)
        exposure = dt
        path.append(where)
    records = dose_records(dmap)
    palette = np.array([m.color for m in materials.materials], np.uint8)
    labels = np.minimum(records["label"], len(palette) - 1)
    fraction = np.clip(np.nan_to_num(records["fraction"], nan=-1), -1, 1)
    ramp = red_to_green(fraction)
    ramp[fraction < 0] = 110  # no guidance (background)
    left, right = top_down(records, palette[labels]), top_down(records, ramp)
    track = (np.array(path) * [SCALE, -SCALE] + [0, ROOM[1] * SCALE]).astype(np.int32)
    for panel in (left, right):
        cv2.polylines(panel, [track], False, (255, 255, 255), 1, cv2.LINE_AA)
    gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
    figure = np.concatenate([left, gap, right], axis=1)
    bar = np.full((28, figure.shape[1], 3), 255, np.uint8)
    scale = red_to_green(np.linspace(0, 1, 200))
    x0 = left.shape[1] + 8 + 120
    bar[8:20, x0:x0 + 200] = scale
    for text, x in (("left: material; right: dose / needed dose (dark: not seen)", 8), ("0", x0 - 14),
                    ("1", x0 + 206)):
        cv2.putText(bar, text, (x, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    figure = np.concatenate([figure, bar, legend(materials, figure.shape[1], background=False)], axis=0)
    with atomic_path(args.output) as tmp:
        cv2.imwrite(str(tmp), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    for entry in coverage(dmap):
        if entry["required_mj_cm2"]:
            print(f"{entry['material']:8s} seen {entry['area_seen_m2']:6.2f} m2, at its dose "
                  f"{entry['area_at_target_m2']:6.2f} m2 ({100 * entry['share']:.0f} %)")
    print(f"{len(path)} clouds, {len(dmap.voxels)} voxels -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
