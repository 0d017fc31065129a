"""Per-frame work outside the model: decode, colourise, overlay, summary, encode.

Runs on real rclpy sensor_msgs/Image objects carrying a real photograph, for a
scene-like class map and the worst case for the summary. Prints median and p95 ms per
stage, the best-of-runs total and the ratio to the 2 ms goal at 640×480.

    PYTHONPATH=$PWD python bench/frame_overhead.py [--runs 3] [--frames 200]
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import time

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from skimage.data import astronaut

from matseg_ros.materials import load_materials
from matseg_ros.runtime.encodings import compressed_to_rgb, image_to_rgb, numpy_to_image
from matseg_ros.runtime.rendering import colorize, overlay, summarize

from _report import median_ms

GOAL_MS = 2.0
SIZES = [(640, 480), (1920, 1080)]
STAGES = ["decode", "colorize", "overlay", "summary", "encode"]


def machine() -> str:
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return (f"{model}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"numpy {np.__version__}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)")


def frame(width: int, height: int, layout: str = "scene", seed: int = 3):
    """An rgb8 message of a real photo, and ids/confidence shaped like a segmentation.

    "scene": 12 regions (Voronoi cells of random seeds) of random materials, like a room;
    "worst": all 9 classes in 40 px blocks over the whole frame, so every class's box is
    the full frame (the most work for the summary).
    """
    rgb = cv2.resize(astronaut(), (width, height), interpolation=cv2.INTER_AREA)
    msg = numpy_to_image(rgb, "rgb8", Image())
    msg.header.frame_id = "camera"
    rng = np.random.default_rng(seed)
    if layout == "worst":
        coarse = rng.integers(0, 9, (height // 40 + 1, width // 40 + 1), dtype=np.uint8)
        ids = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
    else:
        seeds = rng.random((12, 2)) * (width, height)
        labels = rng.integers(0, 9, 12, dtype=np.uint8)
        yy, xx = np.mgrid[0:height, 0:width]
        nearest = np.argmin([(xx - x) ** 2 + (yy - y) ** 2 for x, y in seeds], axis=0)
        ids = labels[nearest]
    confidence = rng.random((height, width), dtype=np.float32)
    return msg, ids, confidence


def one_frame(msg, ids, confidence, materials, lut, clock=time.perf_counter_ns) -> list[int]:
    """The node's per-frame path, timed stage by stage (ns)."""
    t0 = clock()
    rgb = image_to_rgb(msg)
    t1 = clock()
    colored = colorize(ids, lut)
    t2 = clock()
    blended = overlay(rgb, colored, 0.5, ids=ids)
    t3 = clock()
    summarize(ids, confidence, materials)
    t4 = clock()
    for array_, encoding in ((ids, "mono8"), (colored, "rgb8"), (blended, "rgb8")):
        out = numpy_to_image(array_, encoding, Image())
        out.header = msg.header
    t5 = clock()
    return [t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4]


def bench_size(width, height, layout, frames, runs, materials, lut) -> float:
    msg, ids, confidence = frame(width, height, layout)
    for _ in range(10):
        one_frame(msg, ids, confidence, materials, lut)
    results = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(runs):
        times = np.array([one_frame(msg, ids, confidence, materials, lut)
                          for _ in range(frames)]) / 1e6
        results.append(np.column_stack([times, times.sum(axis=1)]))
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (frames * runs)
    totals = [float(np.median(r[:, -1])) for r in results]
    best = results[int(np.argmin(totals))]
    present = len(np.unique(ids))
    print(f"\n{width}x{height}, {layout} ({present} classes present): {frames} frames x {runs} runs, "
          f"{faults:.0f} page faults/frame; total medians per run: "
          + ", ".join(f"{t:.3f}" for t in totals) + " ms; best run:")
    print(f"  {'stage':10s} {'median ms':>10s} {'p95 ms':>10s}")
    for name, column in zip(STAGES + ["total"], best.T):
        print(f"  {name:10s} {np.median(column):10.3f} {np.percentile(column, 95):10.3f}")
    return min(totals)


