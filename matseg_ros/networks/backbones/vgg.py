"""VGG16 and VGG16-BN with torchvision's parameter names (`features.N`, `classifier.N`),
so an ImageNet state dict loads as is. Pooling can return argmax indices (SegNet)."""
from __future__ import annotations

import torch
from torch import nn

from ..layers import max_pool_with_indices

CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """`forward(x)` → the five pooled stage outputs [pool1 (2) … pool5 (32)].

    With `return_indices` it returns `(pooled, indices, pre_pool)` instead: what SegNet's
    decoder needs to unpool to the exact pre-pooling sizes. With `num_classes` it also
    has torchvision's classifier, used only to match ImageNet checkpoints."""

    def __init__(self, batch_norm: bool = False, num_classes: int | None = None,
                 return_indices: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            in_channels = v
        self.features = nn.Sequential(*layers)
        self.return_indices = return_indices
        self.out_channels = (64, 128, 256, 512, 512)
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
                nn.Linear(4096, num_classes),
            )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor):
        pooled, indices, pre_pool = [], [], []
        for module in self.features:
            if isinstance(module, nn.MaxPool2d):
                pre_pool.append(x)
                if self.return_indices:
                    x, idx = max_pool_with_indices(x)
                    indices.append(idx)
                else:
                    x = module(x)
                pooled.append(x)
            else:
                x = module(x)
        return (pooled, indices, pre_pool) if self.return_indices else pooled
