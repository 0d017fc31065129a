"""`matseg data augment`: augmented copies of image/mask pairs, written in the HRIM2021 layout.

Copies are `{id}_{k}` (k = 1..copies) in JPEGImagesAug/ and SegmentationClassAug/, which
the training dataset attaches to their original id — so augmenting only the ids of one
split (train, by default, when the dataset has ImageSets) keeps copies of a photo out of
val and test. Masks move with their image (nearest-neighbour); pixels that a transform
invents (rotation and padding borders, erased patches) become ignore — written as the
Pascal VOC void colour, which decodes to ignore and never to a real class. Each copy is
seeded by (seed, id, k): the same seed gives the same bytes whatever the worker count.
"""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_path
from ..io.dataset_layout import (IMAGE_EXTENSIONS, DatasetError, image_dir, list_ids, mask_dir, read_rgb, read_split,
                                 split_file, write_split)
from ..io.masks import MaskError, read_mask, write_mask
from ..materials import IGNORE_INDEX, MaterialMap, MaterialsError, load_materials
from ..training.augmentations import seed_pipeline
from .workers import ordered_map

GROUPS = ("spatial", "pixel", "advanced")


def build_pipeline(groups: tuple[str, ...] = ("spatial", "pixel")):
    """The albumentations pipeline of the seed's augmentation groups (2.x API)."""
    import albumentations as A

    const = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=IGNORE_INDEX)
    steps = []
    if "spatial" in groups:
        steps += [
            A.HorizontalFlip(p=0.5),
            A.Transpose(p=0.1),
            A.Affine(scale=(0.75, 1.3), rotate=(-20, 20), translate_percent=(-0.05, 0.05), shear=(-5, 5),
                     mask_interpolation=cv2.INTER_NEAREST, p=0.7, **const),
            A.OneOf([A.ElasticTransform(alpha=40, sigma=6, mask_interpolation=cv2.INTER_NEAREST, **const),
                     A.GridDistortion(distort_limit=0.2, mask_interpolation=cv2.INTER_NEAREST, **const),
                     A.OpticalDistortion(distort_limit=0.1, mask_interpolation=cv2.INTER_NEAREST, **const)],
                    p=0.3),
            A.RandomCropFromBorders(crop_left=0.15, crop_right=0.15, crop_top=0.15, crop_bottom=0.15, p=0.3),
        ]
    if "pixel" in groups:
        steps += [
            A.RandomBrightnessContrast(p=0.5),
            A.OneOf([A.Blur(blur_limit=(3, 5)), A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))],
                    p=0.2),
            A.ChannelShuffle(p=0.05),
            A.GaussNoise(std_range=(0.02, 0.08), p=0.2),
            A.CLAHE(p=0.1),
            A.RandomGamma(p=0.3),
            A.ImageCompression(quality_range=(60, 95), p=0.3),
        ]
    if "advanced" in groups:
        steps += [
            A.CoarseDropout(num_holes_range=(1, 4), hole_height_range=(0.05, 0.2), hole_width_range=(0.05, 0.2),
                            fill=0, fill_mask=IGNORE_INDEX, p=0.3),  # random erasing: unknown -> ignore
            A.RandomRain(p=0.1),
            A.RandomSunFlare(src_radius=80, p=0.05),
            A.RandomFog(fog_coef_range=(0.1, 0.3), p=0.1),
            A.RandomShadow(p=0.2),
        ]
    return A.Compose(steps, seed=0)


def copy_entropy(seed: int, image_id: str, k: int) -> tuple[int, int, int]:
    """The seed material of copy k of an image, from its name (not its position in a listing)."""
    return seed, zlib.crc32(image_id.encode("utf-8")), k


_STATE: dict = {}


def _init(groups, materials_json: str, images: str, masks: str, output: str, copies: int, seed: int) -> None:
    cv2.setNumThreads(1)
    _STATE.update(pipeline=build_pipeline(groups), materials=MaterialMap.from_json(materials_json),
                  images=Path(images), masks=Path(masks), output=Path(output), copies=copies, seed=seed)


