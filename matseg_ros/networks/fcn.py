"""FCN-8s (Long et al. 2015), the all-at-once variant.

VGG16 with fc6/fc7 as convolutions, class scores from pool3/pool4 (scaled by 1e-4 / 1e-2) fused through bilinear-initialised
transposed convolutions. The input is padded to a multiple of 32 instead of the paper's
100-pixel padding and crop, so every fusion lines up exactly.

With an ImageNet VGG16 file, fc6/fc7 start from its classifier as in the paper: the
25088→4096 `classifier.0` becomes the 7×7 convolution over pool5's 512 channels and the
4096→4096 `classifier.3` the 1×1 one (the same numbers, reshaped)."""
from __future__ import annotations

import logging
import os

import torch
from torch import nn

from .backbones import get_encoder
from .base import SegmentationModel
from .pretrained import LoadReport, load_backbone_weights, read_state_dict

log = logging.getLogger(__name__)
FC_KEYS = {"classifier.0": 0, "classifier.3": 3}  # torchvision VGG key → index in decoder.fc


def bilinear_transposed_conv(channels: int, kernel_size: int, stride: int) -> nn.ConvTranspose2d:
    """Per-channel transposed conv initialised to bilinear upsampling by `stride`."""
    conv = nn.ConvTranspose2d(channels, channels, kernel_size, stride, padding=(kernel_size - stride) // 2,
                              bias=False)
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    kernel = filt[:, None] * filt[None, :]
    with torch.no_grad():
        conv.weight.zero_()
        for c in range(channels):
            conv.weight[c, c] = kernel
    return conv


class FCN8sDecoder(nn.Module):
    def __init__(self, num_classes: int, fc_channels: int = 4096, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc = nn.Sequential(
            nn.Conv2d(512, fc_channels, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
            nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout),
        )
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.upscore2 = bilinear_transposed_conv(num_classes, 4, 2)
        self.upscore_pool4 = bilinear_transposed_conv(num_classes, 4, 2)
        for conv in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(conv.weight)  # as the reference FCN: scores start at zero
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        pool3, pool4, pool5 = features[2], features[3], features[4]
        x = self.upscore2(self.score_fr(self.fc(pool5)))
        x = self.upscore_pool4(x + self.score_pool4(pool4 * 0.01))
        return x + self.score_pool3(pool3 * 0.0001)


class FCN8s(SegmentationModel):
    def __init__(self, num_classes: int, backbone: str = "vgg16", fc_channels: int = 4096) -> None:
        super().__init__(get_encoder(backbone), FCN8sDecoder(num_classes, fc_channels),
                         bilinear_transposed_conv(num_classes, 16, 8), input_divisor=32)

    def load_pretrained(self, path: str | os.PathLike) -> LoadReport:
        """The VGG16 features into the encoder, and fc6/fc7 from the classifier when the
        file has one of this model's width (`fc_channels`); those keys are then used,
        not reported as unexpected."""
        state = read_state_dict(path)
        fc = self.decoder.fc
        wanted = {key: fc[index] for key, index in FC_KEYS.items()}
        shapes = {key: (state[f"{key}.weight"].shape, state[f"{key}.bias"].shape)
                  for key in wanted if f"{key}.weight" in state and f"{key}.bias" in state}
        expected = {key: (torch.Size([conv.out_channels, conv.weight[0].numel()]),
                          torch.Size([conv.out_channels])) for key, conv in wanted.items()}
        if shapes == expected:
            with torch.no_grad():
                for key, conv in wanted.items():
                    conv.weight.copy_(state.pop(f"{key}.weight").view_as(conv.weight))
                    conv.bias.copy_(state.pop(f"{key}.bias"))
        elif shapes:
            log.warning("%s: fc6/fc7 not initialised from the classifier: file %s, this model "
                        "(fc_channels %d) needs %s", path, shapes, fc[0].out_channels, expected)
        return load_backbone_weights(self.encoder, path, state)
