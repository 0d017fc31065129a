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

`--int8 --calibrate-data DATA_DIR` writes a statically quantised int8 model for ONNX Runtime's
CPU provider instead (`quantize`): from a checkpoint (exported and checked in fp32 first) or
from an fp32 ONNX file given as `--model`. It prints how often its class ids agree with the
fp32 model's on images calibration did not see.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_path
from ..runtime.checkpoint import (CheckpointError, load_checkpoint, model_from_checkpoint,
                                  save_checkpoint)
from ..runtime.modelmeta import INPUT_NAME, OUTPUT_NAME, ModelMetadata, ModelMetadataError
from .bn_calibration import recalibrate_on_dataset
from .quantize import AGREEMENT_IMAGES, held_out_ids, id_agreement, quantize_int8

TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}  # max |ort − torch| / max |torch|
INT8_AGREEMENT_WARNING = 0.95  # below this share of equal ids, the int8 file deserves a look


class ParityError(RuntimeError):
    """The exported ONNX model does not reproduce PyTorch's output."""


CHECKPOINT_SUFFIXES = (".pt", ".pth")
SLIM_KEYS = ("model", "arch_args", "config", "epoch", "metrics")  # plus the metadata entries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True,
                        help="training checkpoint (.pt/.pth); with --int8 also an fp32 ONNX model")
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
    parser.add_argument("--int8", action="store_true",
                        help="write a statically quantised int8 model for ONNX Runtime's CPU provider "
                        "(needs --calibrate-data)")
    parser.add_argument("--calibrate-data", metavar="DATA_DIR",
                        help="HRIM2021-layout dataset whose images calibrate the int8 ranges")
    parser.add_argument("--calibrate-split", default="train",
                        help="split of --calibrate-data to calibrate on (default train)")
    parser.add_argument("--calibrate-count", type=int, default=300,
                        help="images to calibrate int8 ranges on (default 300)")
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


def option_error(args: argparse.Namespace) -> str | None:
    """Options that contradict each other, or None."""
    onnx_model = Path(args.model).suffix.lower() == ".onnx"
    if args.int8 and not args.calibrate_data:
        return "--int8 needs --calibrate-data DATA_DIR (images to calibrate the int8 ranges on)"
    if args.calibrate_data and not args.int8:
        return "--calibrate-data applies to --int8"
    if args.int8 and (args.fp16 or Path(args.output).suffix.lower() != ".onnx"):
        return "--int8 writes an ONNX file (--output *.onnx) and excludes --fp16"
    if onnx_model and not args.int8:
        return f"{args.model}: an ONNX --model can only be quantised (--int8); export from a checkpoint"
    if onnx_model and args.calibrate_bn:
        return "--calibrate-bn needs a checkpoint as --model, not an ONNX file"
    return None


def export_checked(model: torch.nn.Module, meta: ModelMetadata, path: Path, fp16: bool,
                   opset: int) -> dict[tuple[int, int], tuple[float, float]]:
    """Export to `path` and compare ONNX Runtime with PyTorch on two input sizes: the trace
    size (kept small for a quick CPU check) and one of another aspect (the spatial axes must
    really be dynamic). Raises ParityError beyond the tolerance."""
    from .onnx_export import export_onnx

    height, width = meta.input_size
    check = (min(height, 256), min(width, 256))
    other = (max(32, check[0] - 64), max(32, check[1] - 32))
    precision = "fp16" if fp16 else "fp32"
    export_onnx(model, path, example_size=check, opset=opset,
                metadata=dataclasses.replace(meta, precision=precision).to_props())
    if fp16:
        to_fp16(path)
    diffs = {size: compare(model, path, size, fp16) for size in (check, other)}
    worst = max(relative for _, relative in diffs.values())
    if worst > TOLERANCE[precision]:
        raise ParityError(f"ONNX output differs from PyTorch by {worst:.3g} (relative) > "
                          f"{TOLERANCE[precision]}")
    return diffs


def print_parity(diffs: dict[tuple[int, int], tuple[float, float]]) -> None:
    for (h, w), (diff, relative) in diffs.items():
        print(f"ONNX Runtime vs PyTorch on a {h}×{w} input: max |difference| {diff:.3g} "
              f"(relative {relative:.3g})")


def write_int8(args: argparse.Namespace, fp32: Path, out: Path) -> int:
    """Quantise the fp32 ONNX file `fp32` into `out` and report the ids' agreement."""
    try:
        meta = quantize_int8(fp32, out, args.calibrate_data, args.calibrate_split,
                             args.calibrate_count, tuple(args.input_size) if args.input_size else None)
        ids = held_out_ids(args.calibrate_data, args.calibrate_split, args.calibrate_count,
                           AGREEMENT_IMAGES)
        shares = id_agreement(fp32, out, args.calibrate_data, ids) if ids else []
    except ValueError as exc:  # ModelMetadataError, DatasetError, a bad count
        print(f"matseg export: error: --int8: {exc}", file=sys.stderr)
        return 2
    height, width = meta.input_size
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, int8 for ONNX Runtime's CPU provider, "
          f"{meta.architecture}/{meta.backbone or '-'}, input {height}×{width}; calibrated on "
          f"{meta.calibration['count']} images of {args.calibrate_data} ({args.calibrate_split}))")
    if shares:
        print(f"int8 vs fp32 on {len(shares)} images calibration did not see: same class ids on "
              f"{np.mean(shares):.2%} of pixels (worst image {min(shares):.2%})")
        if min(shares) < INT8_AGREEMENT_WARNING:
            print(f"matseg export: warning: int8 ids differ from fp32 on more than "
                  f"{1 - INT8_AGREEMENT_WARNING:.0%} of some image's pixels; compare their mIoU "
                  "(bench/inference.py --data) before deploying it", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    error = option_error(args)
    if error:
        print(f"matseg export: error: {error}", file=sys.stderr)
        return 2
    out = Path(args.output)
    if Path(args.model).suffix.lower() == ".onnx":
        if not Path(args.model).is_file():
            print(f"matseg export: error: {args.model}: model file not found", file=sys.stderr)
            return 2
        return write_int8(args, Path(args.model), out)
    try:
        ckpt = load_checkpoint(args.model)
        model, meta = model_from_checkpoint(ckpt, args.model)
    except (CheckpointError, ModelMetadataError) as exc:
        print(f"matseg export: error: {exc}", file=sys.stderr)
        return 2
    if args.input_size:
        meta = dataclasses.replace(meta, input_size=tuple(args.input_size))
    height, width = meta.input_size
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
    try:
        if args.int8:  # the fp32 file only lives as long as its quantisation takes
            with tempfile.TemporaryDirectory(prefix="matseg-export-") as tmp:
                fp32 = Path(tmp) / f"{out.stem}.fp32.onnx"
                print_parity(export_checked(model, meta, fp32, False, args.opset))
                return write_int8(args, fp32, out)
        with atomic_path(out) as tmp:  # an earlier file stays until the new one passes the check
            diffs = export_checked(model, meta, tmp, args.fp16, args.opset)
            size_mb = tmp.stat().st_size / 1e6
    except ParityError as exc:
        print(f"matseg export: error: {exc}; {out} not written", file=sys.stderr)
        return 1
    print(f"wrote {out} ({size_mb:.1f} MB, {'fp16' if args.fp16 else 'fp32'}, {meta.architecture}/"
          f"{meta.backbone or '-'}, {len(meta.classes)} classes, input {height}×{width})")
    print_parity(diffs)
    return 0
