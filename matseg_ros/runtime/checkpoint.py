"""PyTorch checkpoints: written atomically, read with `weights_only=True`.

A checkpoint is a plain dict (see BRIEF keys below) so it loads without pickled code:
`format`, `model` (state_dict without `module.` prefixes), `arch`, `backbone`,
`arch_args`, `classes`, `mean`, `std`, `input_size`, and for training `config`, `epoch`,
`metrics`, `best_metric`, `optimizer`, `scheduler`, `scaler`, `rng` (`rng_ranks`: every process's).
"""
from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, Mapping

from ..fileio import atomic_path
from .modelmeta import ModelMetadata

FORMAT = "matseg-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file."""


def save_checkpoint(path: str | Path, ckpt: Mapping[str, Any]) -> Path:
    import torch

    path = Path(path)
    data = dict(ckpt)
    data.setdefault("format", FORMAT)
    with atomic_path(path) as tmp:
        torch.save(data, tmp)
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, zipfile.BadZipFile, EOFError, OSError,
            struct.error, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a loadable checkpoint (torch.load with "
                              f"weights_only=True failed: {first})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: expected a matseg checkpoint dict with a 'model' entry")
    if ckpt.get("format", FORMAT) != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {ckpt.get('format')!r}, expected {FORMAT!r}")
    return ckpt


def strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Keys of a DDP/DataParallel-wrapped model, as the bare model names them."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def load_weights(model, state_dict: Mapping[str, Any], source: str, label: str,
                 allow_new: bool = False) -> list[str]:
    """Load a state dict strictly (DDP prefixes stripped); a mismatch names the file and `label`.

    `allow_new` (fine-tuning): parameters the file lacks may stay as built when the model
    declares them function-preserving (`function_preserving` name prefixes, e.g. a context
    branch that starts at zero), so a plain model's weights start the extended one unchanged.
    Returns the names left as built."""
    state = strip_module_prefix(state_dict)
    prefixes = tuple(getattr(model, "function_preserving", ())) if allow_new else ()
    new = [k for k in model.state_dict() if k not in state and prefixes and k.startswith(prefixes)]
    try:
        if new:
            state = {**{k: v for k, v in model.state_dict().items() if k in new}, **state}
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit {label}: "
                              f"{str(exc).splitlines()[0]}") from exc
    return new


def model_from_checkpoint(ckpt: Mapping[str, Any], source: str = "<checkpoint>"):
    """Rebuild the network a checkpoint describes -> (model in eval mode, ModelMetadata)."""
    from ..networks import build_model

    meta = ModelMetadata.from_checkpoint(ckpt, source)
    arch_args = dict(ckpt.get("arch_args") or {})
    for key in ("pretrained", "freeze_bn", "freeze_backbone"):
        arch_args.pop(key, None)  # training-time options; the weights come from the checkpoint
    try:
        model = build_model(meta.architecture, ckpt.get("backbone") or None,
                            num_classes=meta.classes.num_classes, **arch_args)
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{source}: cannot rebuild {meta.architecture!r}: {exc}") from exc
    load_weights(model, ckpt["model"], source, f"{meta.architecture!r}/{ckpt.get('backbone')!r}")
    return model.eval(), meta
