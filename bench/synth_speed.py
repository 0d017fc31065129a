"""Synthetic scene generator throughput: images/s at 512×384, render only and written to disk.

    python bench/synth_speed.py [--count 120] [--workers 1 2]

Prints the machine's load average next to each figure: on a shared machine, other
processes take CPU from the workers, so compare figures taken at similar load.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from matseg_ros.data.scene import TextureBank
from matseg_ros.data.synth import generate_dataset, render_scene
from matseg_ros.materials import load_materials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", default="512x384", help="WxH")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    materials = load_materials()
    print(f"cores={os.cpu_count()} size={w}x{h} count={args.count}")

    bank = TextureBank(0)
    for i in range(24):  # fill the texture bank first: steady state only
        render_scene(np.random.default_rng(i), (h, w), materials, bank)
    n = max(10, args.count // 4)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        render_scene(np.random.default_rng(1000 + i), (h, w), materials, bank)
    wall = time.perf_counter() - start
    print(f"render_scene, 1 process, warm bank: {n / wall:6.1f} images/s "
          f"({1e3 * wall / n:.0f} ms wall, {1e3 * (time.process_time() - cpu) / n:.0f} ms CPU per image)"
          f"  load={os.getloadavg()[0]:.1f}")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            generate_dataset(tmp, args.count, size=(h, w), seed=0, workers=workers)
            wall = time.perf_counter() - start
        print(f"generate_dataset, workers={workers}: {args.count / wall:6.1f} images/s "
              f"(JPEG + palette PNG written, texture bank filled per worker)  load={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
