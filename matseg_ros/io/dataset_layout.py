"""The HRIM2021 (Pascal-VOC style) folder layout, shared by training and the data tools.

    ROOT/JPEGImages/<id>.jpg            ROOT/SegmentationClass/<id>.png
    ROOT/JPEGImagesAug/<id>_<k>.jpg     ROOT/SegmentationClassAug/<id>_<k>.png   (optional)
    ROOT/ImageSets/Segmentation/{train,val,test,trainval}.txt   one id per line
    ROOT/objects.json   (optional) boxed objects per id, for object accuracy
"""
from __future__ import annotations

from pathlib import Path

import json

import cv2
import numpy as np

from ..fileio import atomic_write_text

IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"
AUG_SUFFIX = "Aug"
SPLIT_DIR = Path("ImageSets") / "Segmentation"
SPLITS = ("train", "val", "test", "trainval")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
OBJECTS_FILE = "objects.json"


class DatasetError(ValueError):
    """A dataset that cannot be read as laid out; the message names the file or folder."""


def image_dir(root: str | Path, aug: bool = False) -> Path:
    return Path(root) / (IMAGE_DIR + (AUG_SUFFIX if aug else ""))


def mask_dir(root: str | Path, aug: bool = False) -> Path:
    return Path(root) / (MASK_DIR + (AUG_SUFFIX if aug else ""))


def split_file(root: str | Path, split: str) -> Path:
    return Path(root) / SPLIT_DIR / f"{split}.txt"


def read_split(root: str | Path, split: str) -> list[str]:
    """The ids listed in ImageSets/Segmentation/<split>.txt (blank lines and # comments skipped)."""
    path = split_file(root, split)
    if not path.is_file():
        have = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
        raise DatasetError(f"{path}: split file not found (splits present: {have or 'none'})")
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    return ids


def write_split(root: str | Path, split: str, ids: list[str]) -> Path:
    path = split_file(root, split)
    atomic_write_text(path, "".join(f"{i}\n" for i in ids))
    return path


def find_image(root: str | Path, image_id: str, aug: bool = False) -> Path:
    """The image file for an id, whatever its extension; DatasetError if there is none."""
    folder = image_dir(root, aug)
    for ext in IMAGE_EXTENSIONS:
        candidate = folder / f"{image_id}{ext}"
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{folder / image_id}.jpg: image not found for id {image_id!r}")


def mask_path(root: str | Path, image_id: str, aug: bool = False) -> Path:
    return mask_dir(root, aug) / f"{image_id}.png"


def list_ids(folder: str | Path) -> list[str]:
    """Stems of the image files in a folder, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: folder not found")
    return sorted({p.stem for p in folder.iterdir() if p.suffix in IMAGE_EXTENSIONS})


def read_rgb(path: str | Path) -> np.ndarray:
    """An image file as H×W×3 uint8 RGB; DatasetError naming the file if unreadable."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise DatasetError(f"{path}: image file not found")
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise DatasetError(f"{path}: cannot decode image (corrupt or not an image)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_objects(root: str | Path) -> dict[str, list[dict]]:
    """{id: [{"box": [x0, y0, x1, y1], "material": class id, "category": source name}]} of a
    set imported from box or image-level labels; {} when the set has no objects.json."""
    path = Path(root) / OBJECTS_FILE
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DatasetError(f"{path}: expected {{id: [objects]}}")
    for image_id, objects in doc.items():
        for k, obj in enumerate(objects if isinstance(objects, list) else [None]):
            if not (isinstance(obj, dict) and isinstance(obj.get("material"), int)
                    and isinstance(obj.get("box"), list) and len(obj["box"]) == 4):
                raise DatasetError(f"{path}: {image_id!r} object {k}: expected "
                                   "{\"box\": [x0, y0, x1, y1], \"material\": id}")
    return doc
