"""Readers for the annotation formats labelling tools export, into one in-memory form.

COCO JSON (polygons and RLE, `iscrowd`), LabelMe JSON, Pascal VOC XML boxes and
image-class folders all become `ImageEntry`s: an image file and its labelled `Shape`s in
drawing order (later shapes lie on top). Structural problems raise `AnnotationError`,
naming the file and the object; geometry is checked where the image size is known.
"""
from __future__ import annotations

import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ...io.dataset_layout import IMAGE_EXTENSIONS

SHAPE_KINDS = ("polygon", "rle", "box", "circle", "mask", "image")
EDGE_TOLERANCE = 1.0  # pixels a vertex may lie beyond the image edge (tools round outwards)


class AnnotationError(ValueError):
    """An annotation that cannot be imported; the message names the file and the object."""


@dataclass(frozen=True)
class Shape:
    """One labelled region. `data` by kind: polygon: list of [x0, y0, x1, y1, ...] rings;
    rle: COCO RLE dict; box/circle: (x0, y0, x1, y1) / (cx, cy, r) in pixels; mask:
    (x0, y0, base64 PNG) as LabelMe stores it; image: None (the whole image carries the label)."""
    category: str
    kind: str
    data: Any
    where: str
    crowd: bool = False


@dataclass
class ImageEntry:
    image: Path
    source: str                       # the annotation file (and record) that describes it
    width: int | None = None
    height: int | None = None
    shapes: list[Shape] = field(default_factory=list)


class Problems:
    """Where bad records go: raised at once (the default), or with `skip` listed and skipped."""

    def __init__(self, skip: bool = False) -> None:
        self.skip = skip
        self.skipped: list[str] = []

    def __call__(self, error: AnnotationError) -> None:
        if not self.skip:
            raise error
        self.skipped.append(str(error))