def variants(materials, lut) -> None:
    """Why the modules do what they do: the alternatives, timed at 640×480."""
    msg, ids, confidence = frame(640, 480, "worst")
    rgb = image_to_rgb(msg)
    lut3 = lut.reshape(256, 1, 3)
    print("\nalternatives at 640x480 (median ms):")
    for name, function in [
        ("colorize: lut[ids] (numpy fancy indexing)", lambda: lut[ids]),
        ("colorize: np.take(lut, ids, axis=0)", lambda: np.take(lut, ids, axis=0)),
        ("colorize: cv2.LUT(gray->rgb ids, 3-ch table)",
         lambda: cv2.LUT(cv2.cvtColor(ids, cv2.COLOR_GRAY2RGB), lut3)),
        ("colorize: 3 x cv2.LUT + cv2.merge  [used]", lambda: colorize(ids, lut)),
        ("summary: np.bincount(ids, weights=conf) alone",
         lambda: np.bincount(ids.ravel(), weights=confidence.ravel(), minlength=256)),
        ("summary: summarize() [used]", lambda: summarize(ids, confidence, materials)),
        ("msg.data = rgb.tobytes() alone", lambda: setattr(Image(), "data", rgb.tobytes())),
        ("numpy_to_image(rgb8): array.array.frombytes [used]", lambda: numpy_to_image(rgb, "rgb8", Image())),
    ]:
        print(f"  {name:48s} {median_ms(function, 50, warmups=1):8.3f}")
    print("\ndecode to RGB by encoding at 640x480 (median ms):")
    for encoding, convert in [("bgr8", cv2.COLOR_RGB2BGR), ("mono8", cv2.COLOR_RGB2GRAY),
                              ("yuv422", cv2.COLOR_RGB2YUV_UYVY), ("bayer_rggb8", None)]:
        data = cv2.cvtColor(rgb, convert) if convert is not None else rgb[..., 1].copy()
        image = numpy_to_image(data, encoding, Image())
        print(f"  {encoding:14s} {median_ms(lambda: image_to_rgb(image), 50, warmups=1):8.3f}")
    mono16 = numpy_to_image(rgb[..., 0].astype(np.uint16) * 257, "mono16", Image())
    depth = numpy_to_image(rgb[..., 0].astype(np.float32) / 10.0, "32FC1", Image())
    jpeg = CompressedImage(format="rgb8; jpeg compressed bgr8")
    jpeg.data = cv2.imencode(".jpg", rgb[..., ::-1])[1].tobytes()
    for name, image, function in [("mono16", mono16, image_to_rgb), ("32FC1", depth, image_to_rgb),
                                  ("jpeg", jpeg, compressed_to_rgb)]:
        print(f"  {name:14s} {median_ms(lambda: function(image), 50, warmups=1):8.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=200, help="frames per run at 640x480 "
                        "(a quarter of that at larger sizes)")
    args = parser.parse_args()
    materials = load_materials()
    lut = materials.palette_lut()
    print(f"machine: {machine()}")
    print("stages: decode rgb8 Image -> RGB, colorize ids, overlay (alpha 0.5, background kept), "
          "summary, encode mono8 ids + rgb8 palette + rgb8 overlay messages")
    best = {}
    for width, height in SIZES:
        frames = args.frames if width * height <= 640 * 480 else max(10, args.frames // 4)
        for layout in ("scene", "worst"):
            best[(width, height, layout)] = bench_size(width, height, layout, frames, args.runs,
                                                       materials, lut)
    print()
    for layout in ("scene", "worst"):
        total = best[(640, 480, layout)]
        print(f"goal: <= {GOAL_MS:.1f} ms total at 640x480; {layout}: best-of-runs median "
              f"{total:.3f} ms = {total / GOAL_MS:.2f} x the goal "
              f"({'met' if total <= GOAL_MS else 'NOT met'})")
    variants(materials, lut)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
