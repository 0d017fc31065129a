"""`matseg data split DIR`: train/val/test/trainval lists, stratified by class presence.

Images are grouped first: an augmented copy `{id}_{k}` goes with its original `{id}`, so
copies of one photo never sit on both sides of a split. Groups are then assigned by
iterative stratification (Sechidis et al., 2011): the rarest class's groups go first,
each to the split that still lacks that class most, so every split holds about its
fraction of every class, rare or common.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..io.dataset_layout import DatasetError, image_dir, list_ids, mask_path, write_split
from ..io.masks import MaskError, read_mask
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
    """Split ids (with the classes each contains) into train/val/test/trainval, grouped.

    Iterative stratification (Sechidis et al., 2011, algorithm 1) over groups: take the class
    held by the fewest unassigned groups; give each of its groups (in random order) to the
    split that still wants that class most, ties to the split wanting most images, then at
    random. Each split then holds about its fraction of every class's images.
    """
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
    sizes = np.array([len(groups[key]) for key in keys])
    want_class = fractions[:, None] * has.sum(axis=0)[None, :]
    want_size = fractions * sizes.sum()
    open_split = fractions > 0
    rng = np.random.default_rng(seed)
    owner = np.full(len(keys), -1)

    def assign(g: int, want: np.ndarray) -> None:
        # lexsort: the last key is primary; splits with fraction 0 never win
        best = np.lexsort((rng.random(3), want_size, want, open_split))[-1]
        owner[g] = best
        want_class[best] -= has[g]
        want_size[best] -= sizes[g]

    while (owner < 0).any():
        left = owner < 0
        held = has[left].sum(axis=0)
        if not held.any():  # groups without any class: by size alone
            for g in rng.permutation(np.flatnonzero(left)):
                assign(g, np.zeros(3))
            break
        rarest = int(np.argmin(np.where(held > 0, held, np.iinfo(held.dtype).max)))
        for g in rng.permutation(np.flatnonzero(left & has[:, rarest])):
            assign(g, want_class[:, rarest])
    splits = {n: sorted(i for g in np.flatnonzero(owner == k) for i in groups[keys[g]])
              for k, n in enumerate(names)}
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
