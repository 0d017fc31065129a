"""UperNet (Xiao et al. 2018): pyramid pooling on the last ResNet stage, an FPN top-down
path over stages 1–3, all levels upsampled to stride 4, concatenated and fused."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .layers import conv_bn_relu, resize_like
from .pspnet import PyramidPooling


class UperNetDecoder(nn.Module):
    def __init__(self, encoder_channels: Sequence[int], channels: int = 256,
                 bins: Sequence[int] = (1, 2, 3, 6)) -> None:
        super().__init__()
        self.ppm = PyramidPooling(encoder_channels[-1], bins)
        self.ppm_out = conv_bn_relu(self.ppm.out_channels, channels, 3)
        lateral = encoder_channels[1:-1]  # layer1…layer3
        self.lateral = nn.ModuleList([conv_bn_relu(c, channels, 1) for c in lateral])
        self.fpn_out = nn.ModuleList([conv_bn_relu(channels, channels, 3) for _ in lateral])
        self.fuse = conv_bn_relu(channels * (len(lateral) + 1), channels, 3)
        self.out_channels = channels

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        top = self.ppm_out(self.ppm(features[-1]))
        outs = [top]
        x = top
        for i in range(len(self.lateral) - 1, -1, -1):
            lat = self.lateral[i](features[i + 1])
            x = lat + resize_like(x, lat)
            outs.insert(0, self.fpn_out[i](x))
        finest = outs[0]
        return self.fuse(torch.cat([finest] + [resize_like(o, finest) for o in outs[1:]], dim=1))


class UperNet(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "resnet101", fpn_channels: int = 256) -> None:
        encoder = get_encoder(backbone, 32)
        decoder = UperNetDecoder(encoder.out_channels, fpn_channels)
        super().__init__(encoder, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1))
