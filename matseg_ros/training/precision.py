"""Numeric precision of a training run: fp16 AMP on CUDA, bf16 autocast + channels_last on a CPU.

bf16 pays on a CPU only where its matrix units do the work (AMX tiles, AVX-512 BF16) and
only for networks whose time goes to convolutions: a small, memory-bound network can run
slower in bf16. `trainer.cpu_precision: auto` therefore times a few real training steps
both ways on the run's own model and crop size and keeps the faster, logging why.
Weights, optimizer state and validation stay fp32 either way: autocast computes matrix
products in bf16 and the rest in fp32, and bf16 needs no loss scaling.
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from .config import CPU_PRECISIONS

TRIAL_STEPS = 3  # timed steps per precision (after one warm-up step each) for `auto`


class Precision(NamedTuple):
    """What a run computes in: autocast dtype (None = fp32), channels_last, and why."""
    dtype: torch.dtype | None
    channels_last: bool
    reason: str

    @property
    def label(self) -> str:
        return {None: "fp32", torch.float16: "fp16 AMP", torch.bfloat16: "bf16"}[self.dtype] + (
            " + channels_last" if self.channels_last else "")


FP32 = Precision(None, False, "")


def cpu_features() -> dict[str, bool]:
    """The CPU's bf16-relevant instruction sets, as torch's dispatcher sees them."""
    caps = torch.cpu.get_capabilities()
    return {"avx512_bf16": bool(caps.get("avx512_bf16")), "amx_bf16": bool(caps.get("amx_bf16"))}


def cpu_bf16_support() -> tuple[bool, str]:
    """(bf16 has hardware support here, a phrase naming it) for log lines and benchmarks."""
    feats = cpu_features()
    if feats["amx_bf16"]:
        return True, "AMX-BF16"
    if feats["avx512_bf16"]:
        return True, "AVX-512 BF16, no AMX"
    return False, "neither AMX-BF16 nor AVX-512 BF16"


def autocast(device: torch.device, precision: Precision):
    """The autocast context of `precision` on `device` (a no-op for fp32)."""
    if precision.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.dtype)


def to_memory_format(tensor: torch.Tensor, precision: Precision) -> torch.Tensor:
    return tensor.contiguous(memory_format=torch.channels_last) if precision.channels_last else tensor


def step_seconds(model: nn.Module, criterion: Callable, batch: tuple[torch.Tensor, torch.Tensor],
                 precision: Precision, steps: int = TRIAL_STEPS) -> float:
    """Median seconds of the training step's forward + loss + backward on `batch` (a copy
    of the model, so the run's weights and BatchNorm statistics are untouched)."""
    from .loop import training_loss  # loop imports this module

    trial = copy.deepcopy(model).train()
    if precision.channels_last:
        trial = trial.to(memory_format=torch.channels_last)
    image, target = to_memory_format(batch[0], precision), batch[1]
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        loss = training_loss(trial, criterion, image, target, precision)
        loss.backward()
        trial.zero_grad(set_to_none=True)
        if i:  # the first step warms up oneDNN's kernels
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def choose(setting: str, device: torch.device, cuda_amp: bool, model: nn.Module | None = None,
           criterion: Callable | None = None, batch: tuple[torch.Tensor, torch.Tensor] | None = None,
           ) -> Precision:
    """The precision for `trainer.cpu_precision` = `setting` (CUDA: fp16 AMP if `cuda_amp`).

    `auto` on a CPU measures `model` on `batch` in fp32 and bf16 (needs all three)."""
    if setting not in CPU_PRECISIONS:
        raise ValueError(f"trainer.cpu_precision must be one of {', '.join(CPU_PRECISIONS)}, "
                         f"not {setting!r}")
    if device.type == "cuda":
        return Precision(torch.float16, False, "trainer.amp on CUDA") if cuda_amp else \
            Precision(None, False, "trainer.amp is false")
    supported, features = cpu_bf16_support()
    if setting == "fp32":
        return Precision(None, False, "trainer.cpu_precision is fp32")
    bf16 = Precision(torch.bfloat16, True, "")
    if setting == "bf16":
        why = "" if supported else f" (this CPU has {features}: emulated, expect it slower)"
        return bf16._replace(reason=f"trainer.cpu_precision is bf16{why}")
    if not supported:
        return Precision(None, False, f"auto: the CPU has {features}")
    if model is None or criterion is None or batch is None:
        raise ValueError("cpu_precision auto needs a model, a criterion and a batch to time")
    t32 = step_seconds(model, criterion, batch, FP32)
    t16 = step_seconds(model, criterion, batch, bf16)
    shape = "×".join(str(s) for s in batch[0].shape)
    timing = f"{t16:.3f} s bf16+channels_last vs {t32:.3f} s fp32 per step on {shape} ({features})"
    if t16 < t32:
        return bf16._replace(reason=f"auto: {timing}")
    return Precision(None, False, f"auto: {timing}")


def describe(precision: Precision) -> dict[str, Any]:
    """For logs and checkpoints: the precision's label and why it was chosen."""
    return {"precision": precision.label, "reason": precision.reason}
