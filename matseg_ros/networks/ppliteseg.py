"""PP-LiteSeg (Peng et al. 2022): a real-time network with a light encoder, pyramid pooling
for global context and an attention-fused decoder.

The simple pyramid pooling module (SPPM) sums pooled context; the flexible lightweight
decoder fuses strides 32 → 16 → 8 with unified attention fusion modules (spatial attention).

The encoder is a ResNet-18/34 or MobileNetV2 with torchvision parameter names, so an
ImageNet file loads with `pretrained=`; the paper's STDC encoder is not on that list.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .layers import adaptive_avg_pool, conv_bn_relu, resize_like


class SPPM(nn.Module):
    """Pool to each bin size, project, upsample and *sum* (not concatenate), then one 3×3."""

    def __init__(self, in_channels: int, channels: int = 128, out_channels: int = 128,
                 bins: Sequence[int] = (1, 2, 4)) -> None:
        super().__init__()
        self.bins = tuple(bins)
        self.stages = nn.ModuleList([conv_bn_relu(in_channels, channels, 1) for _ in self.bins])
        self.out = conv_bn_relu(channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for bins, stage in zip(self.bins, self.stages):
            y = resize_like(stage(adaptive_avg_pool(x, bins)), x)
            total = y if total is None else total + y
        return self.out(total)


class UAFM(nn.Module):
    """Unified attention fusion (spatial): α from the channel mean and max of both inputs;
    out = conv(high·α + low·(1 − α)), `high` upsampled to `low`'s size."""

    def __init__(self, low_channels: int, high_channels: int, out_channels: int) -> None:
        super().__init__()
        self.low = conv_bn_relu(low_channels, high_channels, 3)
        self.attention = nn.Sequential(conv_bn_relu(4, 2, 3),
                                       nn.Conv2d(2, 1, 3, padding=1, bias=False), nn.BatchNorm2d(1))
        self.out = conv_bn_relu(high_channels, out_channels, 3)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        low = self.low(low)
        high = resize_like(high, low)
        stats = torch.cat([low.mean(dim=1, keepdim=True), low.amax(dim=1, keepdim=True),
                           high.mean(dim=1, keepdim=True), high.amax(dim=1, keepdim=True)], dim=1)
        alpha = torch.sigmoid(self.attention(stats))
        return self.out(high * alpha + low * (1 - alpha))


class FLDDecoder(nn.Module):
    """SPPM on stride 32, then UAFM to stride 16 and to stride 8 (channels narrowing)."""

    def __init__(self, in_channels: Sequence[int], channels: Sequence[int] = (128, 96, 64)) -> None:
        super().__init__()
        c8, c16, c32 = in_channels
        self.sppm = SPPM(c32, channels[0], channels[0])
        self.fuse16 = UAFM(c16, channels[0], channels[1])
        self.fuse8 = UAFM(c8, channels[1], channels[2])
        self.out_channels = channels[2]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        f8, f16, f32 = features[-3:]
        return self.fuse8(f8, self.fuse16(f16, self.sppm(f32)))


class PPLiteSeg(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "resnet18",
                 decoder_channels: Sequence[int] = (128, 96, 64), head_channels: int = 64) -> None:
        if len(decoder_channels) != 3 or any(c <= 0 for c in decoder_channels):
            raise ValueError(f"decoder_channels must be 3 positive widths (strides 32, 16, 8), "
                             f"got {decoder_channels!r}")
        encoder = get_encoder(backbone, 32)
        decoder = FLDDecoder(encoder.out_channels[-3:], decoder_channels)
        head = nn.Sequential(conv_bn_relu(decoder.out_channels, head_channels, 3),
                             nn.Conv2d(head_channels, num_classes, 1))
        super().__init__(encoder, decoder, head)
