"""PSPNet (Zhao et al. 2017): dilated ResNet (output stride 8), pyramid pooling with bins
1, 2, 3, 6, and an auxiliary head on stage 3 used in training."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .layers import adaptive_avg_pool, conv_bn_relu, resize_like


class PyramidPooling(nn.Module):
    """Pools to each bin size, projects to in/len(bins) channels, upsamples, concatenates
    with the input. Shared with UperNet."""

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.bins = tuple(bins)
        branch_channels = in_channels // len(self.bins)
        self.stages = nn.ModuleList([conv_bn_relu(in_channels, branch_channels, 1) for _ in self.bins])
        self.out_channels = in_channels + branch_channels * len(self.bins)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [x]
        for bins, stage in zip(self.bins, self.stages):
            pyramid.append(resize_like(stage(adaptive_avg_pool(x, bins)), x))
        return torch.cat(pyramid, dim=1)


class PSPDecoder(nn.Module):
    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6), channels: int = 512,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.ppm = PyramidPooling(in_channels, bins)
        self.bottleneck = nn.Sequential(conv_bn_relu(self.ppm.out_channels, channels, 3), nn.Dropout2d(dropout))
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.bottleneck(self.ppm(features[-1]))


def aux_head(in_channels: int, num_classes: int, channels: int = 256) -> nn.Sequential:
    """3×3 conv → BN → ReLU → dropout → 1×1 classifier, on an intermediate stage."""
    return nn.Sequential(conv_bn_relu(in_channels, channels, 3), nn.Dropout2d(0.1),
                         nn.Conv2d(channels, num_classes, 1))


class PSPNet(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "resnet101", output_stride: int = 8,
                 bins: Sequence[int] = (1, 2, 3, 6), use_aux: bool = True) -> None:
        if output_stride not in (8, 16):
            raise ValueError(f"PSPNet output_stride must be 8 or 16, got {output_stride!r}")
        encoder = get_encoder(backbone, output_stride)
        decoder = PSPDecoder(encoder.out_channels[-1], bins)
        aux = aux_head(encoder.out_channels[-2], num_classes) if use_aux else None
        super().__init__(encoder, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1),
                         aux_head=aux, aux_index=-2)
