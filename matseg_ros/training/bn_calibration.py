"""BatchNorm statistics re-estimated at the input size a model is deployed at.

Training leaves each BatchNorm with running statistics averaged over random crops of randomly
scaled images, taken with dropout active. The node feeds whole frames at one fixed size with
dropout off. Averaging the statistics afresh over whole training images resized to that size,
in the same conditions, fits them to what the deployed network sees; the weights stay as
trained. For the shipped ENet at 432×576 this added 0.005 held-out mIoU (models/README.md).

`torch.optim.swa_utils.update_bn` does the same averaging but in train mode, dropout
included; this differs only in keeping dropout off, as at inference.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..io import dataset_layout as layout
from ..runtime.engine import preprocess
from ..runtime.modelmeta import ModelMetadata


BATCH_SIZE = 4


def calibration_ids(data_dir: str | Path, count: int, split: str = "train", seed: int = 0) -> list[str]:
    """`count` image ids (all of them if fewer) drawn without replacement, seeded, from a split
    of an HRIM2021-layout dataset."""
    if count < 1:
        raise ValueError(f"the number of calibration images must be >= 1, got {count}")
    ids = layout.read_split(data_dir, split)
    if not ids:
        raise layout.DatasetError(f"{layout.split_file(data_dir, split)}: no images listed")
    chosen = np.random.default_rng(seed).choice(len(ids), size=min(count, len(ids)), replace=False)
    return [ids[i] for i in chosen]


def calibration_batches(data_dir: str | Path, ids: list[str], meta: ModelMetadata,
                        batch_size: int = BATCH_SIZE) -> Iterator[torch.Tensor]:
    """The images, each resized to `meta.input_size` and normalised as the engines do
    (`engine.preprocess`), in batches; read one batch at a time."""
    for start in range(0, len(ids), batch_size):
        yield torch.from_numpy(np.concatenate([
            preprocess(layout.read_rgb(layout.find_image(data_dir, image_id)), meta)
            for image_id in ids[start:start + batch_size]]))


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor], progress: bool = True,
                          total: int | None = None) -> int:
    """Reset every BatchNorm's running mean and variance and set them to the plain average of
    the batch statistics over `batches` (momentum None), with dropout off and no gradients.
    Returns the number of images seen; the model comes back in the mode it was in."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layers to recalibrate")
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()  # dropout (and everything else) as at inference ...
    for norm in norms:  # ... but BatchNorm normalises with, and accumulates, batch statistics
        norm.reset_running_stats()
        norm.momentum = None
        norm.train()
    seen = 0
    try:
        with torch.no_grad():
            for x in tqdm(batches, desc="BatchNorm statistics", total=total, disable=not progress,
                          leave=False, unit="batch"):
                model(x)
                seen += len(x)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.train(was_training)
    if not seen:
        raise ValueError("no images to recalibrate BatchNorm with")
    return seen


def recalibrate_on_dataset(model: nn.Module, data_dir: str | Path, meta: ModelMetadata, count: int,
                           progress: bool = True) -> int:
    """`recalibrate_batchnorm` on `count` images of the dataset's train split at
    `meta.input_size` (what `matseg export --calibrate-bn` does)."""
    ids = calibration_ids(data_dir, count)
    return recalibrate_batchnorm(model, calibration_batches(data_dir, ids, meta), progress=progress,
                                 total=-(-len(ids) // BATCH_SIZE))
