"""`matseg data validate DIR`: is this dataset what training will think it is?

Errors (exit 1): missing folders, images without masks and masks without images,
unreadable files, image/mask size mismatches, split files naming absent ids, ids in
more than one of train/val/test, identical images across splits. Warnings: mask
colours that are no class colour (with pixel counts; near ones are anti-aliasing),
missing split files, odd names, near-duplicate images across splits (perceptual dHash
within a Hamming distance: leakage), classes absent from a split. Also reported: the
per-class pixel histogram and image presence, and the images' mean/std.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from ..fileio import atomic_path, atomic_write_text
from ..io.dataset_layout import (IMAGE_EXTENSIONS, SPLITS, DatasetError, image_dir, list_ids, mask_dir, read_rgb,
                                 read_split, split_file)
from ..io.masks import DEFAULT_TOLERANCE, VOID_COLOR, decode_mask
from ..materials import IGNORE_INDEX, MaterialMap, MaterialsError, load_materials

_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash: robust to resizing, re-encoding and small colour changes."""
    gray = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (9, 8), interpolation=cv2.INTER_AREA)
    bits = (gray[:, 1:] > gray[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def near_pairs(hashes: np.ndarray, max_distance: int, block: int = 512) -> list[tuple[int, int, int]]:
    """(i, j, distance) for i < j with Hamming distance <= max_distance."""
    out = []
    for start in range(0, len(hashes), block):
        d = np.bitwise_count(hashes[start:start + block, None] ^ hashes[None, :])
        for i, j in zip(*np.nonzero(d <= max_distance)):
            if start + i < j:
                out.append((int(start + i), int(j), int(d[i, j])))
    return out


def _read_mask_array(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return np.asarray(img if img.mode in ("P", "L", "I", "I;16") else img.convert("RGB"))


def validate(root: Path, materials: MaterialMap, tolerance: float = DEFAULT_TOLERANCE,
             max_distance: int = 4, max_listed: int = 20) -> dict:
    errors: list[str] = []
    warnings: list[str] = []
    for folder in (image_dir(root), mask_dir(root)):
        if not folder.is_dir():
            raise DatasetError(f"{folder}: folder not found (expected the HRIM2021 layout under {root})")
    images, masks = list_ids(image_dir(root)), sorted(p.stem for p in mask_dir(root).glob("*.png"))
    for what, ids in (("image has no mask", sorted(set(images) - set(masks))),
                      ("mask has no image", sorted(set(masks) - set(images)))):
        if ids:
            errors.append(f"{len(ids)} {what}: {', '.join(ids[:max_listed])}")
    odd = [i for i in images if not _SAFE.match(i)]
    if odd:
        warnings.append(f"{len(odd)} id(s) with spaces or unusual characters: {', '.join(odd[:max_listed])}")
    ids = sorted(set(images) & set(masks))
    palette = {tuple(int(c) for c in m.color): m.id for m in materials}
    pixels = np.zeros(256, np.int64)
    present: dict[str, set[int]] = {}
    unknown_colors: Counter = Counter()
    near_colors: Counter = Counter()
    void_pixels = 0
    channel_sum, channel_sq, channel_n = np.zeros(3), np.zeros(3), 0
    hashes: dict[str, int] = {}
    for image_id in ids:
        image_path = next(image_dir(root) / f"{image_id}{e}" for e in IMAGE_EXTENSIONS
                          if (image_dir(root) / f"{image_id}{e}").is_file())
        mask_file = mask_dir(root) / f"{image_id}.png"
        try:
            rgb = read_rgb(image_path)
        except DatasetError as exc:
            errors.append(str(exc))
            continue
        try:
            raw = _read_mask_array(mask_file)
        except Exception as exc:  # PIL raises many kinds for broken files
            errors.append(f"{mask_file}: cannot read mask: {exc}")
            continue
        if raw.shape[:2] != rgb.shape[:2]:
            errors.append(f"{mask_file}: mask is {raw.shape[1]}×{raw.shape[0]} but image {image_path.name} "
                          f"is {rgb.shape[1]}×{rgb.shape[0]}")
            continue
        if raw.ndim == 3:
            packed = (raw[..., 0].astype(np.uint32) << 16) | (raw[..., 1].astype(np.uint32) << 8) | raw[..., 2]
            colors, counts = np.unique(packed, return_counts=True)
            for color, count in zip(colors, counts):
                rgb_color = (int(color >> 16), int(color >> 8 & 255), int(color & 255))
                if rgb_color == VOID_COLOR:
                    void_pixels += int(count)
                elif rgb_color not in palette:
                    distance = np.linalg.norm(materials.colors().astype(float) - rgb_color, axis=1).min()
                    (near_colors if distance <= tolerance else unknown_colors)[rgb_color] += int(count)
        ids_map, _ = decode_mask(raw, materials, tolerance)
        counts = np.bincount(ids_map.ravel(), minlength=256)
        pixels += counts
        present[image_id] = {int(c) for c in np.flatnonzero(counts)} - {IGNORE_INDEX}
        flat = rgb.reshape(-1, 3).astype(np.float64) / 255.0
        channel_sum += flat.sum(axis=0)
        channel_sq += (flat ** 2).sum(axis=0)
        channel_n += len(flat)
        hashes[image_id] = dhash(rgb)
    if unknown_colors:
        listed = ", ".join(f"{c}×{n}" for c, n in unknown_colors.most_common(max_listed))
        warnings.append(f"{sum(unknown_colors.values())} mask pixels of {len(unknown_colors)} colour(s) that are "
                        f"no class colour (read as ignore): {listed}")
    if near_colors:
        warnings.append(f"{sum(near_colors.values())} mask pixels of {len(near_colors)} colour(s) close to a class "
                        "colour (anti-aliasing? read as the nearest class)")
    splits: dict[str, list[str]] = {}
    for name in SPLITS:
        if split_file(root, name).is_file():
            splits[name] = read_split(root, name)
            absent = sorted(set(splits[name]) - set(ids))
            if absent:
                errors.append(f"{split_file(root, name)}: {len(absent)} id(s) with no image/mask pair: "
                              f"{', '.join(absent[:max_listed])}")
        elif name != "trainval":
            warnings.append(f"{split_file(root, name)}: split file missing")
    owner: dict[str, str] = {}
    for name in ("train", "val", "test"):
        for image_id in splits.get(name, []):
            if image_id in owner and owner[image_id] != name:
                errors.append(f"id {image_id!r} is in both {owner[image_id]} and {name}")
            owner.setdefault(image_id, name)
    for name in ("train", "val", "test"):
        if splits.get(name):
            seen = set().union(*(present.get(i, set()) for i in splits[name]))
            missing = [materials[c].name for c in materials.ids if c != 0 and c not in seen]
            if missing:
                warnings.append(f"split {name}: no image contains {', '.join(missing)}")
    keys = [i for i in hashes if i in owner]
    if len(keys) > 1:
        array = np.array([hashes[i] for i in keys], dtype=np.uint64)
        for i, j, d in near_pairs(array, max_distance):
            a, b = keys[i], keys[j]
            if owner[a] != owner[b]:
                line = f"{a} ({owner[a]}) and {b} ({owner[b]}) look alike (dHash distance {d}): leakage?"
                (errors if d == 0 else warnings).append(line)
    mean = channel_sum / max(channel_n, 1)
    std = np.sqrt(np.maximum(channel_sq / max(channel_n, 1) - mean ** 2, 0))
    total = max(int(pixels.sum()), 1)
    classes = [{"id": m.id, "name": m.name, "pixels": int(pixels[m.id]), "fraction": pixels[m.id] / total,
                "images": sum(m.id in p for p in present.values())} for m in materials]
    return {"root": str(root), "pairs": len(ids), "errors": errors, "warnings": warnings, "classes": classes,
            "ignore_pixels": int(pixels[IGNORE_INDEX]), "void_pixels": void_pixels,
            "splits": {k: len(v) for k, v in splits.items()},
            "mean": [round(float(v), 4) for v in mean], "std": [round(float(v), 4) for v in std]}


def plot(report: dict, path: Path, materials: MaterialMap) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = report["classes"]
    names = [c["name"] for c in classes]
    colors = [np.array(materials[c["id"]].color) / 255 for c in classes]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.bar(names, [100 * c["fraction"] for c in classes], color=colors, edgecolor="black")
    ax1.set_ylabel("% of labelled pixels")
    ax2.bar(names, [c["images"] for c in classes], color=colors, edgecolor="black")
    ax2.set_ylabel(f"images containing the class (of {report['pairs']})")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"Class distribution: {report['root']}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset root (HRIM2021 layout)")
    parser.add_argument("--json", type=Path, default=None, help="write the full report as JSON here")
    parser.add_argument("--plot", type=Path, default=None, help="write a class-distribution plot (PNG) here")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="mask colour tolerance")
    parser.add_argument("--max-distance", type=int, default=4, help="dHash distance for near-duplicates")
    parser.add_argument("--materials", type=Path, default=None, help="class map YAML (default: shipped)")


def run(args: argparse.Namespace) -> int:
    try:
        materials = load_materials(args.materials)
        report = validate(args.root, materials, args.tolerance, args.max_distance)
    except (DatasetError, MaterialsError) as exc:
        print(f"matseg data validate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    if args.plot:
        plot(report, args.plot, materials)
    print(f"{report['pairs']} image/mask pairs; splits: "
          + (", ".join(f"{k}={v}" for k, v in report["splits"].items()) or "none"))
    print(f"mean {report['mean']} std {report['std']}")
    for c in report["classes"]:
        print(f"  {c['id']:3d} {c['name']:<12} {100 * c['fraction']:6.2f}% of pixels, in {c['images']} images")
    for line in report["warnings"]:
        print(f"warning: {line}")
    for line in report["errors"]:
        print(f"error: {line}", file=sys.stderr)
    print(f"{len(report['errors'])} error(s), {len(report['warnings'])} warning(s)")
    return 1 if report["errors"] else 0
