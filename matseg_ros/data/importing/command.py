"""`matseg data import`: real annotations (COCO, LabelMe, VOC boxes, class folders) into
the HRIM2021 layout that `validate`, `train` and `eval` read.

The output appears only when complete: it is built in a hidden folder beside it and
renamed into place, and an existing output is replaced only with `--force`. Besides
images, masks and split lists it holds `provenance.json` (sources, licence, mapping,
counts per class, what was skipped and why) and, for box and image-level labels,
`objects.json` (the boxes `matseg eval` scores object accuracy on).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ... import __version__
from ...fileio import atomic_folder, atomic_write_text, refuse_existing, sanitize_filename
from ...io.dataset_layout import OBJECTS_FILE, image_dir, mask_path
from ...io.masks import write_mask
from ...materials import IGNORE_INDEX, MaterialMap, MaterialsError, load_materials
from ..split import stratified_split, write_splits
from ..workers import ordered_map
from .formats import READERS, AnnotationError, ImageEntry, Problems, categories, check_name
from .mapping import MappingError, check_mapped, load_mapping
from .masks import BoxSettings, render

PROVENANCE_FILE = "provenance.json"


def assign_ids(entries: list[ImageEntry], problems: Problems) -> dict[str, ImageEntry]:
    """Dataset id per image: its sanitised file stem; a clash between two images is an error."""
    out: dict[str, ImageEntry] = {}
    for entry in entries:
        try:
            check_name(entry.image, entry.source)
            image_id = sanitize_filename(entry.image.stem)
            if image_id in out:
                raise AnnotationError(f"{entry.source}: duplicate id {image_id!r}: {entry.image} and "
                                      f"{out[image_id].image} map to the same dataset id")
        except AnnotationError as exc:
            problems(exc)
            continue
        out[image_id] = entry
    return out


# --- one image, in a worker -----------------------------------------------------------------
_STATE: dict[str, Any] = {}


def _init(output: str, values: dict[str, int], materials_json: str, crowd_ignore: bool, box: BoxSettings) -> None:
    cv2.setNumThreads(1)
    _STATE.update(output=Path(output), values=values, materials=MaterialMap.from_json(materials_json),
                  crowd_ignore=crowd_ignore, box=box)


def _import_one(item: tuple[str, ImageEntry]) -> dict[str, Any]:
    """Copy the image bytes, write the mask; a problem comes back as {'error': ...}."""
    image_id, entry = item
    s = _STATE
    try:
        data = entry.image.read_bytes()
    except OSError as exc:
        return {"id": image_id, "error": f"{entry.source}: cannot read image {entry.image}: {exc.strerror or exc}"}
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        return {"id": image_id, "error": f"{entry.source}: cannot decode image {entry.image} (corrupt or not an image)"}
    h, w = bgr.shape[:2]
    if entry.width is not None and (w, h) != (entry.width, entry.height):
        hint = " (EXIF orientation rotates it)" if (h, w) == (entry.width, entry.height) else ""
        return {"id": image_id, "error": f"{entry.source}: image {entry.image} is {w}x{h}{hint}, "
                                         f"the annotation says {entry.width}x{entry.height}"}
    try:
        ids, unsure = render(entry.shapes, np.ascontiguousarray(bgr[..., ::-1]), s["values"],
                             s["crowd_ignore"], s["box"])
    except AnnotationError as exc:
        return {"id": image_id, "error": str(exc)}
    suffix = entry.image.suffix.lower()
    (image_dir(s["output"]) / f"{image_id}{'.jpg' if suffix == '.jpeg' else suffix}").write_bytes(data)
    write_mask(mask_path(s["output"], image_id), ids, s["materials"])
    counts = np.bincount(ids.ravel(), minlength=256)
    objects = [{"box": list(shape.data) if shape.kind == "box" else [0.0, 0.0, float(w), float(h)],
                "category": shape.category, "material": s["values"][shape.category]}
               for shape in entry.shapes
               if shape.kind in ("box", "image") and s["values"][shape.category] != IGNORE_INDEX]
    return {"id": image_id, "pixels": {int(c): int(counts[c]) for c in np.flatnonzero(counts)},
            "unsure": unsure, "objects": objects}


# --- the whole import -----------------------------------------------------------------------
def import_dataset(fmt: str, annotations: Path | None, images: Path, mapping_file: Path, output: Path,
                   materials: MaterialMap, *, val: float = 0.15, test: float = 0.15, seed: int = 0,
                   split_as: str | None = None, workers: int = 1, skip_bad: bool = False,
                   force: bool = False, crowd_ignore: bool = True, box: BoxSettings = BoxSettings(),
                   licence: Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Import one annotated set; returns the provenance document (also written to the output)."""
    if fmt not in READERS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(READERS)}")
    refuse_existing(output, force)
    if not images.is_dir():
        raise AnnotationError(f"{images}: image folder not found")
    values, extra = load_mapping(mapping_file, materials)
    problems = Problems(skip_bad)
    entries = READERS[fmt](annotations, images, problems)
    check_mapped(categories(entries), values, mapping_file)
    by_id = assign_ids(entries, problems)
    if not by_id:
        raise AnnotationError(f"{annotations or images}: no images to import")

    with atomic_folder(output, force, "importing") as work:
        image_dir(work).mkdir()
        init = (str(work), values, materials.to_json(), crowd_ignore, box)
        results = ordered_map(_import_one, sorted(by_id.items()), _init, init, workers,
                              "import" if progress else None)
        done = []
        for result in results:
            if "error" in result:
                problems(AnnotationError(result["error"]))
            else:
                done.append(result)
        if not done:
            raise AnnotationError(f"{annotations or images}: every image failed to import")
        doc = _finish(work, done, fmt, annotations, images, mapping_file, values, extra, materials,
                      problems, val, test, seed, split_as, licence)
    return doc


