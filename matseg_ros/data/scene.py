"""Scene building blocks: a texture bank, material surfaces, boxes and cylinders as faces.

The bank keeps a fixed number of texture variants per material, each generated from a
seed derived from (bank seed, material, variant) — so which variants a worker happens
to generate first never changes the pixels, and a dataset is reproducible for a seed
whatever the number of workers. Per use, a surface still varies: tint, scale, offset.
Texture images from outside (the Gazebo world's albedo maps, photos of a robot's own
surfaces) join the bank as extra variants of their material (`read_textures`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from .noise import fractal_noise, jitter, periodic_noise, rgb
from .render3d import Face, Surface, cross, make_face
from .textures import MATERIALS, glass_reflection, make_texture_float, parse_texture_name

# metres covered by one texture tile, per material style
TILE_METRES = {
    "ceramic": {"tiles": (0.6, 1.6), "subway": (0.5, 1.0), "mosaic": (0.25, 0.5), "glazed": (0.4, 0.8)},
    "fabric": {"plain": (0.15, 0.35), "twill": (0.15, 0.3), "plaid": (0.3, 0.7), "melange": (0.15, 0.35)},
    "glass": {"clear": (0.6, 1.2), "frosted": (0.6, 1.2), "tinted": (0.6, 1.2)},
    "metal": {"brushed": (0.3, 0.8), "painted": (0.5, 1.0), "polished": (0.5, 1.0), "perforated": (0.3, 0.6)},
    "paper": {"printed": (0.18, 0.3), "ruled": (0.18, 0.3), "kraft": (0.3, 0.6), "newsprint": (0.25, 0.4)},
    "plastic": {"glossy": (0.3, 0.8), "matte": (0.3, 0.8), "textured": (0.15, 0.4)},
    "stone": {"concrete": (1.0, 2.5), "marble": (0.6, 1.5), "granite": (0.3, 0.7), "terrazzo": (0.6, 1.2)},
    "wood": {"grain": (0.4, 1.0), "planks": (0.8, 1.6)},
}
# (specular strength, shininess)
OPTICS = {
    "ceramic": (0.45, 60.0), "fabric": (0.0, 1.0), "glass": (0.9, 120.0), "metal": (0.35, 25.0),
    "paper": (0.03, 8.0), "plastic": (0.25, 40.0), "stone": (0.1, 30.0), "wood": (0.12, 20.0),
}
STYLE_OPTICS = {("metal", "polished"): (0.7, 40.0), ("metal", "painted"): (0.2, 30.0),
                ("plastic", "glossy"): (0.5, 60.0), ("plastic", "matte"): (0.06, 10.0),
                ("stone", "marble"): (0.4, 60.0), ("stone", "concrete"): (0.02, 8.0)}
WALL_PAINT = [(236, 232, 222), (222, 226, 228), (214, 204, 184), (196, 210, 200), (230, 214, 200),
              (188, 196, 210), (244, 244, 240), (170, 170, 166)]


def pyramid(image: np.ndarray, smallest: int = 16) -> list[np.ndarray]:
    """Mip levels by 2× area averaging (keeps a tileable texture tileable)."""
    levels = [np.ascontiguousarray(image, dtype=np.float32)]
    while min(levels[-1].shape[:2]) >= 2 * smallest:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return levels


def plaster(shape, rng: np.random.Generator) -> np.ndarray:
    """Painted plaster (walls, ceilings): background, not one of the materials."""
    base = jitter(rng, WALL_PAINT[rng.integers(len(WALL_PAINT))], 0.02)
    noise = 0.02 * fractal_noise(shape, rng, 2.2) + 0.012 * periodic_noise(shape, rng, 0.8)
    return np.clip(base * (1 + noise)[..., None], 0, 1)


TEXTURE_SUFFIXES = (".jpg", ".jpeg", ".png")
Extras = Mapping[str, Sequence[tuple[np.ndarray, str]]]


def read_textures(folder: str | Path, size: int = 256) -> dict[str, list[tuple[np.ndarray, str]]]:
    """The .jpg/.png images of a folder as extra bank variants: material -> [(image, style)].

    Files are named `<material>_<style>[_<name>].jpg` (the style sets tile size and gloss);
    each is centre-cropped to a square and resized to `size` (float RGB 0..1). Photos are
    not tileable, so large surfaces show seams — still better than never seeing the look.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: texture folder not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in TEXTURE_SUFFIXES)
    if not files:
        raise ValueError(f"{folder}: no {'/'.join(TEXTURE_SUFFIXES)} texture images")
    extras: dict[str, list[tuple[np.ndarray, str]]] = {}
    for path in files:
        material, style = parse_texture_name(path)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: not a readable image")
        h, w = bgr.shape[:2]
        side = min(h, w)
        square = bgr[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2, ::-1]
        image = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
        extras.setdefault(material, []).append((image.astype(np.float32) / 255.0, style))
    return extras


