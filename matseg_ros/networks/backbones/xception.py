"""Aligned Xception as modified in DeepLabV3+ (Chen et al. 2018, Fig. 4).

Every max pooling is replaced by a strided separable convolution, BN + ReLU after each depthwise
convolution, 16 middle-flow blocks, and dilation instead of stride for output stride 8/16."""
from __future__ import annotations

import torch
from torch import nn


class SeparableConv(nn.Module):
    """Depthwise 3×3 → BN → ReLU → pointwise 1×1 → BN."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, padding=dilation,
                                   dilation=dilation, groups=in_channels, bias=False)
        self.bn_depth = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn_point = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn_point(self.pointwise(self.relu(self.bn_depth(self.depthwise(x)))))


class XceptionBlock(nn.Module):
    """Three (ReLU → separable conv) units, the last possibly strided, plus a residual
    (1×1 strided conv + BN when the shape changes, identity otherwise)."""

    def __init__(self, in_channels: int, channels: tuple[int, int, int], stride: int = 1,
                 dilation: int = 1) -> None:
        super().__init__()
        units = []
        previous = in_channels
        for i, out in enumerate(channels):
            units += [nn.ReLU(inplace=False),
                      SeparableConv(previous, out, stride if i == 2 else 1, dilation)]
            previous = out
        self.units = nn.Sequential(*units)
        self.skip = None
        if stride != 1 or in_channels != channels[-1]:
            self.skip = nn.Sequential(nn.Conv2d(in_channels, channels[-1], 1, stride, bias=False),
                                      nn.BatchNorm2d(channels[-1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.skip is None else self.skip(x)
        return self.units(x) + identity


class Xception(nn.Module):
    """`forward(x)` → [stem (2), entry block1 (4), block2 (8), middle flow (16), exit flow
    (32)], strides capped at `output_stride` (8, 16 or 32)."""

    def __init__(self, output_stride: int = 16, middle_blocks: int = 16) -> None:
        super().__init__()
        settings = {  # entry block3 stride, middle dilation, exit block stride, exit dilations
            32: (2, 1, 2, (1, 1)),
            16: (2, 1, 1, (1, 2)),
            8: (1, 2, 1, (2, 4)),
        }
        if output_stride not in settings:
            raise ValueError(f"Xception output_stride must be 8, 16 or 32, got {output_stride!r}")
        entry3_stride, middle_dilation, exit_stride, (exit_dilation, tail_dilation) = settings[output_stride]
        self.stem = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        )
        self.block1 = XceptionBlock(64, (128, 128, 128), stride=2)
        self.block2 = XceptionBlock(128, (256, 256, 256), stride=2)
        self.block3 = XceptionBlock(256, (728, 728, 728), stride=entry3_stride)
        self.middle = nn.Sequential(*[XceptionBlock(728, (728, 728, 728), dilation=middle_dilation)
                                      for _ in range(middle_blocks)])
        self.exit_block = XceptionBlock(728, (728, 1024, 1024), stride=exit_stride, dilation=exit_dilation)
        self.exit_tail = nn.Sequential(
            SeparableConv(1024, 1536, dilation=tail_dilation), nn.ReLU(inplace=True),
            SeparableConv(1536, 1536, dilation=tail_dilation), nn.ReLU(inplace=True),
            SeparableConv(1536, 2048, dilation=tail_dilation), nn.ReLU(inplace=True),
        )
        self.out_channels = (64, 128, 256, 728, 2048)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.stem(x)
        c2 = self.block1(stem)
        c3 = self.block2(c2)
        c4 = self.middle(self.block3(c3))
        c5 = self.exit_tail(self.exit_block(c4))
        return [stem, c2, c3, c4, c5]