def _finish(work: Path, done: list[dict[str, Any]], fmt: str, annotations: Path | None, images: Path,
            mapping_file: Path, values: dict[str, int], extra: dict[str, Any], materials: MaterialMap,
            problems: Problems, val: float, test: float, seed: int, split_as: str | None,
            licence: Path | None) -> dict[str, Any]:
    presence = {r["id"]: {c for c in r["pixels"] if c not in (0, IGNORE_INDEX)} for r in done}
    if split_as:
        splits = {split_as: sorted(presence)}
    else:
        splits = stratified_split(presence, val, test, seed)
    write_splits(work, splits)
    objects = {r["id"]: r["objects"] for r in done if r["objects"]}
    if objects:
        atomic_write_text(work / OBJECTS_FILE, json.dumps(objects, indent=1, sort_keys=True) + "\n")
    if licence is not None:
        shutil.copyfile(licence, work / "LICENSE")
    pixels: dict[str, int] = {}
    image_counts: dict[str, int] = {}
    for r in done:
        for c, n in r["pixels"].items():
            name = "ignore" if c == IGNORE_INDEX else materials[c].name
            pixels[name] = pixels.get(name, 0) + n
            image_counts[name] = image_counts.get(name, 0) + 1
    names = {m.id: m.name for m in materials.materials}
    doc = {
        "format": fmt,
        "annotations": str(annotations) if annotations else None,
        "images": str(images),
        "mapping_file": str(mapping_file),
        "mapping": {k: ("ignore" if v == IGNORE_INDEX else names[v]) for k, v in sorted(values.items())},
        **{k: v for k, v in extra.items() if isinstance(v, (str, int, float, list, dict))},
        "licence_file": "LICENSE" if licence is not None else None,
        "imported": len(done),
        "splits": {k: len(v) for k, v in splits.items()},
        "pixels_per_class": dict(sorted(pixels.items())),
        "images_per_class": dict(sorted(image_counts.items())),
        "objects": sum(len(v) for v in objects.values()),
        "boxes_without_a_confident_mask": sum(r["unsure"] for r in done),
        "skipped": problems.skipped,
        "matseg_ros": __version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(work / PROVENANCE_FILE, json.dumps(doc, indent=2) + "\n")
    return doc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=sorted(READERS),
                        help="coco: instances JSON; labelme: folder of JSON; voc: folder of XML boxes; "
                             "folders: images/<category>/<file>")
    parser.add_argument("--annotations", type=Path, default=None,
                        help="COCO JSON file, or the folder of LabelMe JSON / VOC XML files")
    parser.add_argument("--images", type=Path, required=True, help="image folder the annotations refer to")
    parser.add_argument("--mapping", type=Path, required=True,
                        help="YAML: source category -> material name or 'ignore'")
    parser.add_argument("--output", type=Path, required=True, help="dataset folder to create")
    parser.add_argument("--val", type=float, default=0.15, help="validation fraction (default 0.15)")
    parser.add_argument("--test", type=float, default=0.15, help="test fraction (default 0.15)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument("--split-as", default=None, metavar="NAME",
                        help="list every image in one split instead (e.g. test, for a held-out set)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip (and list) bad images and annotations instead of stopping at the first")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")
    parser.add_argument("--crowd", choices=("ignore", "label"), default="ignore",
                        help="COCO iscrowd regions: ignore (default) or label with their material")
    parser.add_argument("--box-band", type=float, default=BoxSettings.band,
                        help="box/image labels: ignore band around the GrabCut object, as a fraction "
                             "of the box's shorter side (default %(default)s)")
    parser.add_argument("--licence", type=Path, default=None, help="licence file to copy into the output")
    parser.add_argument("--materials", type=Path, default=None, help="class map YAML (default: shipped)")


def run(args: argparse.Namespace) -> int:
    if args.format != "folders" and args.annotations is None:
        print(f"matseg data import: --annotations is required for --format {args.format}", file=sys.stderr)
        return 2
    try:
        doc = import_dataset(
            args.format, args.annotations, args.images, args.mapping, args.output,
            load_materials(args.materials), val=args.val, test=args.test, seed=args.seed,
            split_as=args.split_as, workers=args.workers, skip_bad=args.skip_bad, force=args.force,
            crowd_ignore=args.crowd == "ignore", box=BoxSettings(band=args.box_band),
            licence=args.licence, progress=sys.stderr.isatty())
    except (AnnotationError, MappingError, MaterialsError, FileExistsError, ValueError) as exc:
        print(f"matseg data import: {exc}", file=sys.stderr)
        return 2
    print(f"imported {doc['imported']} images into {args.output} "
          f"({', '.join(f'{k} {v}' for k, v in doc['splits'].items())})")
    if doc["skipped"]:
        print(f"skipped {len(doc['skipped'])}:")
        for line in doc["skipped"]:
            print(f"  {line}")
    if doc["boxes_without_a_confident_mask"]:
        print(f"{doc['boxes_without_a_confident_mask']} boxes got no confident GrabCut mask (left as ignore)")
    return 0
