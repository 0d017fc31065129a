"""Model zoo benchmark: parameters, GFLOPs, CPU ms/frame (ONNX Runtime and PyTorch) and,
when CUDA is there, GPU fp32 and fp16 ms/frame, for every architecture on its default backbone.

    python bench/networks.py [--size 512] [--repeats 3] [--arch DeepLab ...] [--devices cpu cuda]
                             [--output docs/benchmarks/networks.md]

Prints the table and writes it (markdown, with the machine and the command) to --output.
GFLOPs count a multiply-add as 2 FLOPs (torch.utils.flop_counter.FlopCounterMode).
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.fileio import atomic_write_text  # noqa: E402
from matseg_ros.networks import ARCHITECTURES, build_model, default_backbone  # noqa: E402
from matseg_ros.training.onnx_export import export_onnx  # noqa: E402

from _report import add_devices_argument, cpu_name, gpu_name, median_ms  # noqa: E402


def bench_one(arch: str, size: int, repeats: int, workdir: Path, devices: list[str]) -> dict:
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
        if "cpu" in devices:
            row["torch_ms"] = median_ms(lambda: model(x), repeats, warmups=1)
    if "cpu" in devices:
        import onnxruntime as ort

        path = export_onnx(model, workdir / f"{arch}.onnx", (size, size))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: x.numpy()}
        row["ort_ms"] = median_ms(lambda: session.run(None, feed), repeats, warmups=1)
        row["ort_providers"] = ",".join(session.get_providers())
        path.unlink()
    if "cuda" in devices and torch.cuda.is_available():
        # as the torch engine runs a checkpoint on CUDA: channels_last, fp32 or fp16
        for dtype, key in ((torch.float32, "gpu_fp32_ms"), (torch.float16, "gpu_fp16_ms")):
            gpu = model.to("cuda", dtype=dtype, memory_format=torch.channels_last)
            xg = x.to("cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                row[key] = median_ms(lambda: gpu(xg), max(repeats, 20), warmups=1,
                                     sync=torch.cuda.synchronize)
    return row


def machine() -> str:
    import onnxruntime as ort
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu_name()}, {os.cpu_count()} cores visible, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), onnxruntime {ort.__version__}, GPU: {gpu_name()}, "
            f"Python {platform.python_version()}, {platform.platform()}; load average at start {load:.1f}")


COLUMNS = (("ort_ms", "ORT CPU ms/frame", "{:.0f}"), ("torch_ms", "PyTorch CPU ms/frame", "{:.0f}"),
           ("gpu_fp32_ms", "GPU fp32 ms/frame", "{:.2f}"), ("gpu_fp16_ms", "GPU fp16 ms/frame", "{:.2f}"))


def table(rows: list[dict], size: int) -> str:
    columns = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    gpu = any("gpu_fp16_ms" in r for r in rows)
    head = ["architecture", "backbone", "params (M)", f"GFLOPs @{size}²", *(c[1] for c in columns)]
    head += ["GPU fp32/fp16"] if gpu else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["arch"], r["backbone"], f"{r['params']:.2f}", f"{r['gflops']:.1f}"]
        cells += [form.format(r[key]) if key in r else "—" for key, _, form in columns]
        cells += [f"{r['gpu_fp32_ms'] / r['gpu_fp16_ms']:.2f}×" if "gpu_fp16_ms" in r else "—"] if gpu else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="square input side (default 512)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per backend after a warm-up")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES), help="architectures to run")
    parser.add_argument("--output", default=str(ROOT / "docs/benchmarks/networks.md"))
    add_devices_argument(parser)
    args, _ = parser.parse_known_args(argv)  # tolerate bench/run_all.py's shared arguments
    command = "python bench/networks.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch:
            row = bench_one(arch, args.size, args.repeats, Path(tmp), args.devices)
            print(f"{row['arch']:>16} {row['backbone']:>10} {row['params']:7.2f}M {row['gflops']:8.1f} GFLOPs "
                  + "  ".join(f"{name} {row[key]:.2f}" for key, name, _ in COLUMNS if key in row), flush=True)
            rows.append(row)
    text = table(rows, args.size)
    providers = sorted({r["ort_providers"] for r in rows if "ort_providers" in r}) or ["not run"]
    doc = (f"## Model zoo: size and speed\n\nEvery architecture on its default backbone, 9 classes, "
           f"batch 1, {args.size}×{args.size} input; median of {args.repeats} runs after a warm-up "
           f"(GPU: at least 20, channels_last as the torch engine runs it). GFLOPs count a multiply-add as 2. On a shared machine the ms "
           f"columns move with the load (see the load average below); compare rows of one run.\n\n{text}\n\n"
           f"Machine: {machine()}. ONNX Runtime providers in use: {', '.join(providers)}.\n\n"
           f"Command: `{command}`\n")
    atomic_write_text(args.output, doc)
    print(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
