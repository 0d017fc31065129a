"""Encoder registry: name → constructor of a module whose forward returns features by
stride and which has `out_channels` (one entry per feature)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from .resnet import ResNet
from .vgg import VGG
from .xception import Xception

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")

ENCODERS: dict[str, Callable[..., nn.Module]] = {
    **{name: (lambda d: lambda output_stride=32: ResNet(d, output_stride))(int(name[6:]))
       for name in RESNETS},
    "xception": lambda output_stride=16: Xception(output_stride),
    "vgg16": lambda output_stride=32: VGG(batch_norm=False),
    "vgg16_bn": lambda output_stride=32: VGG(batch_norm=True),
}


def get_encoder(name: str, output_stride: int = 32) -> nn.Module:
    if name not in ENCODERS:
        raise KeyError(f"unknown backbone {name!r}; valid: {sorted(ENCODERS)}")
    return ENCODERS[name](output_stride=output_stride)


__all__ = ["ENCODERS", "RESNETS", "ResNet", "VGG", "Xception", "get_encoder"]
