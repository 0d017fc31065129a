"""ONNX export with dynamic height and width, and a parity check against PyTorch.

The TorchScript-based exporter (`dynamo=False`) is the default: with the export-safe
layers of `layers.py` every architecture exports through it with dynamic N, H, W and it
takes ~1 s per model, where the `torch.export`-based exporter (`dynamo=True`, torch's
default) takes ~10 s and needs an example batch > 1 to keep N dynamic. Both produce
models that match PyTorch; `dynamo=True` is offered for when the TorchScript path goes
away.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..fileio import atomic_path
from ..runtime.modelmeta import INPUT_NAME, OUTPUT_NAME


def _example(size: tuple[int, int], batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, *size, generator=generator)


def export_onnx(model: nn.Module, path: str | os.PathLike, example_size: tuple[int, int] = (64, 64),
                opset: int = 17, metadata: dict[str, str] | None = None, dynamo: bool = False) -> Path:
    """Write `model` (in eval mode) to `path` atomically: input `input` N×3×H×W float32,
    output `logits` N×C×H×W, N/H/W dynamic, `metadata` in metadata_props."""
    import onnx

    if opset < 17:
        raise ValueError(f"opset must be >= 17, got {opset}")
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
            if dynamo:
                dims = {0: torch.export.Dim("batch", min=1, max=1024),
                        2: torch.export.Dim("height", min=32, max=8192),
                        3: torch.export.Dim("width", min=32, max=8192)}
                torch.onnx.export(model, (_example(example_size, 2, 0),), str(tmp), input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME], opset_version=opset, dynamo=True,
                                  dynamic_shapes=({**dims},), external_data=False, verbose=False)
            else:
                axes = {0: "batch", 2: "height", 3: "width"}
                torch.onnx.export(model, (_example(example_size, 1, 0),), str(tmp), input_names=[INPUT_NAME],
                                  output_names=[OUTPUT_NAME], opset_version=opset, dynamo=False,
                                  dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes})
            proto = onnx.load(str(tmp))
            if metadata:
                onnx.helper.set_model_props(proto, {str(k): str(v) for k, v in metadata.items()})
            onnx.checker.check_model(proto)
            onnx.save(proto, str(tmp))
    finally:
        model.train(was_training)
    return path


def onnx_parity(model: nn.Module, path: str | os.PathLike, size: tuple[int, int], batch: int = 1,
                seed: int = 1) -> float:
    """max |onnx − torch| / max |torch| on a random input of `size` (CPU provider)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = _example(size, batch, seed)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(x).numpy()
    finally:
        model.train(was_training)
    got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
    if got.shape != expected.shape:
        raise AssertionError(f"{path}: ONNX output {got.shape} vs PyTorch {expected.shape}")
    return float(np.abs(got - expected).max() / max(float(np.abs(expected).max()), 1e-12))