class TextureBank:
    """A lazily filled cache of texture pyramids, `variants` per material, fixed by `seed`.

    `extra` (from `read_textures`) adds given images as further variants of their
    material: index `variants + k` of a material is its k-th extra image.
    """

    def __init__(self, seed: int = 0, variants: int = 12, size: int = 256, extra: Extras | None = None):
        self.seed, self.variants, self.size = int(seed), int(variants), int(size)
        self.extra = {k: list(v) for k, v in (extra or {}).items()}
        unknown = set(self.extra) - set(MATERIALS)
        if unknown:
            raise ValueError(f"extra textures for unknown materials {sorted(unknown)}; known: "
                             f"{', '.join(MATERIALS)}")
        self._cache: dict[tuple[str, int], tuple[list[np.ndarray], str]] = {}

    def get(self, key: str, index: int) -> tuple[list[np.ndarray], str]:
        extra = self.extra.get(key, ())
        index %= self.variants + len(extra)
        if (key, index) not in self._cache:
            keys = MATERIALS + ("plaster", "glass_reflection")
            rng = np.random.default_rng(np.random.SeedSequence(
                self.seed, spawn_key=(1, keys.index(key), index)))
            shape = (self.size, self.size)
            if index >= self.variants:
                image, style = extra[index - self.variants]
            elif key == "plaster":
                image, style = plaster(shape, rng), "plaster"
            elif key == "glass_reflection":
                image, style = np.repeat(glass_reflection(shape, rng)[..., None], 3, axis=2), "reflection"
            else:
                image, style = make_texture_float(key, shape, rng)
            self._cache[(key, index)] = (pyramid(image), style)
        return self._cache[(key, index)]


