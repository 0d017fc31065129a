"""`matseg export`: a training checkpoint to a deployable ONNX model with its metadata.

With an `--output` ending in .pt/.pth it writes a slim checkpoint instead: the weights,
class map, normalisation, input size and training config without the optimizer, scheduler
and RNG states — what `matseg eval`/`infer` and `matseg train --init-weights` need.

The ONNX file carries the class map, normalisation, input size and architecture
(`ModelMetadata.to_props()`), so the node and `matseg infer` need nothing else. After
writing, ONNX Runtime is run against PyTorch on the same input and the largest
difference printed; a model that disagrees beyond the tolerance is an error.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import (CheckpointError, load_checkpoint, model_from_checkpoint,
                          save_checkpoint)
from ..fileio import atomic_path
from ..modelmeta import INPUT_NAME, OUTPUT_NAME, ModelMetadataError

TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}  # max |ort − torch| / max |torch|
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
    from ..networks.onnx_export import export_onnx

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
    if out.suffix.lower() in CHECKPOINT_SUFFIXES:
        if args.fp16:
            print("matseg export: error: --fp16 applies to ONNX output, not to a checkpoint",
                  file=sys.stderr)
            return 2
        slim = {key: ckpt[key] for key in SLIM_KEYS if key in ckpt}
        save_checkpoint(out, {**slim, **meta.to_checkpoint_entries()})
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB checkpoint, {meta.architecture}/"
              f"{meta.backbone or '-'}, {len(meta.classes)} classes, input {height}×{width}; "
              f"no optimizer state)")
        return 0
    # a check size that keeps the comparison quick on a CPU, yet exercises the dynamic axes
    check = (min(height, 256), min(width, 256))
    export_onnx(model, out, example_size=check, opset=args.opset, metadata=meta.to_props())
    precision = "fp16" if args.fp16 else "fp32"
    if args.fp16:
        to_fp16(out)
    diff, relative = compare(model, out, check, args.fp16)
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out} ({size_mb:.1f} MB, {precision}, {meta.architecture}/{meta.backbone or '-'}, "
          f"{len(meta.classes)} classes, input {height}×{width})")
    print(f"ONNX Runtime vs PyTorch on a {check[0]}×{check[1]} input: max |difference| {diff:.3g} "
          f"(relative {relative:.3g})")
    if relative > TOLERANCE[precision]:
        print(f"matseg export: error: ONNX output differs from PyTorch by {relative:.3g} (relative) "
              f"> {TOLERANCE[precision]}; {out} removed", file=sys.stderr)
        out.unlink()
        return 1
    return 0
