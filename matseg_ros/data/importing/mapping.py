"""The class-mapping file of an import: source category -> material name, or `ignore`.

    # smdra.yaml                       (or, with provenance:)
    carpet: fabric                     mapping: {carpet: fabric, grass: ignore}
    grass: ignore                      source: https://github.com/...
                                       licence: MIT

Every category the annotations use must be mapped; the ones that are not are listed
together in one error, so a user fixes the file once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ...fileio import read_yaml
from ...materials import IGNORE_INDEX, MaterialMap

IGNORE = "ignore"


class MappingError(ValueError):
    """A mapping file that cannot be used; the message names the file and the key."""


def load_mapping(path: Path, materials: MaterialMap) -> tuple[dict[str, int], dict[str, Any]]:
    """(category -> class id or IGNORE_INDEX, extra top-level keys such as source/licence)."""
    doc = read_yaml(path, "mapping file", MappingError)
    extra: dict[str, Any] = {}
    if isinstance(doc, dict) and isinstance(doc.get("mapping"), dict):
        extra = {k: v for k, v in doc.items() if k != "mapping"}
        doc = doc["mapping"]
    if not isinstance(doc, dict) or not doc:
        raise MappingError(f"{path}: expected a mapping 'source category: material name or {IGNORE}'")
    names = {m.name: m.id for m in materials.materials}
    values: dict[str, int] = {}
    for category, target in doc.items():
        if not isinstance(target, str) or (target != IGNORE and target not in names):
            raise MappingError(f"{path}: key {category!r}: expected one of {sorted(names)} or "
                               f"'{IGNORE}', got {target!r}")
        values[str(category)] = IGNORE_INDEX if target == IGNORE else names[target]
    return values, extra


def check_mapped(categories: Iterable[str], values: dict[str, int], path: Path) -> None:
    """One error listing every category the annotations use that the mapping lacks."""
    missing = sorted(set(categories) - set(values))
    if missing:
        raise MappingError(f"{path}: {len(missing)} categories have no mapping: {', '.join(missing)} "
                           f"(add '<category>: <material>' or '<category>: {IGNORE}' for each)")
