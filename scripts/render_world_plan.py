#!/usr/bin/env python3
"""Render a top-down plan of a Gazebo world from its SDF, coloured by material label.

A horizontal section: visuals that start below `--cut` metres (default 1.2) are drawn from the lowest
to the highest (so a table top covers its legs and the rug), filled with the palette
colour of their Label-plugin id from config/materials.yaml; cameras are drawn as their
horizontal field of view. Regenerate the docs figure with:

    python scripts/render_world_plan.py gazebo_worlds/hri_lab.sdf -o docs/images/hri_lab_plan.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch, Polygon  # noqa: E402

from matseg_ros.fileio import atomic_path  # noqa: E402
from matseg_ros.materials import load_materials  # noqa: E402
from matseg_ros.sim.sdf_world import footprint, load_world, z_range  # noqa: E402


def render_plan(world_path: Path, output: Path, resource_path: list[Path], cut: float = 1.2,
                fov_length: float = 2.5, dpi: int = 130) -> dict[int, int]:
    """Draw the plan; returns {label: number of visuals drawn} for the caller to report."""
    materials = load_materials()
    colors = {m.id: np.asarray(m.color) / 255.0 for m in materials.materials}
    world = load_world(world_path, resource_path)
    visuals = [v for v in world.visuals if z_range(v)[0] < cut]
    visuals.sort(key=lambda v: z_range(v)[1])

    fig, ax = plt.subplots(figsize=(10, 7.8))
    drawn: dict[int, int] = {}
    for visual in visuals:
        outline = footprint(visual)
        if len(outline) < 3:
            continue
        label = visual.label if visual.label is not None else 0
        drawn[label] = drawn.get(label, 0) + 1
        glass = label == materials.by_name("glass").id if "glass" in materials.names else False
        ax.add_patch(Polygon(outline, closed=True, facecolor=colors.get(label, (0.5, 0.5, 0.5)),
                             edgecolor="black", linewidth=0.4, alpha=0.75 if glass else 1.0))
    cameras: dict[tuple, list[str]] = {}
    for sensor in world.sensors:        # cameras sharing a pose and fov are drawn once
        if "horizontal_fov" in sensor.camera:
            key = (*np.round(sensor.pose[:3].ravel(), 6), sensor.camera["horizontal_fov"])
            cameras.setdefault(key, []).append(sensor.name)
    for key, names in cameras.items():
        pose = np.asarray(key[:12]).reshape(3, 4)
        origin = pose[:2, 3]
        heading = np.arctan2(pose[1, 0], pose[0, 0])
        half = key[12] / 2
        angles = np.linspace(heading - half, heading + half, 24)
        wedge = np.vstack([origin, origin + fov_length * np.stack([np.cos(angles), np.sin(angles)], 1)])
        ax.add_patch(Polygon(wedge, closed=True, facecolor="none", edgecolor="crimson",
                             linestyle="--", linewidth=1.0))
        ax.annotate(" + ".join(n.split("::")[-1] for n in names),
                    origin + 0.25 * np.array([np.cos(heading), np.sin(heading)]), fontsize=6, color="crimson")

    handles = [Patch(facecolor=colors[m.id], edgecolor="black", label=f"{m.id} {m.name}")
               for m in materials.materials if m.id in drawn]
    handles.append(Patch(facecolor="none", edgecolor="crimson", linestyle="--", label="camera field of view"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="material id")
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.margins(0.03)
    ax.set_xlabel("x [m]")
    ax.set_ylabel("y [m]")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.set_title(f"{world.name}: plan (section at {cut:g} m), {sum(drawn.values())} visuals by material label")
    fig.tight_layout()
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("world", type=Path, nargs="?", default=ROOT / "gazebo_worlds" / "hri_lab.sdf")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "images" / "hri_lab_plan.png")
    parser.add_argument("--resource-path", type=Path, nargs="*",
                        default=[ROOT / "gazebo_worlds" / "models"],
                        help="folders model:// URIs resolve in (as GZ_SIM_RESOURCE_PATH)")
    parser.add_argument("--cut", type=float, default=1.2, help="section height in metres")
    args = parser.parse_args(argv)
    drawn = render_plan(args.world, args.output, args.resource_path, args.cut)
    print(f"{args.output}: {sum(drawn.values())} visuals, labels {dict(sorted(drawn.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
