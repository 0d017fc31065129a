"""The one base class: encoder → decoder → head, resized to the input.

Generic concerns live here once: padding for architectures that need divisible sizes,
resizing logits back to the input, the auxiliary head in training mode, and frozen
BatchNorm that stays frozen through `.train()`.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from .layers import pad_to_multiple
from .pretrained import LoadReport, load_backbone_weights


class SegmentationModel(nn.Module):
    """`forward(x)` → logits N×C×H×W at the input size; in training mode with an auxiliary
    head, `(logits, aux_logits)`.

    encoder: image → features (whatever the decoder expects, usually a list by stride).
    decoder: features → tensor; head: tensor → logits (at any resolution).
    aux_head: applied to `features[aux_index]` in training mode only.
    input_divisor: the input is zero-padded to a multiple of it and the logits cropped back,
      for architectures whose skips/unpooling need exact halving (U-Net, SegNet, ENet, FCN).
    pretrained_encoder: whether `encoder` is an ImageNet-style backbone (one that can load
      pretrained weights and gets the smaller learning rate in `parameter_groups`).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, head: nn.Module, *,
                 aux_head: nn.Module | None = None, aux_index: int = -2, input_divisor: int = 1,
                 pretrained_encoder: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        self.aux_head = aux_head
        self.aux_index = aux_index
        self.input_divisor = input_divisor
        self.pretrained_encoder = pretrained_encoder
        self.freeze_bn = False
        self.arch = type(self).__name__
        self.backbone_name: str | None = None
        self.pretrained_report = None  # set by build_model(pretrained=...)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        height, width = x.shape[-2], x.shape[-1]
        padded = pad_to_multiple(x, self.input_divisor)
        features = self.encoder(padded)
        logits = self._to_input(self.head(self.decoder(features)), padded, height, width)
        if self.training and self.aux_head is not None:
            aux = self._to_input(self.aux_head(features[self.aux_index]), padded, height, width)
            return logits, aux
        return logits

    def _to_input(self, logits: torch.Tensor, padded: torch.Tensor, height: int, width: int) -> torch.Tensor:
        logits = F.interpolate(logits, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        if self.input_divisor > 1:
            logits = logits[:, :, :height, :width]
        return logits

    def load_pretrained(self, path: str | os.PathLike) -> LoadReport:
        """Load a local ImageNet backbone file into the encoder (see `load_backbone_weights`).
        Architectures that can use more of the file (FCN's fc6/fc7) override this."""
        return load_backbone_weights(self.encoder, path)

    def set_freeze_bn(self, frozen: bool = True) -> None:
        """Keep every BatchNorm in eval mode (running statistics fixed), now and after any
        later `.train()`; affine parameters stay trainable, as in the original project."""
        self.freeze_bn = frozen
        self.train(self.training)

    def set_freeze_backbone(self, frozen: bool = True) -> None:
        """Stop gradients into the encoder (its parameters get requires_grad=False)."""
        for parameter in self.encoder.parameters():
            parameter.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> "SegmentationModel":
        super().train(mode)
        if self.freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self
