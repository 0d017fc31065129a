"""U-Net (Ronneberger et al. 2015), the original and a ResNet-encoder variant with the same
skip-and-fuse decoder.

The original encoder has double 3×3 convs, 64…1024 channels and transposed-conv
upsampling; 'same' padding so the output covers the input."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .layers import conv_bn_relu


def double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(conv_bn_relu(in_channels, out_channels), conv_bn_relu(out_channels, out_channels))


class UNetEncoder(nn.Module):
    """The paper's contracting path: [64 (1), 128 (2), 256 (4), 512 (8), 1024 (16)]."""

    def __init__(self, channels: Sequence[int] = (64, 128, 256, 512, 1024)) -> None:
        super().__init__()
        self.out_channels = tuple(channels)
        self.stages = nn.ModuleList([double_conv(3, channels[0])] + [
            nn.Sequential(nn.MaxPool2d(2), double_conv(a, b)) for a, b in zip(channels, channels[1:])])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


class UpBlock(nn.Module):
    """Upsample ×2 (transposed conv halving the channels as in the paper, or nearest for
    the ResNet variant), concatenate the skip, double conv. The input is padded to a
    multiple of the encoder's stride, so every level is exactly twice the one below."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, transposed: bool) -> None:
        super().__init__()
        up_channels = in_channels // 2 if transposed else in_channels
        self.up = nn.ConvTranspose2d(in_channels, up_channels, 2, stride=2) if transposed else None
        self.fuse = double_conv(up_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        x = self.up(x) if self.up is not None else F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.fuse(x)


class UNetDecoder(nn.Module):
    """Original: 4 transposed-conv up blocks back to stride 1. ResNet: 5 bilinear up blocks
    (the last, from stride 2 to 1, without a skip — the ResNet has no stride-1 feature)."""

    def __init__(self, encoder_channels: Sequence[int], decoder_channels: Sequence[int] | None,
                 transposed: bool) -> None:
        super().__init__()
        self.transposed = transposed
        enc = list(encoder_channels)
        if transposed:
            outs = list(reversed(enc[:-1]))
            skips = list(reversed(enc[:-1]))
        else:
            outs = list(decoder_channels or (256, 128, 64, 32, 16))
            skips = list(reversed(enc[:-1])) + [0]
        ins = [enc[-1]] + outs[:-1]
        self.blocks = nn.ModuleList([UpBlock(i, s, o, transposed) for i, s, o in zip(ins, skips, outs)])
        self.out_channels = outs[-1]

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        skips = list(reversed(features[:-1]))
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return x


class UNet(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str | None = None,
                 decoder_channels: Sequence[int] = (256, 128, 64, 32, 16)) -> None:
        if backbone is None:
            encoder, divisor = UNetEncoder(), 16
        else:
            encoder, divisor = get_encoder(backbone, 32), 32
        decoder = UNetDecoder(encoder.out_channels, decoder_channels, transposed=backbone is None)
        super().__init__(encoder, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1),
                         input_divisor=divisor, pretrained_encoder=backbone is not None)
