"""ENet (Paszke et al. 2016): a light encoder and a small decoder that unpools with the
encoder's max-pooling indices.

Initial block, bottleneck stages 1–3 (regular, dilated 2–16, asymmetric 5×1/1×5) with
PReLU and spatial dropout, and the decoder stages 4–5. Option `context`: an image-level
prior (global pooling of the encoder → two 1×1 convs → one logit offset per class, added
at every pixel), the scene context of ParseNet/EncNet that decides what a whole object is
made of; its last conv starts at zero, so a plain ENet's weights load into it unchanged."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SegmentationModel
from .layers import max_pool_with_indices, max_unpool


def _act(prelu: bool, channels: int) -> nn.Module:
    return nn.PReLU(channels) if prelu else nn.ReLU(inplace=True)


class InitialBlock(nn.Module):
    """3×3/2 conv with 13 filters concatenated with a 2×2 max pool of the input: 16 channels."""

    def __init__(self, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, out_channels - 3, 3, stride=2, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2, 2)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), self.pool(x)], dim=1)))


class Bottleneck(nn.Module):
    """1×1 projection → main conv (regular, dilated or asymmetric) → 1×1 expansion, spatial
    dropout, identity added."""

    def __init__(self, channels: int, dilation: int = 1, asymmetric: bool = False,
                 dropout: float = 0.1, prelu: bool = True) -> None:
        super().__init__()
        inner = channels // 4
        if asymmetric:
            main = nn.Sequential(nn.Conv2d(inner, inner, (5, 1), padding=(2, 0), bias=False),
                                 nn.Conv2d(inner, inner, (1, 5), padding=(0, 2), bias=False))
        else:
            main = nn.Conv2d(inner, inner, 3, padding=dilation, dilation=dilation, bias=False)
        self.ext = nn.Sequential(
            nn.Conv2d(channels, inner, 1, bias=False), nn.BatchNorm2d(inner), _act(prelu, inner),
            main, nn.BatchNorm2d(inner), _act(prelu, inner),
            nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels), nn.Dropout2d(dropout))
        self.act = _act(prelu, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.ext(x))


class DownsamplingBottleneck(nn.Module):
    """Main branch: max pool (indices kept) + zero channels; extension: 2×2/2 projection."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        inner = in_channels // 4
        self.extra_channels = out_channels - in_channels
        self.ext = nn.Sequential(
            nn.Conv2d(in_channels, inner, 2, stride=2, bias=False), nn.BatchNorm2d(inner), nn.PReLU(inner),
            nn.Conv2d(inner, inner, 3, padding=1, bias=False), nn.BatchNorm2d(inner), nn.PReLU(inner),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.Dropout2d(dropout))
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        main, indices = max_pool_with_indices(x)
        main = F.pad(main, [0, 0, 0, 0, 0, self.extra_channels])
        return self.act(main + self.ext(x)), indices


class UpsamplingBottleneck(nn.Module):
    """Main branch: 1×1 conv + unpooling with the matching downsampling indices;
    extension: projection, 3×3/2 transposed conv, expansion."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        inner = in_channels // 4
        self.main = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
        self.ext = nn.Sequential(
            nn.Conv2d(in_channels, inner, 1, bias=False), nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1, bias=False),
            nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.Dropout2d(dropout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.act(max_unpool(self.main(x), indices, like) + self.ext(x))


def _stage_bottlenecks(channels: int, dropout: float) -> nn.Sequential:
    """Stages 2 and 3: regular, dilated 2, asymmetric, dilated 4, regular, dilated 8,
    asymmetric, dilated 16."""
    spec = [(1, False), (2, False), (1, True), (4, False), (1, False), (8, False), (1, True), (16, False)]
    return nn.Sequential(*[Bottleneck(channels, d, a, dropout) for d, a in spec])


class ENetEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.initial = InitialBlock(16)
        self.down1 = DownsamplingBottleneck(16, 64, 0.01)
        self.stage1 = nn.Sequential(*[Bottleneck(64, dropout=0.01) for _ in range(4)])
        self.down2 = DownsamplingBottleneck(64, 128, 0.1)
        self.stage2 = _stage_bottlenecks(128, 0.1)
        self.stage3 = _stage_bottlenecks(128, 0.1)

    def forward(self, x: torch.Tensor):
        x1 = self.initial(x)
        x, idx1 = self.down1(x1)
        x2 = self.stage1(x)
        x, idx2 = self.down2(x2)
        x = self.stage3(self.stage2(x))
        return x, [(idx1, x1), (idx2, x2)]


class ENetDecoder(nn.Module):
    def __init__(self, num_classes: int, context: bool = False, hidden: int = 64) -> None:
        super().__init__()
        self.up4 = UpsamplingBottleneck(128, 64, 0.1)
        self.stage4 = nn.Sequential(Bottleneck(64, prelu=False), Bottleneck(64, prelu=False))
        self.up5 = UpsamplingBottleneck(64, 16, 0.1)
        self.stage5 = Bottleneck(16, prelu=False)
        self.out_channels = 16
        self.prior = None
        if context:  # the image-level logit offset; its last conv starts at zero
            self.prior = nn.Sequential(nn.Conv2d(128, hidden, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(hidden, num_classes, 1))
            nn.init.zeros_(self.prior[2].weight)
            nn.init.zeros_(self.prior[2].bias)

    def forward(self, features) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x, [(idx1, x1), (idx2, x2)] = features
        offset = self.prior(x.mean(dim=(2, 3), keepdim=True)) if self.prior is not None else None
        x = self.stage4(self.up4(x, idx2, x2))
        x = self.stage5(self.up5(x, idx1, x1))
        return x if offset is None else (x, offset)


class ENetHead(nn.ConvTranspose2d):
    """The full-resolution classifier (a 3×3/2 transposed conv); with context it adds the
    decoder's per-class offset at every pixel."""

    def __init__(self, num_classes: int) -> None:
        super().__init__(16, num_classes, 3, stride=2, padding=1, output_padding=1)

    def forward(self, inputs: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if isinstance(inputs, tuple):
            x, offset = inputs
            return super().forward(x) + offset
        return super().forward(inputs)


class ENet(SegmentationModel):
    # parameters a plain ENet checkpoint lacks, which start at values that change nothing
    function_preserving = ("decoder.prior.",)

    def __init__(self, num_classes: int, backbone: None = None, context: bool = False) -> None:
        super().__init__(ENetEncoder(), ENetDecoder(num_classes, context), ENetHead(num_classes),
                         input_divisor=8, pretrained_encoder=False)
