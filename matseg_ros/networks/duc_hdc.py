"""DeepLab_DUC_HDC (Wang et al. 2018, 'Understanding Convolution for Semantic Segmentation').

A ResNet at output stride 8 whose stage-3/4 dilation rates follow the
hybrid dilated convolution sawtooth (1, 2, 3 … and 3, 4, 5 — no gridding), and a dense
upsampling convolution head: a 3×3 conv to classes × 8² channels rearranged to full
resolution (pixel shuffle) instead of bilinear upsampling."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .layers import conv_bn_relu

HDC_RATES = {"layer3": (1, 2, 3), "layer4": (3, 4, 5)}


def apply_hdc(resnet: nn.Module, rates: dict[str, Sequence[int]] = HDC_RATES) -> None:
    """Set the 3×3 convolutions' dilation block by block, cycling through `rates`."""
    for layer_name, cycle in rates.items():
        for i, block in enumerate(getattr(resnet, layer_name)):
            d = cycle[i % len(cycle)]
            convs = [block.conv2] if hasattr(block, "conv3") else [block.conv1, block.conv2]
            for conv in convs:
                conv.dilation, conv.padding = (d, d), (d, d)


class DUCHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, upscale: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes * upscale * upscale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))


class LastStage(nn.Module):
    """3×3 conv + BN + ReLU on the deepest features, reducing the channels the DUC sees."""

    def __init__(self, in_channels: int, channels: int = 512) -> None:
        super().__init__()
        self.reduce = conv_bn_relu(in_channels, channels, 3)
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.reduce(features[-1])


class DeepLabDUCHDC(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "resnet101", channels: int = 512) -> None:
        encoder = get_encoder(backbone, 8)
        apply_hdc(encoder)
        decoder = LastStage(encoder.out_channels[-1], channels)
        # Padding to a multiple of 8 makes the stride-8 map exactly 1/8: the DUC output
        # then covers the input pixel for pixel.
        super().__init__(encoder, decoder, DUCHead(channels, num_classes, 8), input_divisor=8)
