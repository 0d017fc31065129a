"""MobileNetV2 (Sandler et al. 2018) with torchvision's exact parameter names (`features.N`).

An ImageNet `mobilenet_v2` state dict saved by torchvision loads as is (its classifier and
the final 1×1 expansion, `features.18`, are left out: segmentation decoders read the
stages). Dilation instead of stride for output stride 16/8.
"""
from __future__ import annotations

import torch
from torch import nn

# (expansion t, channels c, repeats n, stride s) of the paper's Table 2
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))


class ConvBNReLU6(nn.Sequential):
    def __init__(self, inp: int, oup: int, kernel: int = 3, stride: int = 1, groups: int = 1,
                 dilation: int = 1) -> None:
        padding = dilation * (kernel - 1) // 2
        super().__init__(nn.Conv2d(inp, oup, kernel, stride, padding, dilation, groups, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand: int, dilation: int = 1) -> None:
        super().__init__()
        hidden = inp * expand
        self.use_residual = stride == 1 and inp == oup
        layers: list[nn.Module] = [ConvBNReLU6(inp, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden, dilation=dilation),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    """`forward(x)` → features at strides [2, 4, 8, 16, 32] (16, 24, 32, 96, 320 channels),
    strides capped at `output_stride`."""

    def __init__(self, output_stride: int = 32) -> None:
        super().__init__()
        if output_stride not in (8, 16, 32):
            raise ValueError(f"MobileNetV2 output_stride must be 8, 16 or 32, got {output_stride!r}")
        layers: list[nn.Module] = [ConvBNReLU6(3, 32, stride=2)]
        self.taps: list[int] = []
        inp, stride_now, dilation = 32, 2, 1
        for t, c, n, s in SETTINGS:
            if s == 2 and stride_now >= output_stride:
                s, dilation_next = 1, dilation * 2
            else:
                dilation_next = dilation
            if s == 2:
                stride_now *= 2
            for i in range(n):
                layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t,
                                               dilation if i == 0 else dilation_next))
                inp = c
            dilation = dilation_next
            self.taps.append(len(layers) - 1)
        self.features = nn.Sequential(*layers)
        # the last block of each stride: 16 (s2), 24 (s4), 32 (s8), 96 (s16), 320 (s32)
        self.taps = [self.taps[i] for i in (0, 1, 2, 4, 6)]
        self.out_channels = (16, 24, 32, 96, 320)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out
