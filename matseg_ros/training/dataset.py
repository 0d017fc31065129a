"""The `HRIM` dataset: image/mask pairs in the HRIM2021 (Pascal-VOC) layout.

Pairs are checked when the dataset is built (a missing image or mask is an error naming
the file, not a crash in a worker hours later); size mismatches and unreadable files
are errors naming both files. Mask pixels of no known colour become ignore (255) and are
counted per sample, so the trainer can report them instead of training on them as
background.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset

from ..io.dataset_layout import (DatasetError, find_image, image_dir, list_ids, mask_dir, mask_path,
                                 read_rgb, read_split)
from ..io.masks import DEFAULT_TOLERANCE, MaskError, read_mask
from ..materials import IGNORE_INDEX, MaterialMap
from .decode_cache import DecodeCache, cache_tag

# (rgb uint8 H×W×3, ids uint8 H×W, seed key) -> (image float 3×h×w, target int64 h×w)
PairTransform = Callable[[np.ndarray, np.ndarray, tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]]


class HRIM(Dataset):
    """`split` ids of ROOT/ImageSets/Segmentation, optionally with their *Aug copies.

    `ignore_class`: a class id whose pixels are turned into ignore (the config's
    `ignore_index` when it names a real class); None keeps every class.
    `cache_dir`: keep decoded pairs there (decode_cache.py), resized to `cache_longest`
    (the transform's first step, longest side to base_size) when given.
    """

    def __init__(self, root: str | Path, split: str, materials: MaterialMap,
                 transform: PairTransform, use_aug_folders: bool = False,
                 mask_tolerance: float = DEFAULT_TOLERANCE, ignore_class: int | None = None,
                 cache_dir: str | Path | None = None, cache_longest: int | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset folder not found (data_dir)")
        self.split = split
        self.materials = materials
        self.transform = transform
        self.mask_tolerance = mask_tolerance
        self.ignore_class = ignore_class
        self.epoch = 0
        colours = [(m.id, tuple(m.color)) for m in materials.materials]
        self.cache = None if cache_dir is None else DecodeCache(
            cache_dir, cache_longest, cache_tag(mask_tolerance, ignore_class, colours))
        ids = read_split(self.root, split)
        if not ids:
            raise DatasetError(f"{self.root}: split {split!r} lists no images")
        self.samples: list[tuple[str, Path, Path]] = []
        for image_id in ids:
            self.samples.append(self._pair(image_id, aug=False))
        if use_aug_folders:
            listed = set(ids)
            if not image_dir(self.root, aug=True).is_dir():
                raise DatasetError(f"{image_dir(self.root, aug=True)}: use_aug_folders is set but "
                                   "the folder does not exist")
            for aug_id in list_ids(image_dir(self.root, aug=True)):
                if aug_id.rsplit("_", 1)[0] in listed:
                    self.samples.append(self._pair(aug_id, aug=True))

    def _pair(self, image_id: str, aug: bool) -> tuple[str, Path, Path]:
        image = find_image(self.root, image_id, aug)
        mask = mask_path(self.root, image_id, aug)
        if not mask.is_file():
            raise DatasetError(f"{mask}: mask not found for image {image} "
                               f"(expected in {mask_dir(self.root, aug)})")
        return image_id, image, mask

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Random augmentation is seeded by (epoch, index): identical whatever the workers."""
        self.epoch = epoch

    def read_target(self, index: int) -> tuple[np.ndarray, int]:
        """Class ids of sample `index` (ignore class applied) and its unknown-colour pixel count."""
        _, image, mask = self.samples[index]
        try:
            ids, unknown = read_mask(mask, self.materials, self.mask_tolerance)
        except MaskError as exc:
            raise DatasetError(str(exc)) from None
        if self.ignore_class is not None:
            ids[ids == self.ignore_class] = IGNORE_INDEX
        return ids, unknown

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        _, image_path, mask = self.samples[index]
        rgb = read_rgb(image_path)
        ids, unknown = self.read_target(index)
        if ids.shape != rgb.shape[:2]:
            raise DatasetError(f"{mask}: mask is {ids.shape[1]}×{ids.shape[0]} but its image "
                               f"{image_path} is {rgb.shape[1]}×{rgb.shape[0]} (width×height)")
        return rgb, ids, unknown

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """Each sample once (indexing also takes repeat indices, so it never runs out)."""
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Sample `index`; index + k·len(self) is its k-th repeat in an epoch (oversampling):
        the same image and mask with an augmentation of its own."""
        repeat, index = divmod(index, len(self.samples))
        _, image_path, mask = self.samples[index]
        if self.cache is None:
            rgb, ids, unknown = self._decode(index)
        else:
            rgb, ids, unknown = self.cache.get(image_path, mask, lambda: self._decode(index))
        key = (self.epoch, index, repeat) if repeat else (self.epoch, index)
        image, target = self.transform(rgb, ids, key)
        return image, target, unknown


def pad_collate(batch: list[tuple[torch.Tensor, torch.Tensor, int]]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack samples, padding differently sized whole images: image 0, target ignore.

    Returns images, targets, unknown-colour pixel counts and the N×2 (height, width) of each
    sample before padding (evaluation scores padded samples one by one at their own size)."""
    height = max(item[0].shape[1] for item in batch)
    width = max(item[0].shape[2] for item in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], height, width, dtype=batch[0][0].dtype)
    targets = torch.full((len(batch), height, width), IGNORE_INDEX, dtype=torch.int64)
    for i, (image, target, _) in enumerate(batch):
        images[i, :, :image.shape[1], :image.shape[2]] = image
        targets[i, :target.shape[0], :target.shape[1]] = target
    unknown = torch.tensor([item[2] for item in batch], dtype=torch.int64)
    sizes = torch.tensor([tuple(item[0].shape[1:]) for item in batch], dtype=torch.int64)
    return images, targets, unknown, sizes
