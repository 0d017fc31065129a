"""Which network can be the shipped real-time model: every candidate end to end through the
engine the node uses (a uint8 640×480 frame -> resize -> ONNX Runtime CPU -> ids and
confidence at 640×480), at the input sizes it could ship with, as frames/s and as a ratio
to the 10 frames/s goal. Untrained weights: speed does not depend on them.

    python bench/realtime_networks.py [--frames 30] [--output docs/benchmarks/realtime_networks.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.materials import load_materials  # noqa: E402
from matseg_ros.networks import build_model  # noqa: E402
from matseg_ros.runtime.engine import load_engine  # noqa: E402
from matseg_ros.runtime.modelmeta import IMAGENET_MEAN, IMAGENET_STD, ModelMetadata  # noqa: E402
from matseg_ros.training.onnx_export import export_onnx  # noqa: E402

from _report import emit, machine_lines, median_ms  # noqa: E402

CANDIDATES = [  # (architecture, backbone, input H, input W)
    ("ENet", None, 432, 576),
    ("PPLiteSeg", "mobilenetv2", 384, 512),
    ("PPLiteSeg", "mobilenetv2", 480, 640),
    ("PPLiteSeg", "resnet18", 384, 512),
    ("PPLiteSeg", "resnet18", 480, 640),
    ("PPLiteSeg", "resnet34", 384, 512),
]


def measure(arch: str, backbone: str | None, size: tuple[int, int], frames: int, workdir: Path) -> dict:
    materials = load_materials()
    model = build_model(arch, backbone, num_classes=materials.num_classes).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, *size))
    meta = ModelMetadata(materials, IMAGENET_MEAN, IMAGENET_STD, size, arch, backbone or "")
    path = export_onnx(model, workdir / f"{arch}_{backbone}_{size[0]}.onnx", size, metadata=meta.to_props())
    engine = load_engine(path)
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ms = median_ms(lambda: engine.predict(frame), frames, warmups=3)
    return {"net": f"{arch}/{backbone or '(own)'}", "input": f"{size[1]}×{size[0]}",
            "params": sum(p.numel() for p in model.parameters()) / 1e6,
            "gflops": counter.get_total_flops() / 1e9, "ms": ms, "fps": 1e3 / ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, backbone, h, w in CANDIDATES:
            rows.append(measure(arch, backbone, (h, w), args.frames, Path(tmp)))
            r = rows[-1]
            print(f"{r['net']:<26} {r['input']:>8} {r['params']:6.2f} M {r['gflops']:6.1f} GFLOPs "
                  f"{r['ms']:7.1f} ms {r['fps']:5.1f} frames/s", flush=True)
    lines = ["## Real-time candidates (`bench/realtime_networks.py`)", "", *machine_lines(), "",
             "| network | input | params (M) | GFLOPs | ms/frame (median) | frames/s | ratio to 10 frames/s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['net']} | {r['input']} | {r['params']:.2f} | {r['gflops']:.1f} | {r['ms']:.1f} | "
              f"{r['fps']:.1f} | {r['fps'] / 10:.2f} |" for r in rows]
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
