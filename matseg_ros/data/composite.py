"""`matseg data composite`: multi-material images from one-material photos (copy-paste, mosaic).

Photos of one object on a board teach a model "one photo, one material". Each output is
either a background (a photo or synthetic room, its own labels kept where nothing covers
them) with cut-outs of other photos' objects pasted on top, or a 2×2 mosaic of four photos
(`copy_paste.py` says how masks follow). Only the named split of every input is read, so
training composites come from training splits only and a test set from test splits only.

Image `i` is drawn from `SeedSequence(seed, spawn_key=(i, attempt))`: the same command
gives the same bytes whatever `--workers`. Objects are drawn material first (uniform over
the materials the cut-outs have), then a cut-out of that material, so rare materials are
pasted as often as common ones.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import __version__
from ..fileio import atomic_folder, atomic_write_text, refuse_existing
from ..io.dataset_layout import DatasetError, find_image, image_dir, mask_path, read_rgb, read_split
from ..io.masks import MaskError, read_mask, write_mask
from ..materials import IGNORE_INDEX, MaterialMap, MaterialsError, load_materials
from ..training.collapse import truth_materials
from . import copy_paste
from .split import write_splits
from .workers import ordered_map

MAX_ATTEMPTS = 50
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Settings:
    count: int
    seed: int = 0
    size: tuple[int, int] = (384, 512)
    objects: tuple[int, int] = (2, 4)
    scale: tuple[float, float] = (0.3, 1.0)  # object box's longer side / the output's shorter side
    rotation: float = 30.0
    mosaic: float = 0.0
    min_materials: int = 1
    feather: float = 1.0

    def check(self) -> None:
        problems = [(self.count < 1, f"--count must be at least 1, got {self.count}"),
                    (min(self.size) < 16, f"--size H W must be at least 16 16, got {self.size}"),
                    (not 0 <= self.objects[0] <= self.objects[1],
                     f"--objects-per-image MIN MAX needs 0 <= MIN <= MAX, got {self.objects}"),
                    (not 0 < self.scale[0] <= self.scale[1], f"--scale MIN MAX needs 0 < MIN <= MAX, got {self.scale}"),
                    (not 0 <= self.mosaic <= 1, f"--mosaic must be a share in [0, 1], got {self.mosaic}"),
                    (self.min_materials < 0, f"--min-materials must be >= 0, got {self.min_materials}")]
        for bad, message in problems:
            if bad:
                raise ValueError(message)


def parse_input(text: str, split: str) -> tuple[Path, str]:
    """'DIR' -> (DIR, split); 'DIR:SPLIT' -> (DIR, SPLIT)."""
    folder, sep, name = text.rpartition(":")
    if sep and folder and name and "/" not in name:
        return Path(folder), name
    return Path(text), split


def _label(roots: list[Path]) -> list[str]:
    """Short, unique names of the input folders, as provenance refers to them."""
    names = [r.name or str(r) for r in roots]
    return [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]


# --- in the workers ---------------------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init(state: dict[str, Any], materials_json: str) -> None:
    cv2.setNumThreads(1)
    _load.cache_clear()
    _regions.cache_clear()
    _STATE.clear()
    _STATE.update(state, materials=MaterialMap.from_json(materials_json))


@functools.lru_cache(maxsize=48)
def _load(root: str, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    rgb = read_rgb(find_image(root, image_id))
    try:
        ids, _ = read_mask(mask_path(root, image_id), _STATE["materials"])
    except MaskError as exc:
        raise DatasetError(str(exc)) from None
    if ids.shape != rgb.shape[:2]:
        raise DatasetError(f"{mask_path(root, image_id)}: mask is {ids.shape[1]}x{ids.shape[0]}, "
                           f"its image {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb, ids


@functools.lru_cache(maxsize=48)
def _regions(root: str, image_id: str) -> tuple[np.ndarray, list[dict]]:
    return copy_paste.labelled_regions(_load(root, image_id)[1])


def _index_one(item: tuple[int, str, str]) -> list[tuple[int, str, int, int]]:
    """The cut-outs of one source image: (source, id, component label, material)."""
    source, root, image_id = item
    return [(source, image_id, r["label"], r["material"]) for r in _regions(root, image_id)[1]]


def _photo(rng: np.random.Generator) -> tuple[str, tuple[np.ndarray, np.ndarray]]:
    """A whole photo: a background, or (half the time, or when there are no backgrounds) the
    photo of a cut-out drawn material first."""
    s = _STATE
    if s["backgrounds"] and (rng.random() < 0.5 or not s["cutouts"]):
        b, image_id = s["backgrounds"][int(rng.integers(len(s["backgrounds"])))]
        return f"{s['background_names'][b]}/{image_id}", _load(s["background_roots"][b], image_id)
    source, image_id, _, _ = _draw_cutout(rng)
    return f"{s['source_names'][source]}/{image_id}", _load(s["source_roots"][source], image_id)


def _draw_cutout(rng: np.random.Generator) -> tuple[int, str, int, int]:
    by_material = _STATE["by_material"]
    material = sorted(by_material)[int(rng.integers(len(by_material)))]
    choices = by_material[material]
    return _STATE["cutouts"][choices[int(rng.integers(len(choices)))]]


def _compose(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    s, cfg = _STATE, _STATE["settings"]
    size = cfg.size
    if rng.random() < cfg.mosaic:
        names, photos = zip(*(_photo(rng) for _ in range(4)))
        rgb, ids = copy_paste.mosaic(list(photos), size, rng)
        return rgb, ids, {"kind": "mosaic", "photos": list(names)}
    name, (photo, labels) = _photo(rng)
    rgb, ids = copy_paste.fit(photo, labels, size, rng)
    pasted = []
    for _ in range(int(rng.integers(cfg.objects[0], cfg.objects[1] + 1))):
        source, image_id, label, _ = _draw_cutout(rng)
        root = s["source_roots"][source]
        piece = copy_paste.cut(*_load(root, image_id), _regions(root, image_id)[0], label)
        if rng.random() < 0.5:
            piece = copy_paste.flipped(piece)
        piece = copy_paste.Cutout(copy_paste.jitter(piece.rgb, rng), piece.ids, piece.support)
        ys, xs = np.nonzero(piece.support)
        box = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        zoom = rng.uniform(*cfg.scale) * min(size) / box
        centre = (rng.uniform(0, size[1] - 1), rng.uniform(0, size[0] - 1))
        matrix = copy_paste.placement(piece, centre, zoom, rng.uniform(-cfg.rotation, cfg.rotation))
        rgb, ids = copy_paste.paste(rgb, ids, piece, matrix, cfg.feather)
        pasted.append(f"{s['source_names'][source]}/{image_id}#{label}")
    return rgb, ids, {"kind": "paste", "background": name, "objects": pasted}


def _make_one(index: int) -> dict[str, Any]:
    """Compose image `index` (resampled until it holds --min-materials) and write it."""
    s, cfg = _STATE, _STATE["settings"]
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(index, attempt)))
        rgb, ids, info = _compose(rng)
        if len(truth_materials(ids)) >= cfg.min_materials:
            break
    else:
        raise ValueError(f"image {index}: no composite with {cfg.min_materials} materials in {MAX_ATTEMPTS} "
                         "tries; lower --min-materials or add objects (--objects-per-image)")
    image_id = f"{index:06d}"
    ok, jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"could not encode image {image_id} as JPEG")
    (image_dir(s["output"]) / f"{image_id}.jpg").write_bytes(jpeg.tobytes())
    write_mask(mask_path(s["output"], image_id), ids, s["materials"])
    counts = np.bincount(ids.ravel(), minlength=256)
    return {"id": image_id, **info, "attempts": attempt + 1,
            "pixels": {int(c): int(counts[c]) for c in np.flatnonzero(counts)}}


# --- the whole set ----------------------------------------------------------------------------
def compose_dataset(sources: list[tuple[Path, str]], backgrounds: list[tuple[Path, str]], output: Path,
                    settings: Settings, split: str = "train", val: float = 0.0,
                    materials: MaterialMap | None = None, workers: int = 1, force: bool = False,
                    progress: bool = False, command: str = "") -> dict[str, Any]:
    """Write `settings.count` composites to `output`; returns the provenance document."""
    settings.check()
    if not sources:
        raise ValueError("at least one --source is needed")
    if not 0 <= val < 1:
        raise ValueError(f"--val must be a fraction in [0, 1), got {val}")
    refuse_existing(output, force)
    materials = materials or load_materials()
    source_ids = [read_split(root, name) for root, name in sources]
    background_ids = [read_split(root, name) for root, name in backgrounds]
    state = {"settings": settings, "source_roots": [str(r) for r, _ in sources],
             "source_names": _label([r for r, _ in sources]),
             "background_roots": [str(r) for r, _ in backgrounds],
             "background_names": _label([r for r, _ in backgrounds]),
             "backgrounds": [(b, i) for b, ids in enumerate(background_ids) for i in ids],
             "cutouts": [], "by_material": {}}
    items = [(s, str(root), i) for s, ((root, _), ids) in enumerate(zip(sources, source_ids)) for i in ids]
    bar = "cut-outs" if progress else None
    cutouts = [c for found in ordered_map(_index_one, items, _init, (state, materials.to_json()), workers, bar)
               for c in found]
    if not cutouts:
        raise DatasetError(f"no labelled region of at least {copy_paste.MIN_CUTOUT_SHARE:.1%} of its photo "
                           f"in the {split} splits of {', '.join(str(r) for r, _ in sources)}")
    by_material: dict[int, list[int]] = {}
    for k, c in enumerate(cutouts):
        by_material.setdefault(c[3], []).append(k)
    state.update(cutouts=cutouts, by_material=by_material)

    with atomic_folder(output, force, "composing") as work:
        image_dir(work).mkdir()
        state["output"] = str(work)
        done = list(ordered_map(_make_one, range(settings.count), _init, (state, materials.to_json()),
                                workers, "composite" if progress else None))
        doc = _provenance(done, sources, backgrounds, source_ids, background_ids, cutouts, settings,
                          split, materials, command)
        ids = [d["id"] for d in done]
        held = set(np.random.default_rng(settings.seed).permutation(len(ids))[:round(val * len(ids))].tolist())
        splits = {split: [i for k, i in enumerate(ids) if k not in held]}
        if held:
            splits["val"] = [i for k, i in enumerate(ids) if k in held]
        if split == "train":
            splits["trainval"] = ids
        write_splits(work, splits)
        doc["splits"] = {k: len(v) for k, v in splits.items()}
        atomic_write_text(work / "provenance.json", json.dumps(doc, indent=2) + "\n")
    return doc


def _provenance(done, sources, backgrounds, source_ids, background_ids, cutouts, settings, split,
                materials, command) -> dict[str, Any]:
    names = {m.id: m.name for m in materials}
    names[IGNORE_INDEX] = "ignore"
    pixels: dict[str, int] = {}
    images: dict[str, int] = {}
    for d in done:
        for c, n in d["pixels"].items():
            pixels[names[c]] = pixels.get(names[c], 0) + n
            images[names[c]] = images.get(names[c], 0) + 1
    per_source = [sum(c[0] == s for c in cutouts) for s in range(len(sources))]
    return {
        "generator": "matseg data composite", "command": command, "split": split,
        "settings": asdict(settings),
        "sources": [{"folder": str(r), "split": n, "images": len(i), "cutouts": k}
                    for (r, n), i, k in zip(sources, source_ids, per_source)],
        "backgrounds": [{"folder": str(r), "split": n, "images": len(i)} for (r, n), i in zip(backgrounds, background_ids)],
        "cutouts_per_material": {names[m]: sum(c[3] == m for c in cutouts) for m in sorted({c[3] for c in cutouts})},
        "count": len(done), "mosaics": sum(d["kind"] == "mosaic" for d in done),
        "pastes": sum(len(d.get("objects", [])) for d in done),
        "pixels_per_class": dict(sorted(pixels.items())), "images_per_class": dict(sorted(images.items())),
        "images": {d["id"]: {k: v for k, v in d.items() if k not in ("id", "pixels")} for d in done},
        "matseg_ros": __version__,
    }


# --- command line -----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", action="append", default=[], required=True, metavar="DIR[:SPLIT]",
                        help="HRIM2021-layout set whose labelled regions are cut out (repeatable)")
    parser.add_argument("--background", action="append", default=[], metavar="DIR[:SPLIT]",
                        help="set whose images are used whole as backgrounds (repeatable; "
                             "default: the sources' photos)")
    parser.add_argument("--split", default="train",
                        help="the only split read from every input, and the output's split (default train)")
    parser.add_argument("--output", type=Path, required=True, help="dataset folder to create")
    parser.add_argument("--count", type=int, required=True, help="number of images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--objects-per-image", type=int, nargs=2, default=(2, 4), metavar=("MIN", "MAX"))
    parser.add_argument("--size", type=int, nargs=2, default=(384, 512), metavar=("H", "W"),
                        help="output height and width (default 384 512)")
    parser.add_argument("--scale", type=float, nargs=2, default=(0.3, 1.0), metavar=("MIN", "MAX"),
                        help="an object's longer box side over the output's shorter side (default 0.3 1.0)")
    parser.add_argument("--mosaic", type=float, default=0.0, metavar="P",
                        help="share of the images that are 2x2 mosaics of four photos (default 0)")
    parser.add_argument("--min-materials", type=int, default=1,
                        help="resample an image until its truth holds this many materials, each >= 1 %% "
                             "of its labelled pixels (default 1; 2 for a test set)")
    parser.add_argument("--val", type=float, default=0.0, help="fraction listed in val.txt instead (default 0)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--materials", type=Path, default=None, help="class map YAML (default: shipped)")


def run(args: argparse.Namespace) -> int:
    settings = Settings(count=args.count, seed=args.seed, size=tuple(args.size),
                        objects=tuple(args.objects_per_image), scale=tuple(args.scale),
                        mosaic=args.mosaic, min_materials=args.min_materials)
    try:
        doc = compose_dataset([parse_input(t, args.split) for t in args.source],
                              [parse_input(t, args.split) for t in args.background], args.output, settings,
                              args.split, args.val, load_materials(args.materials), args.workers, args.force,
                              progress=sys.stderr.isatty(), command=shlex.join(["matseg", *sys.argv[1:]]))
    except (DatasetError, MaterialsError, FileExistsError, ValueError) as exc:
        print(f"matseg data composite: {exc}", file=sys.stderr)
        return 2
    print(f"{doc['count']} composites ({doc['mosaics']} mosaics, {doc['pastes']} pasted objects) in "
          f"{args.output}: " + ", ".join(f"{k} {v}" for k, v in doc["splits"].items()))
    return 0
