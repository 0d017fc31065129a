"""Data balancing for skewed material datasets: class weights and rare-class oversampling.

- Median-frequency class weights (Eigen & Fergus 2015): freq_c = pixels of c / pixels of
  the images containing c; w_c = median(freq) / freq_c. Classes never seen get weight 1.
- Repeat-factor sampling (Gupta et al., LVIS 2019): an image is drawn in proportion to
  max over its classes of max(1, sqrt(t / f_c)), f_c the share of images containing c.
The sampler is epoch-seeded and sharded like DistributedSampler, so it works under DDP
and a resumed run draws the same images.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from tqdm import tqdm


def class_pixel_counts(dataset: Dataset, num_classes: int, progress: bool = True) -> np.ndarray:
    """(images, classes) int64 pixel counts of every training mask (ignore excluded)."""
    counts = np.zeros((len(dataset), num_classes), dtype=np.int64)
    for i in tqdm(range(len(dataset)), desc="class statistics", disable=not progress, leave=False):
        ids, _ = dataset.read_target(i)
        counts[i] = np.bincount(ids.ravel(), minlength=256)[:num_classes]
    return counts


def median_frequency_weights(counts: np.ndarray) -> np.ndarray:
    pixels = counts.sum(axis=0).astype(np.float64)
    present = counts > 0
    image_pixels = counts.sum(axis=1, keepdims=True).astype(np.float64)
    pixels_of_images_with_c = (present * image_pixels).sum(axis=0)
    seen = pixels > 0
    weights = np.ones(counts.shape[1], dtype=np.float64)
    if seen.any():
        freq = pixels[seen] / pixels_of_images_with_c[seen]
        weights[seen] = np.median(freq) / freq
    return weights


def repeat_factors(counts: np.ndarray, threshold: float) -> np.ndarray:
    """Per-image sampling weight from the rarest class it contains."""
    present = counts > 0
    image_freq = present.mean(axis=0)
    class_factor = np.ones(counts.shape[1])
    seen = image_freq > 0
    class_factor[seen] = np.maximum(1.0, np.sqrt(threshold / image_freq[seen]))
    return np.where(present, class_factor[None, :], 1.0).max(axis=1)


class RepeatFactorSampler(Sampler[int]):
    """Draws `total` (default len(weights)) images with replacement, ∝ weights, sharded over
    `num_replicas`.

    The k-th draw of image i in an epoch is yielded as i + k·len(weights): the dataset
    (HRIM) maps it back to image i with its own augmentation seed, so the repeats of a rare
    image are different crops, not one crop counted k times."""

    def __init__(self, weights: np.ndarray, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 total: int | None = None):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.num_replicas, self.rank, self.seed = num_replicas, rank, seed
        self.epoch = 0
        self.num_samples = math.ceil((total or len(self.weights)) / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.num_samples * self.num_replicas
        drawn = torch.multinomial(self.weights, total, replacement=True, generator=generator)
        n, seen = len(self.weights), Counter()
        virtual = []
        for index in drawn.tolist():
            virtual.append(index + seen[index] * n)
            seen[index] += 1
        return iter(virtual[self.rank::self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples
