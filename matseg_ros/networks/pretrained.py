"""Loading ImageNet backbone weights from a local file (never a download)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What a backbone checkpoint did not match: keys the encoder expected but the file
    lacks, and keys in the file the encoder has no use for (e.g. a classifier's `fc.*`)."""
    source: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def _state_dict_from(obj: object, source: str) -> dict[str, torch.Tensor]:
    """A torchvision file is a bare state dict; training checkpoints wrap it."""
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{source}: not a state dict (a mapping of parameter names to tensors)")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in the local file `path` (`weights_only` load, wrappers removed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained backbone weights {str(path)!r} not found "
                                "(give a local file; nothing is downloaded)")
    return _state_dict_from(torch.load(path, map_location="cpu", weights_only=True), str(path))


def load_backbone_weights(encoder: nn.Module, path: str | os.PathLike,
                          state: dict[str, torch.Tensor] | None = None) -> LoadReport:
    """Load `path` (or `state`, already read from it) into `encoder` by name; shapes must
    agree, other mismatches are reported (logged as warnings and returned) rather than
    fatal, as ImageNet files carry a classifier."""
    if state is None:
        state = read_state_dict(path)
    own = encoder.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
             for k, v in state.items() if k in own and own[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{path}: tensors with the wrong shape for this backbone: {wrong[:5]}"
                         f"{' …' if len(wrong) > 5 else ''}")
    result = encoder.load_state_dict(state, strict=False)
    report = LoadReport(str(path), list(result.missing_keys), list(result.unexpected_keys))
    if report.missing:
        log.warning("%s: %d backbone tensors missing from the file (left at their initial "
                    "values): %s", path, len(report.missing), report.missing)
    if report.unexpected:
        log.warning("%s: %d tensors in the file unused by the backbone: %s", path,
                    len(report.unexpected), report.unexpected)
    return report
