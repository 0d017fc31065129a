"""GCN (Peng et al. 2017, 'Large Kernel Matters').

A global convolution (k×1+1×k and 1×k+k×1, k=15) to class scores on each ResNet stage, boundary refinement residual blocks,
and learned ×2 deconvolutions fusing from the deepest stage up to the input resolution."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .fcn import bilinear_transposed_conv


class GlobalConv(nn.Module):
    """A dense k×k receptive field at O(k) cost; no BN/ReLU, as in the paper."""

    def __init__(self, in_channels: int, out_channels: int, k: int = 15) -> None:
        super().__init__()
        p = k // 2
        self.left = nn.Sequential(nn.Conv2d(in_channels, out_channels, (k, 1), padding=(p, 0)),
                                  nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, p)))
        self.right = nn.Sequential(nn.Conv2d(in_channels, out_channels, (1, k), padding=(0, p)),
                                   nn.Conv2d(out_channels, out_channels, (k, 1), padding=(p, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left(x) + self.right(x)


class BoundaryRefine(nn.Module):
    """x + conv(relu(conv(x))): a residual that sharpens object boundaries."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GCNDecoder(nn.Module):
    """Scores at strides 4…32, fused top-down; ends at stride 2 (the head goes to 1)."""

    def __init__(self, encoder_channels: Sequence[int], num_classes: int, k: int = 15) -> None:
        super().__init__()
        stages = encoder_channels[1:]  # layer1…layer4
        self.gcn = nn.ModuleList([GlobalConv(c, num_classes, k) for c in stages])
        self.br_score = nn.ModuleList([BoundaryRefine(num_classes) for _ in stages])
        self.br_fuse = nn.ModuleList([BoundaryRefine(num_classes) for _ in stages])
        self.up = nn.ModuleList([bilinear_transposed_conv(num_classes, 4, 2) for _ in stages])

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        scores = [br(gcn(f)) for gcn, br, f in zip(self.gcn, self.br_score, features[1:])]
        x = self.up[-1](scores[-1])
        for i in range(len(scores) - 2, -1, -1):
            x = self.up[i](self.br_fuse[i](x + scores[i]))
        return self.br_fuse[-1](x)


class GCN(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "resnet50", kernel_size: int = 15) -> None:
        encoder = get_encoder(backbone, 32)
        head = nn.Sequential(bilinear_transposed_conv(num_classes, 4, 2), BoundaryRefine(num_classes))
        super().__init__(encoder, GCNDecoder(encoder.out_channels, num_classes, kernel_size), head,
                         input_divisor=32)
