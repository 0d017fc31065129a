"""Small building blocks shared by the architectures, written so that ONNX export keeps
height and width dynamic.

No Python-int shape arithmetic, no adaptive pooling with
export-time kernel sizes, no MaxUnpool (absent from the TorchScript exporter)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 dilation: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias, BN follows) → BN → ReLU, 'same' padding."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def resize_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of `x` to the spatial size of `like` (sizes read from the graph)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def _bin_matrix(positions: torch.Tensor, bins: int) -> torch.Tensor:
    """bins×L averaging matrix with PyTorch's adaptive-pooling windows
    [floor(i·L/b), ceil((i+1)·L/b)). `positions` is 0..L-1 as a float tensor, so L stays a
    graph value rather than an export-time constant."""
    length = positions[-1:] + 1
    index = torch.arange(bins, dtype=positions.dtype, device=positions.device)
    start = torch.floor(index * length / bins)
    end = torch.ceil((index + 1) * length / bins)
    inside = (positions[None, :] >= start[:, None]) & (positions[None, :] < end[:, None])
    weights = inside.to(positions.dtype)
    return weights / weights.sum(dim=1, keepdim=True)


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """`F.adaptive_avg_pool2d(x, bins)` as two matrix products.

    The exporters turn adaptive pooling into a fixed-kernel AvgPool computed from the
    example input, which is wrong at any other size; this form is exact at every size.
    """
    if bins == 1:
        return x.mean(dim=(2, 3), keepdim=True)
    plane = x[0, 0]
    rows = torch.ones_like(plane[:, 0]).cumsum(0) - 1
    cols = torch.ones_like(plane[0, :]).cumsum(0) - 1
    return torch.matmul(torch.matmul(_bin_matrix(rows, bins), x), _bin_matrix(cols, bins).t())


def pad_to_multiple(x: torch.Tensor, divisor: int) -> torch.Tensor:
    """Zero-pad bottom/right so height and width are multiples of `divisor`.

    Zero is the mean colour after normalisation. Pads are tensors of the graph, so an
    exported model pads correctly at every input size.
    """
    if divisor <= 1:
        return x
    height, width = x.shape[-2], x.shape[-1]
    pad_h = (divisor - height % divisor) % divisor
    pad_w = (divisor - width % divisor) % divisor
    return F.pad(x, [0, pad_w, 0, pad_h])


def max_pool_with_indices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2×2/2 max pooling that also returns per-plane argmax indices (for unpooling)."""
    return F.max_pool2d(x, kernel_size=2, stride=2, return_indices=True)


def max_unpool(x: torch.Tensor, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Inverse of `max_pool_with_indices`, restoring the size of `like` (the tensor that was
    pooled, odd sizes included). A scatter instead of MaxUnpool: it exports everywhere."""
    flat = torch.zeros_like(like).flatten(2)
    flat = flat.scatter(2, indices.flatten(2), x.flatten(2))
    return flat.reshape(like.shape)
