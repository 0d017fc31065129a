"""`matseg export`: a training checkpoint to a deployable ONNX model with its metadata.

With an `--output` ending in .pt/.pth it writes a slim checkpoint instead: the weights,
class map, normalisation, input size and training config without the optimizer, scheduler
and RNG states — what `matseg eval`/`infer` and `matseg train --init-weights` need.

The ONNX file carries the class map, normalisation, input size and architecture
(`ModelMetadata.to_props()`), so the node and `matseg infer` need nothing else. Before the
file is put in place, ONNX Runtime is run against PyTorch on inputs of two sizes and the
largest differences printed; a model that disagrees beyond the tolerance is an error and
leaves any earlier file at `--output` untouched.

`--calibrate-bn DATA_DIR` first re-estimates the BatchNorm statistics on whole training images
at the export input size (`bn_calibration`): for a model deployed at another size than it was
trained on, or trained on crops.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_path
from ..runtime.checkpoint import (CheckpointError, load_checkpoint, model_from_checkpoint,
                                  save_checkpoint)
from ..runtime.modelmeta import INPUT_NAME, OUTPUT_NAME, ModelMetadataError
from .bn_calibration import recalibrate_on_dataset

TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}  # max |ort − torch| / max |torch|


class ParityError(RuntimeError):
    """The exported ONNX model does not reproduce PyTorch's output."""
CHECKPOINT_SUFFIXES = (".pt", ".pth")
SLIM_KEYS = ("model", "arch_args", "config", "epoch", "metrics")  # plus the metadata entries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="training checkpoint (.pt/.pth)")
    parser.add_argument("--output", required=True,
                        help="ONNX file to write, or a .pt/.pth slim checkpoint (weights and "
                        "metadata only, for eval/infer and fine-tuning)")
    parser.add_argument("--fp16", action="store_true",
                        help="float16 weights and input/output (for GPUs; half the size)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"),
                        help="input size recorded in the metadata (frames are resized to it); "
                        "default: the checkpoint's")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--calibrate-bn", metavar="DATA_DIR",
                        help="before exporting, re-estimate BatchNorm statistics on whole images of "
                        "this HRIM2021-layout dataset's train split at the input size")
    parser.add_argument("--calibrate-images", type=int, default=400,
                        help="images for --calibrate-bn (default 400)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def to_fp16(path: Path) -> None:
    """Convert a float32 ONNX file to float16 (inputs and outputs too), in place, atomically."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=False)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def compare(model: torch.nn.Module, path: Path, size: tuple[int, int], fp16: bool) -> tuple[float, float]:
    """(max |ort − torch|, that relative to max |torch|) on one random normalised image."""
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, *size, generator=generator)
    with torch.inference_mode():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy().astype(np.float16 if fp16 else np.float32)})[0]
    diff = float(np.abs(got.astype(np.float32) - expected).max())
    return diff, diff / max(float(np.abs(expected).max()), 1e-12)


def run(args: argparse.Namespace) -> int:
    from .onnx_export import export_onnx

    try:
        ckpt = load_checkpoint(args.model)
        model, meta = model_from_checkpoint(ckpt, args.model)
    except (CheckpointError, ModelMetadataError) as exc:
        print(f"matseg export: error: {exc}", file=sys.stderr)
        return 2
    if args.input_size:
        meta = dataclasses.replace(meta, input_size=tuple(args.input_size))
    height, width = meta.input_size
    out = Path(args.output)
    if args.calibrate_bn:
        try:
            seen = recalibrate_on_dataset(model, args.calibrate_bn, meta, args.calibrate_images,
                                          progress=not args.no_progress)
        except ValueError as exc:  # DatasetError: a missing split, image or unreadable file
            print(f"matseg export: error: --calibrate-bn: {exc}", file=sys.stderr)
            return 2
        print(f"BatchNorm statistics re-estimated on {seen} images of {args.calibrate_bn} "
              f"(train split) at {height}×{width}")
    if out.suffix.lower() in CHECKPOINT_SUFFIXES:
        if args.fp16:
            print("matseg export: error: --fp16 applies to ONNX output, not to a checkpoint",
                  file=sys.stderr)
            return 2
        slim = {key: ckpt[key] for key in SLIM_KEYS if key in ckpt}
        slim["model"] = model.state_dict()  # BatchNorm statistics as calibrated, if they were
        save_checkpoint(out, {**slim, **meta.to_checkpoint_entries()})
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB checkpoint, {meta.architecture}/"
              f"{meta.backbone or '-'}, {len(meta.classes)} classes, input {height}×{width}; "
              f"no optimizer state)")
        return 0
    # the trace size (kept small for a quick CPU check) and a second one of another aspect:
    # the exported graph's spatial axes must really be dynamic
    check = (min(height, 256), min(width, 256))
    other = (max(32, check[0] - 64), max(32, check[1] - 32))
    precision = "fp16" if args.fp16 else "fp32"
    try:
        with atomic_path(out) as tmp:  # an earlier file stays until the new one passes the check
            export_onnx(model, tmp, example_size=check, opset=args.opset, metadata=meta.to_props())
            if args.fp16:
                to_fp16(tmp)
            diffs = {size: compare(model, tmp, size, args.fp16) for size in (check, other)}
            size_mb = tmp.stat().st_size / 1e6
            worst = max(relative for _, relative in diffs.values())
            if worst > TOLERANCE[precision]:
                raise ParityError(f"ONNX output differs from PyTorch by {worst:.3g} (relative) > "
                                  f"{TOLERANCE[precision]}; {out} not written")
    except ParityError as exc:
        print(f"matseg export: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({size_mb:.1f} MB, {precision}, {meta.architecture}/{meta.backbone or '-'}, "
          f"{len(meta.classes)} classes, input {height}×{width})")
    for (h, w), (diff, relative) in diffs.items():
        print(f"ONNX Runtime vs PyTorch on a {h}×{w} input: max |difference| {diff:.3g} "
              f"(relative {relative:.3g})")
    return 0
