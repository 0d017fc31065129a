"""SegNet (Badrinarayanan et al. 2017): VGG16-BN encoder whose max-pooling indices drive
the decoder's unpooling; a mirrored decoder of 3×3 conv + BN + ReLU."""
from __future__ import annotations

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .layers import conv_bn_relu, max_unpool

# decoder stages from the deepest: (in channels, conv output channels)
DECODER_STAGES = ((512, (512, 512, 512)), (512, (512, 512, 256)), (256, (256, 256, 128)),
                  (128, (128, 64)), (64, (64,)))


class SegNetDecoder(nn.Module):
    """Unpools with the encoder's indices to each pre-pooling size (odd sizes included),
    then convolves; the pooled features themselves are not skipped across."""

    def __init__(self) -> None:
        super().__init__()
        stages = []
        for in_channels, outs in DECODER_STAGES:
            layers, previous = [], in_channels
            for out in outs:
                layers.append(conv_bn_relu(previous, out))
                previous = out
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.out_channels = DECODER_STAGES[-1][1][-1]

    def forward(self, features: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]) -> torch.Tensor:
        pooled, indices, pre_pool = features
        x = pooled[-1]
        for stage, idx, like in zip(self.stages, reversed(indices), reversed(pre_pool)):
            x = stage(max_unpool(x, idx, like))
        return x


class SegNet(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "vgg16_bn") -> None:
        encoder = get_encoder(backbone)
        encoder.return_indices = True
        decoder = SegNetDecoder()
        super().__init__(encoder, decoder, nn.Conv2d(decoder.out_channels, num_classes, 3, padding=1))