class Builder:
    """Collects the faces of one scene; draws every random choice from one generator."""

    def __init__(self, rng: np.random.Generator, bank: TextureBank, labels: dict[str, int]):
        self.rng, self.bank, self.labels = rng, bank, labels
        self.faces: list[Face] = []
        self.footprints: list[np.ndarray] = []

    def label(self, material: str) -> int:
        return self.labels.get(material, 0)

    def surface(self, material: str, tint=None, scale: float = 1.0, style: str | None = None) -> Surface:
        """A material surface: a bank variant (optionally of one style) with its own tint and scale."""
        rng = self.rng
        if material == "plaster":
            levels, _ = self.bank.get("plaster", int(rng.integers(1 << 30)))
            return Surface(levels, 256 / rng.uniform(1.5, 3.0), np.ones(3, np.float32) * rng.uniform(0.95, 1.05))
        for _ in range(8 if style else 1):
            levels, got = self.bank.get(material, int(rng.integers(1 << 30)))
            if style is None or got == style:
                break
        lo, hi = TILE_METRES[material][got]
        spec, shin = STYLE_OPTICS.get((material, got), OPTICS[material])
        if tint is None:
            t = np.ones(3, np.float32) * np.float32(rng.uniform(0.88, 1.08))
        else:
            t = np.asarray(tint, np.float32)
        t = t * (1 + rng.normal(0, 0.02, 3)).astype(np.float32)
        surf = Surface(levels, 256 / (rng.uniform(lo, hi) * scale), t, spec * rng.uniform(0.6, 1.3), shin)
        if material == "glass":
            surf.pyramid = self.bank.get("glass_reflection", int(rng.integers(1 << 30)))[0]
            surf.glass = rng.uniform(0.55, 0.8)
            surf.tint = np.asarray([(0.86, 0.98, 0.94), (0.85, 0.92, 1.0), (0.92, 0.92, 0.92)][rng.integers(3)],
                                   np.float32)
        return surf

    def offset(self) -> tuple[float, float]:
        return tuple(self.rng.uniform(0, 256, 2))

    def add(self, face: Face) -> None:
        self.faces.append(face)

    def box(self, lo, hi, material: str, surf: Surface | None = None, bottom: bool = False,
            vertical_grain: bool = False, label: int | None = None) -> Surface:
        """An axis-aligned box; texture axes follow each face's longer side (wood grain)."""
        surf = surf or self.surface(material)
        label = self.label(material) if label is None else label
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        X, Y, Z = np.eye(3)
        faces = [((x0, y1, z0), (x1, y1, z0), (x1, y1, z1), (x0, y1, z1), Y, X if x1 - x0 >= z1 - z0 else Z),
                 ((x0, y0, z0), (x1, y0, z0), (x1, y1, z0), (x0, y1, z0), -Z, Y if vertical_grain else X),
                 ((x0, y0, z1), (x1, y0, z1), (x1, y1, z1), (x0, y1, z1), Z, Y if vertical_grain else X),
                 ((x0, y0, z0), (x0, y0, z1), (x0, y1, z1), (x0, y1, z0), -X, Y if vertical_grain else Z),
                 ((x1, y0, z0), (x1, y0, z1), (x1, y1, z1), (x1, y1, z0), X, Y if vertical_grain else Z)]
        if bottom:
            faces.append(((x0, y0, z0), (x1, y0, z0), (x1, y0, z1), (x0, y0, z1), -Y, X))
        for *pts, normal, axis in faces:
            if not vertical_grain and normal[1] == 0:
                extent = np.ptp(np.array(pts), axis=0)
                axis = Y if extent[1] > max(extent[0], extent[2]) * 1.5 else axis
            self.add(make_face(pts, normal, axis, label, surf, self.offset()))
        return surf

    def cylinder(self, cx: float, cz: float, y0: float, y1: float, r0: float, r1: float, material: str,
                 surf: Surface | None = None, sides: int = 12, cap: bool = True,
                 label: int | None = None) -> Surface:
        """A frustum (r0 at y0, r1 at y1) as a prism of `sides` planar faces."""
        surf = surf or self.surface(material)
        label = self.label(material) if label is None else label
        ang = np.linspace(0, 2 * np.pi, sides + 1) + self.rng.uniform(0, np.pi)
        ring = np.stack([np.cos(ang), np.zeros_like(ang), np.sin(ang)], 1)
        bottom = ring * r0 + (cx, y0, cz)
        top = ring * r1 + (cx, y1, cz)
        s0 = self.rng.uniform(0, 256)
        side = 2 * np.pi * max(r0, r1) / sides * surf.texels_per_metre
        for k in range(sides):
            pts = [bottom[k], bottom[k + 1], top[k + 1], top[k]]
            tangent = bottom[k + 1] - bottom[k]
            normal = cross(top[k] - bottom[k], tangent)
            if normal.dot(bottom[k] - (cx, y0, cz)) < 0:
                normal = -normal
            self.add(make_face(pts, normal, tangent, label, surf, (s0 + k * side, 0.0)))
        if cap:
            self.add(make_face(top[:-1], (0, 1, 0), (1, 0, 0), label, surf, self.offset()))
        return surf

    def footprint(self, x0: float, x1: float, z0: float, z1: float, grow: float = 0.06) -> None:
        self.footprints.append(np.array([(x0 - grow, 0.001, z0 - grow), (x1 + grow, 0.001, z0 - grow),
                                         (x1 + grow, 0.001, z1 + grow), (x0 - grow, 0.001, z1 + grow)]))


def outside_view(rng: np.random.Generator, shape=(96, 128)) -> np.ndarray:
    """A blurred view out of a window: sky, a horizon of trees or buildings, ground."""
    h, w = shape
    ys = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = rgb((120, 170, 230)) * (1 - ys) + rgb((225, 235, 245)) * ys
    if rng.random() < 0.3:
        sky = np.broadcast_to(rgb((205, 210, 215)) * (1 + 0.05 * ys), sky.shape)
    out = np.array(np.broadcast_to(sky, (h, w, 3)))
    horizon = rng.uniform(0.45, 0.8)
    trees = fractal_noise((h, w), rng, 2.5) * 0.12 + np.linspace(-0.3, 0.3, h, dtype=np.float32)[:, None]
    tree_mask = trees > (horizon - 0.6)
    out[tree_mask] = jitter(rng, (60, 100, 55), 0.15)
    for _ in range(int(rng.integers(0, 4))):
        x0 = int(rng.integers(0, w - 10))
        bw, top = int(rng.integers(10, w // 2)), int(h * rng.uniform(0.1, horizon))
        out[top:, x0:x0 + bw] = jitter(rng, (150, 140, 130), 0.2)
    out[int(h * (horizon + 0.15)):] = jitter(rng, (110, 110, 100), 0.15)
    return cv2.GaussianBlur(out, (0, 0), rng.uniform(1.0, 2.5)) * np.float32(rng.uniform(1.0, 1.25))
