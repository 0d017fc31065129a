"""The class map: material ids, names and palette colours.

`config/materials.yaml` is the one source of truth; models carry a copy in their
metadata so inference never needs the dataset. Everything that turns ids into colours
or colours into ids goes through a `MaterialMap`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .fileio import read_yaml

IGNORE_INDEX = 255


class MaterialsError(ValueError):
    """A class map that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class Material:
    id: int
    name: str
    color: tuple[int, int, int]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "color": list(self.color)}


class MaterialMap:
    """An ordered, validated set of materials with lookup tables for rendering."""

    def __init__(self, materials: Iterable[Material], ignore_index: int = IGNORE_INDEX):
        self.materials: tuple[Material, ...] = tuple(sorted(materials, key=lambda m: m.id))
        self.ignore_index = ignore_index
        if not self.materials:
            raise MaterialsError("class map is empty: expected at least one class")
        self._by_id = {m.id: m for m in self.materials}
        self._by_name = {m.name: m for m in self.materials}

    # --- construction -------------------------------------------------------
    @classmethod
    def from_entries(cls, entries: Sequence[Mapping[str, Any]], source: str = "<class map>",
                     ignore_index: int = IGNORE_INDEX) -> "MaterialMap":
        """Build from `[{id, name, color}, ...]`, validating every entry."""
        if not isinstance(entries, Sequence) or isinstance(entries, (str, bytes)):
            raise MaterialsError(f"{source}: 'classes' must be a list of {{id, name, color}} entries")
        seen_ids: dict[int, int] = {}
        seen_names: dict[str, int] = {}
        seen_colors: dict[tuple[int, int, int], int] = {}
        materials = []
        for index, entry in enumerate(entries):
            where = f"{source}: classes[{index}]"
            if not isinstance(entry, Mapping):
                raise MaterialsError(f"{where}: expected a mapping with id, name, color, got {entry!r}")
            missing = {"id", "name", "color"} - set(entry)
            if missing:
                raise MaterialsError(f"{where}: missing key(s) {sorted(missing)}")
            mid, name, color = entry["id"], entry["name"], entry["color"]
            if isinstance(mid, bool) or not isinstance(mid, int) or not 0 <= mid <= 254:
                raise MaterialsError(f"{where} ({name!r}): id must be an integer in 0..254 "
                                     f"(255 is the ignore label), got {mid!r}")
            if not isinstance(name, str) or not name.strip():
                raise MaterialsError(f"{where}: name must be a non-empty string, got {name!r}")
            if (not isinstance(color, Sequence) or isinstance(color, str) or len(color) != 3
                    or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255
                               for c in color)):
                raise MaterialsError(f"{where} ({name!r}): color must be [r, g, b] with integers "
                                     f"in 0..255, got {color!r}")
            rgb = (int(color[0]), int(color[1]), int(color[2]))
            for key, table, what in ((mid, seen_ids, "id"), (name, seen_names, "name"),
                                     (rgb, seen_colors, "color")):
                if key in table:
                    raise MaterialsError(f"{where} ({name!r}): duplicate {what} {key!r}, "
                                         f"already used by classes[{table[key]}]")
                table[key] = index
            materials.append(Material(mid, name, rgb))
        return cls(materials, ignore_index=ignore_index)

    @classmethod
    def from_json(cls, text: str, source: str = "<json>") -> "MaterialMap":
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MaterialsError(f"{source}: class map is not valid JSON: {exc}") from exc
        return cls.from_entries(entries, source)

    # --- lookups ------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.materials)

    def __iter__(self):
        return iter(self.materials)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaterialMap) and self.materials == other.materials

    def __repr__(self) -> str:
        return f"MaterialMap({', '.join(f'{m.id}:{m.name}' for m in self.materials)})"

    def __getitem__(self, material_id: int) -> Material:
        try:
            return self._by_id[material_id]
        except KeyError:
            raise KeyError(f"no material with id {material_id}; ids are {self.ids}") from None

    def by_name(self, name: str) -> Material:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no material named {name!r}; names are {self.names}") from None

    @property
    def ids(self) -> list[int]:
        return [m.id for m in self.materials]

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.materials]

    @property
    def num_classes(self) -> int:
        """Logit channels a model needs: ids must be 0..N-1 for a model's output."""
        return max(self.ids) + 1

    def is_contiguous(self) -> bool:
        return self.ids == list(range(len(self.materials)))

    def entries(self) -> list[dict[str, Any]]:
        return [m.as_dict() for m in self.materials]

    def to_json(self) -> str:
        return json.dumps(self.entries(), separators=(",", ":"))

    def palette_lut(self) -> np.ndarray:
        """(256, 3) uint8 table id -> RGB; ids without a class (and 255) map to black."""
        lut = np.zeros((256, 3), dtype=np.uint8)
        for m in self.materials:
            lut[m.id] = m.color
        return lut

    def colors(self) -> np.ndarray:
        """(N, 3) uint8 colours in id order."""
        return np.array([m.color for m in self.materials], dtype=np.uint8)


def load_materials(path: str | Path | None = None) -> MaterialMap:
    """Read a materials YAML file (default: the package's config/materials.yaml)."""
    if path is None:
        from .paths import default_materials_path
        path = default_materials_path()
    path = Path(path)
    data = read_yaml(path, "materials file", MaterialsError)
    if not isinstance(data, Mapping) or "classes" not in data:
        raise MaterialsError(f"{path}: expected a mapping with a 'classes' list")
    ignore = data.get("ignore_index", IGNORE_INDEX)
    if ignore != IGNORE_INDEX:
        raise MaterialsError(f"{path}: ignore_index must be {IGNORE_INDEX}, got {ignore!r}")
    return MaterialMap.from_entries(data["classes"], str(path))
