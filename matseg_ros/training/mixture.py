"""Training on several datasets at once (synthetic rooms and imported real sets together).

`MixedDataset` puts the datasets in one index space; `mixture_weights` gives each image a
sampling weight so that dataset d supplies its configured share of every epoch whatever
its size, optionally balanced by class within it (repeat factors, as `balance.oversample`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import balance
from .dataset import HRIM


class MixedDataset(Dataset):
    """The concatenation of named HRIM datasets. Index i + k·len(self) is the k-th repeat of
    sample i in an epoch (as for HRIM), passed on as that dataset's own repeat index."""

    def __init__(self, parts: list[tuple[str, HRIM]]):
        if not parts:
            raise ValueError("a mixture needs at least one dataset")
        self.names = [name for name, _ in parts]
        self.parts = [dataset for _, dataset in parts]
        self.offsets = np.cumsum([0] + [len(d) for d in self.parts])

    @property
    def samples(self) -> list[tuple[str, Path, Path]]:
        return [s for d in self.parts for s in d.samples]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """(dataset number, index within it) of a sample index in 0..len-1."""
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return part, index - int(self.offsets[part])

    def set_epoch(self, epoch: int) -> None:
        for dataset in self.parts:
            dataset.set_epoch(epoch)

    def read_target(self, index: int) -> tuple[np.ndarray, int]:
        part, local = self.locate(index)
        return self.parts[part].read_target(local)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        repeat, base = divmod(index, len(self))
        part, local = self.locate(base)
        dataset = self.parts[part]
        return dataset[local + repeat * len(dataset)]


def mixture_weights(sizes: list[int], shares: list[float], counts: np.ndarray | None = None,
                    threshold: float = 0.3) -> np.ndarray:
    """Per-image sampling weights: dataset d's images share `shares[d]` (normalised) of the
    total equally, or, given per-image class pixel `counts`, in proportion to their repeat
    factors computed within d (rare classes of each dataset drawn more often)."""
    if len(sizes) != len(shares) or any(s <= 0 for s in shares):
        raise ValueError(f"need one positive share per dataset, got {shares} for {len(sizes)} datasets")
    total = float(sum(shares))
    weights = []
    start = 0
    for size, share in zip(sizes, shares):
        if counts is None:
            within = np.full(size, 1.0 / size)
        else:
            factors = balance.repeat_factors(counts[start:start + size], threshold)
            within = factors / factors.sum()
        weights.append(within * share / total)
        start += size
    return np.concatenate(weights)
