"""Encoder registry: name → constructor of a module whose forward returns features by
stride and which has `out_channels` (one entry per feature)."""
from __future__ import annotations

from typing import Callable

from torch import nn

from .mobilenet import MobileNetV2
from .resnet import ResNet
from .vgg import VGG
from .xception import Xception

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")



def _resnet(depth: int) -> Callable[[int], nn.Module]:
    return lambda output_stride: ResNet(depth, output_stride)


def _vgg(batch_norm: bool) -> Callable[[int], nn.Module]:
    def build(output_stride: int) -> nn.Module:
        if output_stride != 32:
            raise ValueError(f"VGG encoders have output stride 32 only, got {output_stride!r}")
        return VGG(batch_norm=batch_norm)
    return build


# name → constructor taking the output stride
ENCODERS: dict[str, Callable[[int], nn.Module]] = {
    **{name: _resnet(int(name[len("resnet"):])) for name in RESNETS},
    "xception": Xception,
    "mobilenetv2": MobileNetV2,
    "vgg16": _vgg(False),
    "vgg16_bn": _vgg(True),
}


def get_encoder(name: str, output_stride: int = 32) -> nn.Module:
    if name not in ENCODERS:
        raise KeyError(f"unknown backbone {name!r}; valid: {sorted(ENCODERS)}")
    return ENCODERS[name](output_stride)


__all__ = ["ENCODERS", "RESNETS", "MobileNetV2", "ResNet", "VGG", "Xception", "get_encoder"]
