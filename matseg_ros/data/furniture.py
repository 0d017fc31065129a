"""Indoor rooms and their furniture, as faces for the rasteriser.

Sizes are real-world metres, so perspective, texture scale and occlusion behave like a
robot's camera in a room. What is none of the eight materials is background (id 0):
painted plaster walls and ceilings, a dark open doorway, the world seen through an
open door. Everything else carries its material's id, including the outside view
seen *through* a window pane, which is labelled glass like the pane itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .render3d import Surface, make_face
from .scene import Builder, outside_view, pyramid

UP = np.array([0.0, 1.0, 0.0])


@dataclass
class Wall:
    origin: np.ndarray
    u: np.ndarray          # along the wall
    n: np.ndarray          # into the room
    length: float
    used: list[tuple[float, float]] = field(default_factory=list)

    def at(self, a: float, y: float, d: float) -> np.ndarray:
        return self.origin + a * self.u + y * UP + d * self.n

    def free(self, width: float, rng: np.random.Generator, margin: float = 0.15) -> float | None:
        """Start of a free stretch of `width` along the wall, or None."""
        for _ in range(12):
            a0 = rng.uniform(margin, self.length - width - margin) if self.length > width + 2 * margin else -1
            if a0 >= 0 and all(a0 + width < u0 - 0.05 or a0 > u1 + 0.05 for u0, u1 in self.used):
                self.used.append((a0, a0 + width))
                return a0
        return None


def wall_box(b: Builder, wall: Wall, a0, a1, y0, y1, d0, d1, material: str, surf=None, **kw) -> Surface:
    p, q = wall.at(a0, y0, d0), wall.at(a1, y1, d1)
    return b.box(np.minimum(p, q), np.maximum(p, q), material, surf, **kw)


def wall_rect(b: Builder, wall: Wall, a0, a1, y0, y1, d, label: int, surf: Surface) -> None:
    pts = [wall.at(a0, y0, d), wall.at(a1, y0, d), wall.at(a1, y1, d), wall.at(a0, y1, d)]
    b.add(make_face(pts, wall.n, wall.u, label, surf, b.offset()))


def pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    names = list(options)
    p = np.array([options[n] for n in names], float)
    return names[rng.choice(len(names), p=p / p.sum())]


# --- the room -----------------------------------------------------------------
def room(b: Builder, W: float, D: float, H: float) -> list[Wall]:
    rng = b.rng
    floor = pick(rng, {"wood": 3, "ceramic": 3, "stone": 3, "fabric": 1.5, "plastic": 1.5})
    surf = b.surface(floor, style="matte" if floor == "plastic" else None)
    b.add(make_face([(0, 0, 0), (W, 0, 0), (W, 0, D), (0, 0, D)], UP, (1, 0, 0) if rng.random() < 0.5
                    else (0, 0, 1), b.label(floor), surf, b.offset()))
    b.add(make_face([(0, H, 0), (W, H, 0), (W, H, D), (0, H, D)], -UP, (1, 0, 0), 0, b.surface("plaster")))
    walls = [Wall(np.array([0.0, 0, D]), np.array([1.0, 0, 0]), np.array([0.0, 0, -1]), W),
             Wall(np.array([0.0, 0, 0]), np.array([0.0, 0, 1]), np.array([1.0, 0, 0]), D),
             Wall(np.array([W, 0, D]), np.array([0.0, 0, -1]), np.array([-1.0, 0, 0]), D),
             Wall(np.array([W, 0, 0]), np.array([-1.0, 0, 0]), np.array([0.0, 0, 1]), W)]
    paint = b.surface("plaster")
    for wall in walls:
        kind = pick(rng, {"paint": 6, "wainscot": 1.5, "ceramic": 1, "wood": 0.7, "stone": 0.8, "paper": 0.7})
        split = rng.uniform(0.9, 1.4) if kind == "wainscot" else 0.0
        if kind in ("paint", "wainscot"):
            wall_rect(b, wall, 0, wall.length, split, H, 0, 0, paint)
        else:
            split = H
        if split > 0:
            material = pick(rng, {"ceramic": 2, "wood": 2}) if kind == "wainscot" else kind
            style = {"ceramic": None, "wood": "planks", "paper": "kraft" if rng.random() < 0.2 else "printed"}.get(
                material)
            if material == "paper":  # wallpaper: printed paper scaled up into a pattern
                wall_rect(b, wall, 0, wall.length, 0, split, 0, b.label("paper"),
                          b.surface("paper", scale=rng.uniform(2, 4), style=style))
            else:
                wall_rect(b, wall, 0, wall.length, 0, split, 0, b.label(material), b.surface(material, style=style))
        skirting = pick(rng, {"wood": 3, "plastic": 2, "ceramic": 1, "none": 1})
        if skirting != "none":
            wall_box(b, wall, 0, wall.length, 0, rng.uniform(0.05, 0.1), 0, 0.015, skirting)
    return walls


# --- things on walls ----------------------------------------------------------
def window(b: Builder, wall: Wall, H: float) -> None:
    rng = b.rng
    width = rng.uniform(0.8, min(2.2, wall.length * 0.5))
    a0 = wall.free(width, rng)
    if a0 is None:
        return
    a1, y0 = a0 + width, rng.uniform(0.7, 1.0)
    y1 = min(H - 0.2, y0 + rng.uniform(1.0, 1.6))
    view = Surface(pyramid(outside_view(rng)), 1.0, emissive=True, wrap=False)
    view.texels_per_metre = view.pyramid[0].shape[1] / width
    pts = [wall.at(a0, y0, 0.004), wall.at(a1, y0, 0.004), wall.at(a1, y1, 0.004), wall.at(a0, y1, 0.004)]
    b.add(make_face(pts, wall.n, wall.u, b.label("glass"), view, (0.0, 0.0)))
    wall_rect(b, wall, a0, a1, y0, y1, 0.01, b.label("glass"), b.surface("glass"))
    frame = pick(rng, {"wood": 1, "metal": 1.5, "plastic": 1.5})
    fs = b.surface(frame, style="painted" if frame == "metal" and rng.random() < 0.5 else None)
    t, depth = rng.uniform(0.04, 0.08), rng.uniform(0.03, 0.07)
    for box in ((a0 - t, a0, y0 - t, y1 + t), (a1, a1 + t, y0 - t, y1 + t), (a0, a1, y0 - t, y0), (a0, a1, y1, y1 + t)):
        wall_box(b, wall, box[0], box[1], box[2], box[3], 0, depth, frame, fs)
    if rng.random() < 0.5:
        mid = (a0 + a1) / 2
        wall_box(b, wall, mid - t / 2, mid + t / 2, y0, y1, 0, depth, frame, fs)
    if rng.random() < 0.6:
        sill = pick(rng, {"stone": 2, "wood": 1, "plastic": 1})
        wall_box(b, wall, a0 - 0.08, a1 + 0.08, y0 - t - 0.04, y0 - t, 0, rng.uniform(0.12, 0.25), sill)
    if rng.random() < 0.45:
        cloth = b.surface("fabric")
        cloth.folds, cloth.fold_period = rng.uniform(0.15, 0.3), rng.uniform(0.1, 0.2)
        top = min(H - 0.05, y1 + 0.25)
        for c0 in (a0 - rng.uniform(0.3, 0.6), a1 - 0.1):
            cw = rng.uniform(0.35, 0.6)
            pts = [wall.at(c0, 0.05, 0.12), wall.at(c0 + cw, 0.05, 0.12), wall.at(c0 + cw, top, 0.12),
                   wall.at(c0, top, 0.12)]
            b.add(make_face(pts, wall.n, wall.u, b.label("fabric"), cloth, b.offset(), double_sided=True))
    if rng.random() < 0.4:
        radiator(b, wall, a0 + 0.1, a1 - 0.1, y0 - 0.15)


def radiator(b: Builder, wall: Wall, a0: float, a1: float, top: float) -> None:
    surf = b.surface("metal", style="painted")
    surf.folds, surf.fold_period = 0.35, b.rng.uniform(0.04, 0.07)
    wall_box(b, wall, a0, a1, 0.12, max(0.35, top), 0.03, 0.11, "metal", surf)


def door(b: Builder, wall: Wall) -> None:
    rng = b.rng
    width = rng.uniform(0.8, 1.0)
    a0 = wall.free(width + 0.2, rng)
    if a0 is None:
        return
    a0 += 0.1
    a1, top = a0 + width, rng.uniform(2.0, 2.15)
    frame = pick(rng, {"wood": 2, "metal": 1})
    fs = b.surface(frame)
    for box in ((a0 - 0.07, a0, 0, top + 0.07), (a1, a1 + 0.07, 0, top + 0.07), (a0, a1, top, top + 0.07)):
        wall_box(b, wall, *box, 0, 0.025, frame, fs)
    if rng.random() < 0.3:  # open: a dark corridor, background
        dark = np.full((8, 8, 3), rng.uniform(0.05, 0.2), np.float32)
        wall_rect(b, wall, a0, a1, 0, top, 0.003, 0, Surface(pyramid(dark, 4), 32.0, emissive=True))
        return
    slab = pick(rng, {"wood": 3, "metal": 1})
    wall_box(b, wall, a0, a1, 0, top, 0.005, 0.045, slab, vertical_grain=True)
    a = a1 - 0.08 if rng.random() < 0.5 else a0 + 0.08
    wall_box(b, wall, a - 0.06, a + 0.06, 1.0, 1.03, 0.045, 0.1, "metal")


def wall_art(b: Builder, wall: Wall, H: float) -> None:
    rng = b.rng
    w, h = rng.uniform(0.3, 1.0), rng.uniform(0.3, 0.9)
    a0 = wall.free(w, rng)
    if a0 is None:
        return
    y0 = rng.uniform(1.1, max(1.2, H - h - 0.3))
    paper = b.surface("paper", scale=rng.uniform(0.8, 3.0))
    if rng.random() < 0.5:  # a poster: colour print on paper
        paper.tint = np.asarray(rng.uniform(0.5, 1.0, 3), np.float32)
    wall_rect(b, wall, a0, a0 + w, y0, y0 + h, 0.006, b.label("paper"), paper)
    if rng.random() < 0.6:
        frame = pick(rng, {"wood": 2, "metal": 1, "plastic": 1})
        fs, t = b.surface(frame), rng.uniform(0.02, 0.05)
        for box in ((a0 - t, a0, y0 - t, y0 + h + t), (a0 + w, a0 + w + t, y0 - t, y0 + h + t),
                    (a0, a0 + w, y0 - t, y0), (a0, a0 + w, y0 + h, y0 + h + t)):
            wall_box(b, wall, *box, 0, 0.02, frame, fs)
