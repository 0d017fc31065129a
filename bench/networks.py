"""Model zoo benchmark: parameters, GFLOPs, CPU ms/frame (ONNX Runtime and PyTorch) and,
when CUDA is there, GPU fp16 ms/frame, for every architecture on its default backbone.

    python bench/networks.py [--size 512] [--repeats 3] [--arch DeepLab ...] [--output docs/benchmarks/networks.md]

Prints the table and writes it (markdown, with the machine and the command) to --output.
GFLOPs count a multiply-add as 2 FLOPs (torch.utils.flop_counter.FlopCounterMode).
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.fileio import atomic_write_text  # noqa: E402
from matseg_ros.networks import ARCHITECTURES, build_model, default_backbone  # noqa: E402
from matseg_ros.networks.onnx_export import export_onnx  # noqa: E402

from _report import cpu_name  # noqa: E402


def timed(fn, repeats: int, sync=lambda: None) -> float:
    """Median ms of `repeats` calls after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench_one(arch: str, size: int, repeats: int, workdir: Path) -> dict:
    backbone = default_backbone(arch)
    model = build_model(arch, backbone, num_classes=9).eval()
    x = torch.randn(1, 3, size, size)
    row = {"arch": arch, "backbone": backbone or "(own)",
           "params": sum(p.numel() for p in model.parameters()) / 1e6}
    with torch.no_grad():
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
        row["gflops"] = counter.get_total_flops() / 1e9
        row["torch_ms"] = timed(lambda: model(x), repeats)
    import onnxruntime as ort

    path = export_onnx(model, workdir / f"{arch}.onnx", (size, size))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    row["ort_ms"] = timed(lambda: session.run(None, feed), repeats)
    row["ort_providers"] = ",".join(session.get_providers())
    path.unlink()
    if torch.cuda.is_available():
        gpu = model.cuda().half()
        xg = x.cuda().half()
        with torch.no_grad():
            row["gpu_fp16_ms"] = timed(lambda: gpu(xg), max(repeats, 20), torch.cuda.synchronize)
    return row


def machine() -> str:
    import onnxruntime as ort
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu_name()}, {os.cpu_count()} cores visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}, GPU: {gpu}, "
            f"Python {platform.python_version()}, {platform.platform()}; load average at start {load:.1f}")


def table(rows: list[dict], size: int) -> str:
    gpu = any("gpu_fp16_ms" in r for r in rows)
    head = ["architecture", "backbone", "params (M)", f"GFLOPs @{size}²", "ORT CPU ms/frame", "PyTorch CPU ms/frame"]
    head += ["GPU fp16 ms/frame"] if gpu else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["arch"], r["backbone"], f"{r['params']:.2f}", f"{r['gflops']:.1f}",
                 f"{r['ort_ms']:.0f}", f"{r['torch_ms']:.0f}"]
        cells += [f"{r['gpu_fp16_ms']:.2f}" if "gpu_fp16_ms" in r else "—"] if gpu else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="square input side (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per backend after a warm-up")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES), help="architectures to run")
    parser.add_argument("--output", default=str(ROOT / "docs/benchmarks/networks.md"))
    args, _ = parser.parse_known_args(argv)  # tolerate bench/run_all.py's shared arguments
    command = "python bench/networks.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            row = bench_one(arch, args.size, args.repeats, Path(tmp))
            print(f"{row['arch']:>16} {row['backbone']:>10} {row['params']:7.2f}M {row['gflops']:8.1f} GFLOPs "
                  f"ORT {row['ort_ms']:8.0f} ms  torch {row['torch_ms']:8.0f} ms"
                  + (f"  GPU fp16 {row['gpu_fp16_ms']:.2f} ms" if "gpu_fp16_ms" in row else ""), flush=True)
            rows.append(row)
    text = table(rows, args.size)
    providers = sorted({r["ort_providers"] for r in rows})
    doc = (f"## Model zoo: size and speed\n\nEvery architecture on its default backbone, 9 classes, "
           f"batch 1, {args.size}×{args.size} input; median of {args.repeats} runs after a warm-up "
           f"(GPU: at least 20). GFLOPs count a multiply-add as 2. On a shared machine the ms "
           f"columns move with the load (see the load average below); compare rows of one run.\n\n{text}\n\n"
           f"Machine: {machine()}. ONNX Runtime providers in use: {', '.join(providers)}.\n\n"
           f"Command: `{command}`\n")
    atomic_write_text(args.output, doc)
    print(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