def _augment_one(image_id: str) -> list[str]:
    s = _STATE
    image_path = next((p for p in (s["images"] / f"{image_id}{e}" for e in IMAGE_EXTENSIONS) if p.is_file()),
                      s["images"] / f"{image_id}.jpg")
    rgb = read_rgb(image_path)
    try:
        ids, _ = read_mask(s["masks"] / f"{image_id}.png", s["materials"])
    except MaskError as exc:
        raise DatasetError(str(exc)) from None
    if ids.shape != rgb.shape[:2]:
        raise DatasetError(f"{s['masks'] / image_id}.png: mask is {ids.shape[1]}×{ids.shape[0]} but the "
                           f"image {image_path} is {rgb.shape[1]}×{rgb.shape[0]}")
    made = []
    for k in range(1, s["copies"] + 1):
        seed_pipeline(s["pipeline"], copy_entropy(s["seed"], image_id, k))
        out = s["pipeline"](image=rgb, mask=ids)
        name = f"{image_id}_{k}"
        ok, jpeg = cv2.imencode(".jpg", out["image"][..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise DatasetError(f"{name}: could not encode JPEG")
        with atomic_path(image_dir(s["output"], aug=True) / f"{name}.jpg") as tmp:
            tmp.write_bytes(jpeg.tobytes())
        write_mask(mask_dir(s["output"], aug=True) / f"{name}.png", np.ascontiguousarray(out["mask"]),
                        s["materials"])
        made.append(name)
    return made


def augment(images: Path, masks: Path, output: Path, copies: int = 3, seed: int = 0,
            groups: tuple[str, ...] = ("spatial", "pixel"), split: str | None = "auto",
            workers: int = 1, materials: MaterialMap | None = None, progress: bool = False) -> dict[str, list[str]]:
    """Augment the ids of `split` ('auto': train if the dataset has ImageSets, else all; None: all).

    Returns {split name: augmented ids} and writes them to ImageSets/Segmentation/<split>_aug.txt.
    """
    for folder, what in ((images, "--JPEGImages"), (masks, "--SegmentationClass")):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: {what} folder not found")
    if copies < 1:
        raise ValueError(f"--copies must be at least 1, got {copies}")
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown augmentation group(s) {sorted(unknown)}; known: {', '.join(GROUPS)}")
    materials = materials or load_materials()
    ids = list_ids(images)
    missing = [i for i in ids if not (masks / f"{i}.png").is_file()]
    if missing:
        raise DatasetError(f"{masks}: no mask for {len(missing)} image(s): {', '.join(missing[:10])}")
    root = images.parent
    if split == "auto":
        split = "train" if split_file(root, "train").is_file() else None
    name = split or "all"
    if split is not None:
        listed = set(read_split(root, split))
        ids = [i for i in ids if i in listed]
    init = (tuple(groups), materials.to_json(), str(images), str(masks), str(output), copies, seed)
    results = ordered_map(_augment_one, ids, _init, init, workers, "augment" if progress else None)
    made = sorted(n for batch in results for n in batch)
    write_split(output, f"{name}_aug", made)
    return {name: made}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--JPEGImages", dest="images", type=Path, required=True, help="folder of images")
    parser.add_argument("--SegmentationClass", dest="masks", type=Path, required=True, help="folder of masks")
    parser.add_argument("--output", type=Path, required=True,
                        help="dataset root to write JPEGImagesAug/ and SegmentationClassAug/ into")
    parser.add_argument("--copies", type=int, default=3, help="augmented copies per image (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--split", default="auto",
                        help="augment only this split's ids ('auto': train when ImageSets exist; 'all')")
    parser.add_argument("--groups", default="spatial,pixel",
                        help=f"comma-separated groups of {', '.join(GROUPS)} (default spatial,pixel)")
    parser.add_argument("--materials", type=Path, default=None, help="class map YAML (default: shipped)")


def run(args: argparse.Namespace) -> int:
    try:
        done = augment(args.images, args.masks, args.output, args.copies, args.seed,
                       tuple(g.strip() for g in args.groups.split(",") if g.strip()),
                       None if args.split == "all" else args.split, args.workers,
                       load_materials(args.materials), progress=sys.stderr.isatty())
    except (DatasetError, MaterialsError, ValueError) as exc:
        print(f"matseg data augment: {exc}", file=sys.stderr)
        return 2
    for name, ids in done.items():
        print(f"{len(ids)} augmented pairs from split {name!r} -> {image_dir(args.output, aug=True)}")
    return 0
