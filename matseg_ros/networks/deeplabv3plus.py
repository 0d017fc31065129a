"""DeepLabV3+ (Chen et al. 2018): ASPP with image pooling on the encoder's last stage,
a 48-channel projection of the stride-4 features, two 3×3×256 decoder convolutions."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .layers import conv_bn_relu, resize_like

ASPP_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


class ASPP(nn.Module):
    """1×1, three atrous 3×3 and an image-pooling branch, concatenated and projected."""

    def __init__(self, in_channels: int, rates: Sequence[int], channels: int = 256,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, channels, 1)]
            + [conv_bn_relu(in_channels, channels, 3, dilation=r) for r in rates])
        self.image_pool = conv_bn_relu(in_channels, channels, 1)
        self.project = nn.Sequential(conv_bn_relu(channels * (len(rates) + 2), channels, 1),
                                     nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = self.image_pool(x.mean(dim=(2, 3), keepdim=True))
        outs.append(pooled.expand_as(outs[0]))  # bilinear upsampling of a 1×1 map is a broadcast
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3PlusDecoder(nn.Module):
    def __init__(self, encoder_channels: Sequence[int], output_stride: int = 16,
                 aspp_channels: int = 256, low_level_channels: int = 48) -> None:
        super().__init__()
        if output_stride not in ASPP_RATES:
            raise ValueError(f"DeepLab output_stride must be 8 or 16, got {output_stride!r}")
        self.aspp = ASPP(encoder_channels[-1], ASPP_RATES[output_stride], aspp_channels)
        self.low_level = conv_bn_relu(encoder_channels[1], low_level_channels, 1)
        self.fuse = nn.Sequential(
            conv_bn_relu(aspp_channels + low_level_channels, 256, 3),
            conv_bn_relu(256, 256, 3),
        )
        self.out_channels = 256

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        low = self.low_level(features[1])
        high = resize_like(self.aspp(features[-1]), low)
        return self.fuse(torch.cat([high, low], dim=1))


class DeepLabV3Plus(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "resnet101", output_stride: int = 16) -> None:
        if output_stride not in ASPP_RATES:
            raise ValueError(f"DeepLab output_stride must be 8 or 16, got {output_stride!r}")
        encoder = get_encoder(backbone, output_stride)
        decoder = DeepLabV3PlusDecoder(encoder.out_channels, output_stride)
        super().__init__(encoder, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1))
