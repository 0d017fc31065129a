"""Contact sheet of synthetic scenes with their palette masks: docs/images/synth_examples.jpg.

    python docs/make_synth_examples.py [--seed 0] [--output docs/images/synth_examples.jpg]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from matseg_ros.data.scene import TextureBank
from matseg_ros.data.synth import render_scene
from matseg_ros.fileio import atomic_path
from matseg_ros.materials import load_materials

from _figures import legend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--output", type=Path, default=Path("docs/images/synth_examples.jpg"))
    args = parser.parse_args()
    materials = load_materials()
    lut = materials.palette_lut()
    bank = TextureBank(args.seed)
    pairs = []
    for i in range(args.count):
        rng = np.random.default_rng(np.random.SeedSequence(args.seed, spawn_key=(0, i)))
        rgb, ids = render_scene(rng, (384, 512), materials, bank)
        pairs.append(np.hstack([rgb, lut[ids]]))
    rows = [np.hstack(pairs[k:k + 2]) for k in range(0, len(pairs) - 1, 2)]
    sheet = cv2.resize(np.vstack(rows), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    sheet = np.vstack([sheet, legend(materials, sheet.shape[1])])
    with atomic_path(args.output) as tmp:
        cv2.imwrite(str(tmp), sheet[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(args.output)


if __name__ == "__main__":
    main()
