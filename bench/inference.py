"""Inference speed from a uint8 640×480 frame to uint8 ids and a colour mask, every engine side by side.

    python bench/inference.py [--model models/default.onnx] [--int8 PATH | --calibrate-data DIR]
                              [--checkpoint models/default.pt] [--data DIR --split val]
                              [--repeats 20] [--output docs/benchmarks/inference.md]

Each timing is `engine.predict_rendered(frame, lut)` (or `predict_batch` and the palette per
frame), the configurations of a table timed in turn (round robin) so that a changing load
weighs on all alike, except the thread settings (blocks: see `block_median_ms`); medians are
reported. Sections:
- CPU: ONNX Runtime fp32 against int8 (`--int8 PATH`, default the model's `<stem>.int8.onnx`;
  made in a temporary folder from `--calibrate-data` when it does not exist);
- ONNX Runtime's intra-op threads on this CPU: 1 or 2 threads, pool threads spinning or not;
- a GPU, when torch sees one: torch fp32, fp16, fp16 with CUDA graphs (`--checkpoint`),
  ONNX Runtime's CUDA provider (IO binding) and its TensorRT provider where it loads;
- batches of N = 2 and 4 frames (several cameras, one forward pass) against N single calls;
- with `--data`: mIoU of fp32 and int8 on a split, and how often their ids agree.
The load average is printed before and after: on a shared machine the numbers are only
comparable within one run.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.demo.frames import sample_sequence  # noqa: E402
from matseg_ros.io import dataset_layout as layout  # noqa: E402
from matseg_ros.io.masks import read_mask  # noqa: E402
from matseg_ros.runtime.engine import int8_sibling, load_engine  # noqa: E402
from matseg_ros.runtime.onnx_engine import OnnxEngine  # noqa: E402
from matseg_ros.runtime.ort_providers import tensorrt_missing  # noqa: E402
from matseg_ros.runtime.rendering import colorize  # noqa: E402
from matseg_ros.training.metrics import ConfusionMatrix  # noqa: E402

from _report import block_median_ms, cpu_name, emit, gpu_name, interleaved_median_ms  # noqa: E402

FRAME_SIZE = (480, 640)
BATCHES = (2, 4)


def load_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"Load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cores)."


def rendered(engine, frame: np.ndarray, lut: np.ndarray):
    return lambda: engine.predict_rendered(frame, lut)


def speed_table(engines: dict, frame: np.ndarray, lut: np.ndarray, repeats: int,
                baseline: str) -> list[str]:
    """One row per engine: ms per frame, frames/s and the speed relative to `baseline`."""
    ms = interleaved_median_ms({name: rendered(e, frame, lut) for name, e in engines.items()}, repeats)
    lines = ["| engine | providers | precision | ms/frame | frames/s | vs " + baseline + " |",
             "|---|---|---|---:|---:|---:|"]
    for name, engine in engines.items():
        lines.append(f"| {name} | {', '.join(engine.providers)} | {engine.precision} | "
                     f"{ms[name]:.1f} | {1e3 / ms[name]:.1f} | {ms[baseline] / ms[name]:.2f}× |")
    return lines + [""]


def thread_table(paths: dict[str, Path], frame: np.ndarray, lut: np.ndarray, repeats: int) -> list[str]:
    """ONNX Runtime CPU sessions with 1 or 2 intra-op threads, pool threads spinning or not,
    each timed in a block of its own (spinning threads would slow the next one interleaved)."""
    engines = {(name, threads, spinning): OnnxEngine(path, device="cpu", threads=threads, spinning=spinning)
               for name, path in paths.items() for threads in (1, 2) for spinning in (False, True)}
    ms = block_median_ms({key: rendered(e, frame, lut) for key, e in engines.items()}, repeats)
    lines = ["| model | intra-op threads | spinning | ms/frame | frames/s |", "|---|---:|---|---:|---:|"]
    for (name, threads, spinning), value in ms.items():
        lines.append(f"| {name} | {threads} | {'on' if spinning else 'off (engine default)'} | "
                     f"{value:.1f} | {1e3 / value:.1f} |")
    return lines + [""]


def batch_table(engines: dict, frames: list[np.ndarray], lut: np.ndarray, repeats: int) -> list[str]:
    """N frames in one `predict_batch` (palette per frame) against N single calls."""
    def batched(engine, n):
        return lambda: [colorize(ids, lut) for ids, _ in engine.predict_batch(frames[:n])]

    def single(engine, n):
        return lambda: [colorize(engine.predict(rgb)[0], lut) for rgb in frames[:n]]

    lines = ["| engine | cameras N | one batch: ms | frames/s per camera | N calls: ms | "
             "frames/s per camera | batch / calls |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, engine in engines.items():
        for n in BATCHES:
            ms = interleaved_median_ms({"batch": batched(engine, n), "calls": single(engine, n)}, repeats)
            lines.append(f"| {name} | {n} | {ms['batch']:.1f} | {1e3 / ms['batch']:.1f} | "
                         f"{ms['calls']:.1f} | {1e3 / ms['calls']:.1f} | "
                         f"{ms['calls'] / ms['batch']:.2f}× |")
    return lines + [""]


def gpu_engines(model: Path, checkpoint: Path) -> tuple[dict, list[str]]:
    """The GPU configurations that load here, and a line for each one that does not."""
    import onnxruntime as ort

    engines, notes = {}, []
    if checkpoint.is_file():
        engines["torch fp32"] = load_engine(checkpoint, device="cuda", precision="fp32", cuda_graphs=False)
        engines["torch fp16"] = load_engine(checkpoint, device="cuda", precision="fp16", cuda_graphs=False)
        engines["torch fp16 + CUDA graph"] = load_engine(checkpoint, device="cuda", precision="fp16")
    else:
        notes.append(f"torch: not measured ({checkpoint} not found)")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        engines["ORT CUDA (IO binding)"] = load_engine(model, device="cuda", providers=("cuda", "cpu"))
    missing = tensorrt_missing()
    if missing:
        notes.append(f"ONNX Runtime TensorRT: not measured ({missing})")
    else:
        engines["ORT TensorRT fp16"] = load_engine(model, providers=("tensorrt", "cuda", "cpu"))
    return engines, notes


def accuracy_lines(engines: dict, data: Path, split: str) -> list[str]:
    """mIoU of each engine on a split, and the share of pixels where their ids agree."""
    classes = next(iter(engines.values())).classes
    matrices = {name: ConfusionMatrix(classes.num_classes) for name in engines}
    agree, pixels = 0, 0
    ids = layout.read_split(data, split)
    for image_id in ids:
        rgb = layout.read_rgb(layout.find_image(data, image_id))
        target, _ = read_mask(layout.mask_path(data, image_id), classes)
        predictions = {name: engine.predict(rgb)[0] for name, engine in engines.items()}
        for name, pred in predictions.items():
            matrices[name].update(pred, target)
        first, *rest = predictions.values()
        agree += sum(int((first == other).sum()) for other in rest)
        pixels += first.size * len(rest)
    scores = {name: matrix.compute() for name, matrix in matrices.items()}
    lines = [f"### Accuracy on `{data}` split `{split}` ({len(ids)} images)", "",
             "| engine | mIoU | pixel accuracy |", "|---|---:|---:|"]
    lines += [f"| {name} | {s['mIoU']:.4f} | {s['pixel_accuracy']:.4f} |" for name, s in scores.items()]
    if pixels:
        lines += ["", f"Same class ids on {agree / pixels:.2%} of pixels."]
    return lines + [""]


def int8_path(args: argparse.Namespace, tmp: Path) -> tuple[Path | None, str]:
    """The int8 model to measure and where it came from (None, why: not measured)."""
    path = Path(args.int8) if args.int8 else int8_sibling(Path(args.model))
    if path.is_file():
        return path, f"`{path}`"
    if not args.calibrate_data:
        return None, f"{path} not found; pass --int8 PATH or --calibrate-data DIR"
    from matseg_ros.training.quantize import quantize_int8

    made = tmp / f"{Path(args.model).stem}.int8.onnx"
    meta = quantize_int8(args.model, made, args.calibrate_data, "train", args.calibrate_count)
    return made, (f"made for this run: calibrated on {meta.calibration['count']} images of "
                  f"`{args.calibrate_data}` (train)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default.onnx"), help="fp32 ONNX model")
    parser.add_argument("--int8", help="int8 model (default: the model's <stem>.int8.onnx)")
    parser.add_argument("--calibrate-data", help="dataset to make the int8 model from when it is missing")
    parser.add_argument("--calibrate-count", type=int, default=300)
    parser.add_argument("--checkpoint", default=str(ROOT / "models" / "default.pt"),
                        help="checkpoint for the torch engine on a GPU")
    parser.add_argument("--data", type=Path, help="HRIM2021-layout dataset: mIoU of fp32 and int8")
    parser.add_argument("--split", default="val")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--output", help="markdown file (e.g. docs/benchmarks/inference.md)")
    args, _ = parser.parse_known_args()  # tolerate bench/run_all.py's shared arguments
    import onnxruntime as ort
    import torch

    frames = sample_sequence(6, FRAME_SIZE)
    frame = frames[-1]  # a synthetic material scene
    lines = ["## Inference: uint8 640×480 frame to ids and colour mask (`bench/inference.py`)", "",
             f"Machine: {cpu_name()}, {os.cpu_count()} cores, GPU: {gpu_name()}; onnxruntime "
             f"{ort.__version__}, torch {torch.__version__}.", load_line("at the start"), ""]
    with tempfile.TemporaryDirectory(prefix="matseg-bench-") as tmp:
        int8, origin = int8_path(args, Path(tmp))
        fp32 = load_engine(args.model, device="cpu", precision="fp32")
        lut = fp32.classes.palette_lut()
        cpu = {"ORT CPU fp32": fp32}
        if int8 is not None:
            cpu["ORT CPU int8"] = load_engine(int8, device="cpu")
        lines += ["### CPU", "", f"Model `{args.model}` (input {fp32.metadata.input_size[1]}×"
                  f"{fp32.metadata.input_size[0]}); int8: {origin}.", ""]
        lines += speed_table(cpu, frame, lut, args.repeats, "ORT CPU fp32")
        lines += ["### ONNX Runtime intra-op threads on this CPU", ""]
        lines += thread_table({name: Path(args.model) if "fp32" in name else int8 for name in cpu},
                              frame, lut, args.repeats)
        gpu, notes = gpu_engines(Path(args.model), Path(args.checkpoint)) if torch.cuda.is_available() \
            else ({}, ["GPU: not measured (torch sees no CUDA device)"])
        if gpu:
            lines += ["### GPU", ""] + speed_table(gpu, frame, lut, args.repeats, next(iter(gpu)))
        lines += [f"- {note}" for note in notes] + [""]
        lines += ["### Several cameras: one batch against single calls", ""]
        lines += batch_table({**cpu, **gpu}, frames, lut, args.repeats)
        if args.data:
            lines += accuracy_lines(cpu, args.data, args.split)
    lines += [load_line("at the end"), ""]
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
