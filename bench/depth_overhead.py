"""What depth adds to segment_node's per-frame work at 640x480: the mask-only path against the
depth path (depth decoding, material cloud, areas and distances, UV-C dwell), and the ratio.

A synthetic room (floor, wall, a tilted board, a box, sensor holes) in 16UC1 millimetres
with nine materials; the model is a stand-in returning fixed ids, so only the work around it
is timed. The goal: depth adds <= 5 ms p50 on 2 cores. Also times the cloud's strides.

    python bench/depth_overhead.py [--runs 50] [--output docs/benchmarks/depth.md]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.materials import load_materials  # noqa: E402
from matseg_ros.runtime.depth import Intrinsics, depth_to_metres  # noqa: E402
from matseg_ros.runtime.disinfection import load_disinfection  # noqa: E402
from matseg_ros.runtime.pipeline import OUTPUTS, DepthFrame, FramePipeline  # noqa: E402

from _report import emit, machine_lines, samples_ms  # noqa: E402

GOAL_MS = 5.0
STRIDES = (1, 2, 4)
INTR = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)


def scene(seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """16UC1 depth, class ids, rgb and confidence of a room seen from 1.2 m height."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:480, 0:640].astype(np.float64)
    a, b = (u - INTR.cx) / INTR.fx, (v - INTR.cy) / INTR.fy
    wall = np.full(a.shape, 4.0)
    with np.errstate(divide="ignore"):
        floor = np.where(b > 0, 1.2 / b, np.inf)  # y = 1.2 m below the camera
        board = 2.0 / (1 - 0.9 * a)  # a board turned about 42 degrees
    depth = np.minimum(wall, floor)
    ids = np.where(floor < wall, 7, 1).astype(np.uint8)  # stone floor, ceramic wall
    in_board = (u > 80) & (u < 330) & (v > 60) & (v < 300) & (board < depth)
    depth[in_board], ids[in_board] = board[in_board], 8
    box = (u > 380) & (u < 560) & (v > 200) & (v < 420)
    depth[box], ids[box] = 1.6, 4
    for material, (u0, v0) in zip((2, 3, 5, 6, 0), ((400, 40), (120, 330), (450, 250), (200, 100), (20, 20))):
        patch = (u >= u0) & (u < u0 + 60) & (v >= v0) & (v < v0 + 50)
        ids[patch] = material
    millimetres = np.round(depth * 1000 + rng.normal(0, 2, depth.shape)).astype(np.uint16)
    millimetres[rng.random(depth.shape) < 0.02] = 0  # sensor holes
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return millimetres, ids, rgb, rng.random((480, 640), dtype=np.float32)


def percentiles_ms(function: Callable[[], object], runs: int) -> tuple[float, float]:
    """(p50, p95) wall time of `function()` in ms over `runs` calls after two warm-ups."""
    samples = samples_ms(function, runs, warmups=2)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 95))


class FixedEngine:
    """The model's place in the pipeline, at no cost: the scene's ids and confidence."""

    def __init__(self, ids: np.ndarray, confidence: np.ndarray) -> None:
        self.classes = load_materials()
        self.ids, self.confidence = ids, confidence

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.ids, self.confidence


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--output", type=Path)
    args, _ = parser.parse_known_args()  # run_all.py passes every bench the same arguments
    millimetres, ids, rgb, confidence = scene()
    pipeline = FramePipeline(FixedEngine(ids, confidence), disinfection=load_disinfection())
    load = os.getloadavg()[0]

    def mask_only():
        return pipeline.run(rgb, OUTPUTS)

    def with_depth(stride: int):
        pipeline.cloud_stride = stride
        result = pipeline.run(rgb, OUTPUTS, DepthFrame(depth_to_metres(millimetres, "16UC1"), INTR))
        return result.cloud.tobytes()  # what the PointCloud2 message copies

    base, base95 = percentiles_ms(mask_only, args.runs)
    lines = ["## Depth path (`bench/depth_overhead.py`)", "", *machine_lines(),
             f"Load average {load:.1f} at the start; {args.runs} frames of 640×480 each.", "",
             "| path | p50 ms | p95 ms | added p50 ms | ratio to mask only |", "|---|---|---|---|---|",
             f"| mask only (ids, colour, overlay, confidence, summary) | {base:.2f} | {base95:.2f} | — | 1.00 |"]
    for stride in STRIDES:
        p50, p95 = percentiles_ms(lambda: with_depth(stride), args.runs)
        verdict = "within" if p50 - base <= GOAL_MS else "over"
        lines.append(f"| + depth: cloud stride {stride}, areas, distances, dwell | {p50:.2f} | {p95:.2f} | "
                     f"{p50 - base:.2f} ({verdict} the {GOAL_MS:g} ms goal) | {p50 / base:.2f} |")
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
