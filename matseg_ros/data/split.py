"""`matseg data split DIR`: train/val/test/trainval lists, stratified by class presence.

Images are grouped first: an augmented copy `{id}_{k}` goes with its original `{id}`, so
copies of one photo never sit on both sides of a split. Groups are then assigned by
iterative stratification (Sechidis et al., 2011): the group holding the rarest class
goes first, to the split that still lacks that class most, so every split sees every
class in about the intended proportion even for rare classes.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..dataset_layout import DatasetError, image_dir, list_ids, mask_path, write_split
from ..masks import MaskError, read_mask
from ..materials import IGNORE_INDEX, MaterialMap, MaterialsError, load_materials

_COPY = re.compile(r"^(.+)_(\d+)$")


def group_ids(ids: list[str]) -> dict[str, list[str]]:
    """Original id -> [original, copies...]; `{id}_{k}` joins `{id}` when that id exists."""
    known = set(ids)
    groups: dict[str, list[str]] = defaultdict(list)
    for image_id in sorted(ids):
        match = _COPY.match(image_id)
        base = match.group(1) if match and match.group(1) in known else image_id
        groups[base].append(image_id)
    return dict(groups)


def stratified_split(presence: dict[str, set[int]], val: float = 0.15, test: float = 0.15,
                     seed: int = 0) -> dict[str, list[str]]:
    """Split ids (with the classes each contains) into train/val/test/trainval, grouped."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"--val and --test must be fractions in [0, 1) summing below 1, got {val}, {test}")
    groups = group_ids(list(presence))
    names = ["train", "val", "test"]
    fractions = np.array([1 - val - test, val, test])
    classes = sorted({c for cs in presence.values() for c in cs})
    column = {c: i for i, c in enumerate(classes)}
    keys = sorted(groups)
    has = np.zeros((len(keys), len(classes)), bool)
    for g, key in enumerate(keys):
        for image_id in groups[key]:
            for c in presence[image_id]:
                has[g, column[c]] = True
    want_class = fractions[:, None] * has.sum(axis=0)[None, :]
    initial = np.maximum(want_class, 1e-9)
    want_size = fractions * len(keys)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    counts = has.sum(axis=0)
    rarity = np.array([counts[has[g]].min() if has[g].any() else len(keys) + 1 for g in range(len(keys))])
    order = order[np.argsort(rarity[order], kind="stable")]
    assigned: dict[str, list[str]] = {n: [] for n in names}
    for g in order:
        # the split still lacking the largest share of this group's classes (relative, so
        # a small split gets its share of a rare class too), then the one lacking most images
        need = (want_class[:, has[g]] / initial[:, has[g]]).mean(axis=1) if has[g].any() else np.zeros(3)
        need = need + 1e-3 * want_size
        need = need - 1e6 * (want_size <= 0)
        need[fractions == 0] = -np.inf
        best = int(np.argmax(need + 1e-6 * rng.random(3)))
        want_class[best] -= has[g]
        want_size[best] -= 1
        assigned[names[best]].extend(groups[keys[g]])
    splits = {n: sorted(v) for n, v in assigned.items()}
    splits["trainval"] = sorted(splits["train"] + splits["val"])
    return splits


def write_splits(root: str | Path, splits: dict[str, list[str]]) -> None:
    for name, ids in splits.items():
        write_split(root, name, ids)


def class_presence(root: Path, ids: list[str], materials: MaterialMap, aug: bool = False) -> dict[str, set[int]]:
    presence = {}
    for image_id in ids:
        path = mask_path(root, image_id, aug)
        try:
            mask, _ = read_mask(path, materials)
        except MaskError as exc:
            raise DatasetError(str(exc)) from None
        present = np.flatnonzero(np.bincount(mask.ravel(), minlength=256))
        presence[image_id] = {int(c) for c in present} - {0, IGNORE_INDEX}
    return presence


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset root (HRIM2021 layout)")
    parser.add_argument("--val", type=float, default=0.15, help="validation fraction (default 0.15)")
    parser.add_argument("--test", type=float, default=0.15, help="test fraction (default 0.15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--materials", type=Path, default=None, help="class map YAML (default: shipped)")


def run(args: argparse.Namespace) -> int:
    try:
        materials = load_materials(args.materials)
        ids = list_ids(image_dir(args.root))
        if not ids:
            raise DatasetError(f"{image_dir(args.root)}: no images")
        splits = stratified_split(class_presence(args.root, ids, materials), args.val, args.test, args.seed)
    except (DatasetError, MaterialsError, ValueError) as exc:
        print(f"matseg data split: {exc}", file=sys.stderr)
        return 2
    write_splits(args.root, splits)
    print(" ".join(f"{k}={len(v)}" for k, v in splits.items()))
    return 0