def _display(path: str | os.PathLike) -> str:
    """A path as text even when its bytes are not UTF-8 (shown escaped, never crashing)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def check_name(path: Path, where: str) -> None:
    """A file name must be valid UTF-8: it becomes a dataset id and a line of a split list."""
    try:
        os.fsdecode(path).encode("utf-8")
    except UnicodeEncodeError:
        raise AnnotationError(f"{where}: file name '{_display(path.name)}' is not valid UTF-8; "
                              f"rename the file") from None


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise AnnotationError(f"{_display(path)}: annotation file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"{_display(path)}: malformed JSON: {exc}") from None


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AnnotationError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def check_polygon(ring: Any, where: str) -> list[float]:
    """A flat [x0, y0, x1, y1, ...] ring with at least 3 distinct points and a non-zero area."""
    if not isinstance(ring, list) or len(ring) % 2:
        raise AnnotationError(f"{where}: a polygon must be a flat list of x, y pairs, got {str(ring)[:60]}")
    coords = [_number(v, where, "polygon coordinate") for v in ring]
    xs, ys = coords[0::2], coords[1::2]
    area = 0.5 * abs(sum(xs[i] * ys[i - 1] - xs[i - 1] * ys[i] for i in range(len(xs))))
    if len(set(zip(xs, ys))) < 3 or area < 1e-6:
        raise AnnotationError(f"{where}: degenerate polygon ({len(xs)} points, area {area:.3g} px²)")
    return coords


def check_inside(xs: list[float], ys: list[float], width: int | None, height: int | None, where: str) -> None:
    if width is None or height is None:
        return
    t = EDGE_TOLERANCE
    if min(xs) < -t or min(ys) < -t or max(xs) > width + t or max(ys) > height + t:
        raise AnnotationError(f"{where}: extends outside the {width}x{height} image "
                              f"(x {min(xs):g}..{max(xs):g}, y {min(ys):g}..{max(ys):g})")


def _size(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise AnnotationError(f"{where}: {what} must be a positive integer, got {value!r}")
    return value


# --- COCO ---------------------------------------------------------------------------------
def read_coco(annotations: Path, images: Path, problems: Problems | None = None) -> list[ImageEntry]:
    """COCO instances JSON (as CVAT, Label Studio, Roboflow export): polygons or RLE.

    A bad image record or annotation drops its image (with `problems.skip`) or raises."""
    problems = problems or Problems()
    doc = _load_json(annotations)
    where = _display(annotations)
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise AnnotationError(f"{where}: not COCO JSON: expected lists 'images', 'annotations', 'categories'")
    categories: dict[int, str] = {}
    for i, cat in enumerate(doc["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            raise AnnotationError(f"{where}: categories[{i}] needs an integer 'id' and a string 'name'")
        if cat["id"] in categories:
            raise AnnotationError(f"{where}: categories[{i}]: duplicate category id {cat['id']}")
        categories[cat["id"]] = cat["name"]
    entries: dict[int, ImageEntry] = {}
    bad: set[int] = set()
    for i, img in enumerate(doc["images"]):
        try:
            if not isinstance(img, dict) or not isinstance(img.get("id"), int) or not isinstance(img.get("file_name"), str):
                raise AnnotationError(f"{where}: images[{i}] needs an integer 'id' and a string 'file_name'")
            if img["id"] in entries:
                bad.add(img["id"])
                raise AnnotationError(f"{where}: images[{i}] ({img['file_name']}): duplicate image id {img['id']}")
            entries[img["id"]] = ImageEntry(images / img["file_name"], f"{where} image id {img['id']}",
                                            _size(img.get("width"), f"{where}: images[{i}]", "width"),
                                            _size(img.get("height"), f"{where}: images[{i}]", "height"))
        except AnnotationError as exc:
            problems(exc)
    seen: set[Any] = set()
    for i, ann in enumerate(doc["annotations"]):
        obj = f"{where}: annotations[{i}] (id {ann.get('id') if isinstance(ann, dict) else '?'})"
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        try:
            _coco_annotation(ann, obj, entries.get(image_id), categories, seen)
        except AnnotationError as exc:
            bad.add(image_id)
            problems(exc)
    return [entry for key, entry in entries.items() if key not in bad]


def _coco_annotation(ann: Any, obj: str, entry: ImageEntry | None, categories: dict[int, str],
                     seen: set[Any]) -> None:
    if not isinstance(ann, dict):
        raise AnnotationError(f"{obj}: expected an object")
    if ann.get("id") in seen:
        raise AnnotationError(f"{obj}: duplicate annotation id")
    seen.add(ann.get("id"))
    if entry is None:
        raise AnnotationError(f"{obj}: image_id {ann.get('image_id')!r} is not in 'images'")
    if ann.get("category_id") not in categories:
        raise AnnotationError(f"{obj}: category_id {ann.get('category_id')!r} is not in 'categories'")
    category, crowd = categories[ann["category_id"]], bool(ann.get("iscrowd", 0))
    seg = ann.get("segmentation")
    if isinstance(seg, list) and seg:
        rings = [check_polygon(ring, obj) for ring in seg]
        for ring in rings:
            check_inside(ring[0::2], ring[1::2], entry.width, entry.height, obj)
        entry.shapes.append(Shape(category, "polygon", rings, obj, crowd))
    elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if list(seg["size"]) != [entry.height, entry.width]:
            raise AnnotationError(f"{obj}: RLE size {seg['size']} differs from the image's "
                                  f"[{entry.height}, {entry.width}]")
        entry.shapes.append(Shape(category, "rle", seg, obj, crowd))
    else:
        raise AnnotationError(f"{obj}: 'segmentation' must be polygons or an RLE dict "
                              f"(a box-only COCO file: import its boxes as VOC, or add masks)")


# --- LabelMe ------------------------------------------------------------------------------
def _labelme_shape(shape: Any, obj: str, width: int, height: int) -> Shape | None:
    if not isinstance(shape, dict) or not isinstance(shape.get("label"), str):
        raise AnnotationError(f"{obj}: a shape needs a string 'label'")
    kind = shape.get("shape_type") or "polygon"
    points = shape.get("points")
    if kind in ("line", "linestrip", "point", "points"):
        return None  # no area to label
    if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 2 for p in points):
        raise AnnotationError(f"{obj}: 'points' must be a list of [x, y]")
    xs = [_number(p[0], obj, "x") for p in points]
    ys = [_number(p[1], obj, "y") for p in points]
    label = shape["label"]
    if kind == "polygon":
        ring = check_polygon([v for p in zip(xs, ys) for v in p], obj)
        check_inside(xs, ys, width, height, obj)
        return Shape(label, "polygon", [ring], obj)
    if kind == "rectangle" and len(points) == 2:
        check_inside(xs, ys, width, height, obj)
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        ring = check_polygon([x0, y0, x1, y0, x1, y1, x0, y1], obj)
        return Shape(label, "polygon", [ring], obj)
    if kind == "circle" and len(points) == 2:
        r = math.hypot(xs[1] - xs[0], ys[1] - ys[0])
        check_inside([xs[0] - r, xs[0] + r], [ys[0] - r, ys[0] + r], width, height, obj)
        if r < 0.5:
            raise AnnotationError(f"{obj}: degenerate circle (radius {r:.3g} px)")
        return Shape(label, "circle", (xs[0], ys[0], r), obj)
    if kind == "mask" and len(points) == 2 and isinstance(shape.get("mask"), str):
        return Shape(label, "mask", (xs[0], ys[0], shape["mask"]), obj)
    raise AnnotationError(f"{obj}: unsupported LabelMe shape_type {kind!r} with {len(points)} points")


def _per_file(annotations: Path, pattern: str, what: str, parse, problems: Problems | None) -> list[ImageEntry]:
    """One entry per annotation file of a folder (or the one file given); a bad file is
    raised, or with `problems.skip` listed and skipped."""
    problems = problems or Problems()
    files = sorted(annotations.glob(pattern)) if annotations.is_dir() else [annotations]
    if not files:
        raise AnnotationError(f"{_display(annotations)}: no {what} files found")
    entries = []
    for path in files:
        try:
            entries.append(parse(path))
        except AnnotationError as exc:
            problems(exc)
    return entries


def read_labelme(annotations: Path, images: Path | None = None,
                 problems: Problems | None = None) -> list[ImageEntry]:
    """A folder of LabelMe JSON files (one per image; `imagePath` relative to the JSON)."""
    return _per_file(annotations, "*.json", "LabelMe .json", lambda path: _labelme_file(path, images), problems)


def _labelme_file(path: Path, images: Path | None) -> ImageEntry:
    where = _display(path)
    doc = _load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("shapes"), list) or not isinstance(doc.get("imagePath"), str):
        raise AnnotationError(f"{where}: not LabelMe JSON: expected 'shapes' and 'imagePath'")
    width = _size(doc.get("imageWidth"), where, "imageWidth")
    height = _size(doc.get("imageHeight"), where, "imageHeight")
    image_path = Path(doc["imagePath"].replace("\\", "/"))
    image = images / image_path.name if images is not None else path.parent / image_path
    entry = ImageEntry(image, where, width, height)
    for i, shape in enumerate(doc["shapes"]):
        label = shape.get("label") if isinstance(shape, dict) else "?"
        found = _labelme_shape(shape, f"{where}: shapes[{i}] ({label})", width, height)
        if found is not None:
            entry.shapes.append(found)
    return entry


# --- Pascal VOC boxes ---------------------------------------------------------------------
def _find_image(images: Path, folder: str | None, filename: str) -> Path:
    candidates = [images / folder / filename] if folder else []
    candidates.append(images / filename)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def read_voc(annotations: Path, images: Path, problems: Problems | None = None) -> list[ImageEntry]:
    """Pascal VOC XML files with `object/bndbox` boxes (1-based inclusive pixel corners)."""
    return _per_file(annotations, "*.xml", "VOC .xml", lambda path: _voc_file(path, images), problems)


def _voc_file(path: Path, images: Path) -> ImageEntry:
    where = _display(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise AnnotationError(f"{where}: malformed XML: {exc}") from None
    filename = root.findtext("filename")
    if not filename:
        raise AnnotationError(f"{where}: no <filename>")
    try:
        width, height = int(root.findtext("size/width")), int(root.findtext("size/height"))
    except (TypeError, ValueError):
        width = height = None  # taken from the image itself
    entry = ImageEntry(_find_image(images, root.findtext("folder"), filename), where, width, height)
    for i, obj in enumerate(root.findall("object")):
        name = (obj.findtext("name") or "").strip()
        label = f"{where}: object {i} ({name or '?'})"
        if not name:
            raise AnnotationError(f"{label}: no <name>")
        try:
            x0, y0, x1, y1 = (float(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise AnnotationError(f"{label}: <bndbox> needs numeric xmin, ymin, xmax, ymax") from None
        x0, y0 = x0 - 1, y0 - 1  # 1-based inclusive -> 0-based half-open pixel edges
        if not (x1 > x0 and y1 > y0):
            raise AnnotationError(f"{label}: degenerate box ({x0 + 1:g}, {y0 + 1:g}, {x1:g}, {y1:g})")
        check_inside([x0, x1], [y0, y1], width, height, label)
        entry.shapes.append(Shape(name, "box", (x0, y0, x1, y1), label))
    return entry


# --- image-class folders ------------------------------------------------------------------
def read_folders(annotations: Path | None, images: Path, problems: Problems | None = None) -> list[ImageEntry]:
    """`images/<category>/<file>`: one label for the whole image (its object found by GrabCut).

    The folder names are the annotations; `annotations` must be None."""
    if annotations is not None:
        raise AnnotationError(f"{_display(annotations)}: the folders format takes no annotation file: "
                              f"the category is the name of each image's folder")
    if not images.is_dir():
        raise AnnotationError(f"{_display(images)}: folder not found")
    entries = []
    for folder in sorted(p for p in images.iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir()):
            if path.suffix in IMAGE_EXTENSIONS:
                entries.append(ImageEntry(path, _display(path), shapes=[Shape(folder.name, "image", None, _display(path))]))
    if not entries:
        raise AnnotationError(f"{_display(images)}: no <category>/<image> files found")
    return entries


READERS: dict[str, Callable[..., list[ImageEntry]]] = {
    "coco": read_coco, "labelme": read_labelme, "voc": read_voc, "folders": read_folders,
}


def categories(entries: list[ImageEntry]) -> Iterator[str]:
    for entry in entries:
        for shape in entry.shapes:
            yield shape.category
