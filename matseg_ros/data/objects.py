"""Furniture standing on the floor and the small things on it, as boxes and cylinders.

Every piece mixes materials the way real ones do (a wooden table on metal legs, a glass
bottle with a plastic cap and a paper label, a cabinet with metal handles), so that
material boundaries cut across object boundaries.
"""
from __future__ import annotations

import numpy as np

from .furniture import Wall, pick, wall_box
from .scene import Builder


# --- small things on a horizontal surface ---------------------------------------
def bottle(b: Builder, x: float, z: float, y: float) -> float:
    rng = b.rng
    material = pick(rng, {"glass": 3, "plastic": 2, "metal": 0.5})
    r, h = rng.uniform(0.03, 0.05), rng.uniform(0.18, 0.32)
    surf = b.surface(material, style="glossy" if material == "plastic" else None)
    body = y + h * 0.62
    b.cylinder(x, z, y, body, r, r, material, surf, sides=8, cap=False)
    b.cylinder(x, z, body, body + h * 0.15, r, r * 0.38, material, surf, sides=8, cap=False)
    b.cylinder(x, z, body + h * 0.15, y + h, r * 0.38, r * 0.38, material, surf, sides=6, cap=False)
    b.cylinder(x, z, y + h, y + h + 0.02, r * 0.42, r * 0.42, "plastic", sides=6)
    if rng.random() < 0.5:
        b.cylinder(x, z, y + h * 0.2, y + h * 0.45, r * 1.03, r * 1.03, "paper", sides=8, cap=False)
    return r


def mug(b: Builder, x: float, z: float, y: float) -> float:
    material = pick(b.rng, {"ceramic": 3, "plastic": 1, "metal": 1, "paper": 1, "glass": 1})
    r, h = b.rng.uniform(0.035, 0.05), b.rng.uniform(0.08, 0.13)
    style = {"ceramic": "glazed", "metal": "painted" if b.rng.random() < 0.5 else "brushed"}.get(material)
    b.cylinder(x, z, y, y + h, r, r * b.rng.uniform(1.0, 1.2), material, b.surface(material, style=style), sides=8)
    return r


def bowl(b: Builder, x: float, z: float, y: float) -> float:
    material = pick(b.rng, {"ceramic": 3, "glass": 1, "plastic": 1, "wood": 1, "metal": 1})
    r = b.rng.uniform(0.07, 0.14)
    style = "glazed" if material == "ceramic" else None
    b.cylinder(x, z, y, y + r * 0.6, r * 0.55, r, material, b.surface(material, style=style), sides=10)
    return r


def paper_stack(b: Builder, x: float, z: float, y: float) -> float:
    w, d = (0.21, 0.297) if b.rng.random() < 0.5 else (0.297, 0.21)
    surf = b.surface("paper", style=pick(b.rng, {"printed": 3, "ruled": 1, "newsprint": 1}))
    b.box((x - w / 2, y, z - d / 2), (x + w / 2, y + b.rng.uniform(0.002, 0.05), z + d / 2), "paper", surf)
    return max(w, d) / 2


def book(b: Builder, x: float, z: float, y: float) -> float:
    w, d, h = b.rng.uniform(0.12, 0.22), b.rng.uniform(0.16, 0.3), b.rng.uniform(0.015, 0.06)
    b.box((x - w / 2, y, z - d / 2), (x + w / 2, y + h, z + d / 2), "paper", cover(b))
    return max(w, d) / 2


def cover(b: Builder):
    surf = b.surface("paper", style=pick(b.rng, {"printed": 1, "kraft": 1}))
    surf.tint = np.asarray(b.rng.uniform(0.25, 1.0, 3), np.float32)
    return surf


def carton(b: Builder, x: float, z: float, y: float) -> float:
    w, d, h = b.rng.uniform(0.15, 0.45, 3)
    b.box((x - w / 2, y, z - d / 2), (x + w / 2, y + h, z + d / 2), "paper", b.surface("paper", style="kraft"))
    return max(w, d) / 2


def monitor(b: Builder, x: float, z: float, y: float) -> float:
    rng = b.rng
    w, h = rng.uniform(0.4, 0.65), rng.uniform(0.25, 0.4)
    shell = pick(rng, {"plastic": 3, "metal": 1})
    b.box((x - 0.1, y, z - 0.08), (x + 0.1, y + 0.015, z + 0.08), shell)
    b.box((x - 0.025, y, z + 0.02), (x + 0.025, y + 0.15, z + 0.04), shell)
    b.box((x - w / 2, y + 0.1, z - 0.02), (x + w / 2, y + 0.1 + h, z + 0.02), shell)
    screen = b.surface("glass")
    screen.glass = 0.0  # an opaque dark pane: what shows is its reflection
    screen.tint = np.full(3, rng.uniform(0.1, 0.3), np.float32)
    b.box((x - w / 2 + 0.015, y + 0.115, z - 0.022), (x + w / 2 - 0.015, y + 0.085 + h, z - 0.02), "glass", screen)
    return w / 2


ITEMS = {"bottle": (bottle, 3), "mug": (mug, 3), "bowl": (bowl, 1), "paper": (paper_stack, 2),
         "book": (book, 2), "carton": (carton, 1)}


def items_on(b: Builder, x0: float, x1: float, z0: float, z1: float, y: float, count: int,
             extra: dict | None = None) -> None:
    """Scatter small things on a surface without overlaps."""
    if x1 - x0 < 0.2 or z1 - z0 < 0.2:
        return
    table = dict(ITEMS, **(extra or {}))
    placed: list[tuple[float, float, float]] = []
    for _ in range(count):
        name = pick(b.rng, {k: v[1] for k, v in table.items()})
        for _ in range(6):
            x, z = b.rng.uniform(x0 + 0.08, x1 - 0.08), b.rng.uniform(z0 + 0.08, z1 - 0.08)
            if all(np.hypot(x - px, z - pz) > 0.2 + pr for px, pz, pr in placed):
                placed.append((x, z, table[name][0](b, x, z, y)))
                break


# --- furniture ----------------------------------------------------------------
def table(b: Builder, x0: float, x1: float, z0: float, z1: float) -> None:
    rng = b.rng
    top_h = rng.uniform(0.7, 0.78)
    top = pick(rng, {"wood": 4, "stone": 1.5, "glass": 1, "plastic": 1.5, "metal": 1})
    t = rng.uniform(0.02, 0.05)
    b.box((x0, top_h - t, z0), (x1, top_h, z1), top, bottom=True)
    legs = pick(rng, {"metal": 2, "wood": 2})
    ls, inset = b.surface(legs), rng.uniform(0.03, 0.1)
    s = rng.uniform(0.03, 0.06)
    for lx in (x0 + inset, x1 - inset - s):
        for lz in (z0 + inset, z1 - inset - s):
            b.box((lx, 0, lz), (lx + s, top_h - t, lz + s), legs, ls)
    b.footprint(x0, x1, z0, z1, grow=0.0)
    extra = {"monitor": (monitor, 1.5)} if rng.random() < 0.3 else None
    items_on(b, x0, x1, z0, z1, top_h, int(rng.integers(0, 6)), extra)


def chair(b: Builder, x: float, z: float, facing: int) -> None:
    """A chair at (x, z); `facing` 0..3: which side the backrest is on (-z, +x, +z, -x)."""
    rng = b.rng
    s, seat_h = rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.48)
    seat = pick(rng, {"fabric": 2, "plastic": 2, "wood": 2})
    ss = b.surface(seat, style="glossy" if seat == "plastic" and rng.random() < 0.5 else None)
    x0, z0, x1, z1 = x - s / 2, z - s / 2, x + s / 2, z + s / 2
    b.box((x0, seat_h - 0.05, z0), (x1, seat_h, z1), seat, ss)
    back_h = seat_h + rng.uniform(0.35, 0.5)
    t = 0.04
    back = [((x0, z0), (x1, z0 + t)), ((x1 - t, z0), (x1, z1)),
            ((x0, z1 - t), (x1, z1)), ((x0, z0), (x0 + t, z1))][facing]
    b.box((back[0][0], seat_h, back[0][1]), (back[1][0], back_h, back[1][1]), seat, ss)
    legs = pick(rng, {"metal": 2, "wood": 1, "plastic": 1})
    ls, l = b.surface(legs), 0.03
    for lx in (x0 + 0.01, x1 - 0.01 - l):
        for lz in (z0 + 0.01, z1 - 0.01 - l):
            b.box((lx, 0, lz), (lx + l, seat_h - 0.05, lz + l), legs, ls)
    b.footprint(x0, x1, z0, z1, grow=0.0)


def cabinet(b: Builder, wall: Wall, a0: float, width: float) -> None:
    rng = b.rng
    depth, height = rng.uniform(0.35, 0.6), pick(rng, {"low": 2, "high": 1})
    height = rng.uniform(0.7, 1.1) if height == "low" else rng.uniform(1.6, 2.1)
    body = pick(rng, {"wood": 3, "metal": 2, "plastic": 1})
    surf = wall_box(b, wall, a0, a0 + width, 0, height, 0, depth, body,
                    b.surface(body, style="painted" if body == "metal" and rng.random() < 0.6 else None))
    doors = int(rng.integers(1, 4))
    handle = pick(rng, {"metal": 3, "plastic": 1})
    hs = b.surface(handle)
    for k in range(doors):
        d0 = a0 + width * k / doors
        if k:
            gap = b.surface(body)
            gap.pyramid, gap.tint = surf.pyramid, surf.tint * 0.35
            wall_box(b, wall, d0 - 0.003, d0 + 0.003, 0.03, height - 0.03, depth, depth + 0.002, body, gap)
        hx = d0 + width / doors * (0.85 if k % 2 == 0 else 0.15)
        hy = height * rng.uniform(0.55, 0.85) if height < 1.2 else 1.0
        wall_box(b, wall, hx - 0.012, hx + 0.012, hy - 0.06, hy + 0.06, depth, depth + 0.03, handle, hs)
    _footprint_along(b, wall, a0, a0 + width, depth)
    if height < 1.2:
        _items_along(b, wall, a0, a0 + width, depth, height, int(rng.integers(0, 4)))


def shelf(b: Builder, wall: Wall, a0: float, width: float, H: float) -> None:
    rng = b.rng
    depth, height = rng.uniform(0.28, 0.4), rng.uniform(1.2, min(2.2, H - 0.2))
    material = pick(rng, {"wood": 3, "metal": 1.5})
    surf = b.surface(material)
    t = 0.02
    wall_box(b, wall, a0, a0 + t, 0, height, 0, depth, material, surf)
    wall_box(b, wall, a0 + width - t, a0 + width, 0, height, 0, depth, material, surf)
    wall_box(b, wall, a0, a0 + width, 0, height, 0, 0.01, material, surf)
    levels = int(rng.integers(3, 6))
    for k in range(levels + 1):
        y = 0.05 + (height - 0.07) * k / levels
        wall_box(b, wall, a0 + t, a0 + width - t, y, y + t, 0, depth, material, surf)
        if k < levels:
            gap = (height - 0.07) / levels - t
            row_of_things(b, wall, a0 + t + 0.01, a0 + width - t - 0.01, y + t, gap, depth)
    _footprint_along(b, wall, a0, a0 + width, depth)


def row_of_things(b: Builder, wall: Wall, a0: float, a1: float, y: float, gap: float, depth: float) -> None:
    """Books, binders, folders and boxes standing side by side on a shelf."""
    rng = b.rng
    a = a0 + rng.uniform(0, 0.1)
    while a < a1 - 0.03:
        kind = pick(rng, {"books": 4, "binder": 1.5, "box": 1, "empty": 1, "bottle": 0.7})
        if kind == "empty":
            a += rng.uniform(0.05, 0.3)
            continue
        if kind == "bottle":
            p = wall.at(a + 0.05, y, depth * 0.5)
            a += 2 * bottle(b, p[0], p[2], y) + 0.03
            continue
        run = int(rng.integers(2, 9)) if kind == "books" else 1
        for _ in range(run):
            w = rng.uniform(0.02, 0.06) if kind == "books" else rng.uniform(0.05, 0.3 if kind == "box" else 0.08)
            if a + w > a1:
                return
            h = min(gap - 0.02, rng.uniform(0.6, 0.95) * gap)
            d = depth * rng.uniform(0.6, 0.9)
            if kind == "binder":
                wall_box(b, wall, a, a + w, y, y + h, 0.02, d, "plastic")
            elif kind == "box":
                wall_box(b, wall, a, a + w, y, y + h * rng.uniform(0.4, 1.0), 0.02, d, "paper",
                         b.surface("paper", style="kraft"))
            else:
                wall_box(b, wall, a, a + w, y, y + h, 0.02, d, "paper", cover(b))
            a += w + 0.002
        a += rng.uniform(0.0, 0.05)


def counter(b: Builder, wall: Wall, a0: float, width: float) -> None:
    """A kitchen or lab counter with a sink, a tap and a tiled splashback."""
    rng = b.rng
    depth, height = rng.uniform(0.55, 0.65), rng.uniform(0.86, 0.92)
    base = pick(rng, {"wood": 2, "plastic": 1, "metal": 1})
    wall_box(b, wall, a0, a0 + width, 0.08, height - 0.04, 0, depth - 0.02, base)
    top = pick(rng, {"stone": 3, "wood": 1, "metal": 1})
    wall_box(b, wall, a0 - 0.01, a0 + width + 0.01, height - 0.04, height, 0, depth, top)
    sink = pick(rng, {"metal": 2, "ceramic": 1})
    s = rng.uniform(0.1, max(0.12, width - 0.6))
    style = "polished" if sink == "metal" else "glazed"
    wall_box(b, wall, a0 + s, a0 + s + 0.45, height, height + 0.004, 0.12, depth - 0.06, sink,
             b.surface(sink, style=style))
    tap = b.surface("metal", style="polished")
    p = wall.at(a0 + s + 0.225, height, 0.07)
    b.cylinder(p[0], p[2], height, height + 0.25, 0.015, 0.015, "metal", tap, sides=8)
    if rng.random() < 0.7:
        wall_box(b, wall, a0, a0 + width, height, height + rng.uniform(0.4, 0.65), 0.0, 0.006, "ceramic",
                 b.surface("ceramic", style="subway" if rng.random() < 0.5 else "tiles"))
    _footprint_along(b, wall, a0, a0 + width, depth)
    _items_along(b, wall, a0 + s + 0.5, a0 + width, depth, height, int(rng.integers(0, 4)))


def sofa(b: Builder, wall: Wall, a0: float, width: float) -> None:
    rng = b.rng
    depth = rng.uniform(0.8, 0.95)
    cloth = b.surface("fabric")
    wall_box(b, wall, a0, a0 + width, 0.1, 0.45, 0, depth, "fabric", cloth)
    wall_box(b, wall, a0, a0 + width, 0.45, rng.uniform(0.8, 0.95), 0, 0.2, "fabric", cloth)
    for arm in (a0, a0 + width - 0.15):
        wall_box(b, wall, arm, arm + 0.15, 0.45, 0.62, 0.2, depth, "fabric", cloth)
    feet = pick(rng, {"wood": 1, "metal": 1})
    fs = b.surface(feet)
    for fa in (a0 + 0.05, a0 + width - 0.1):
        for fd in (0.05, depth - 0.1):
            wall_box(b, wall, fa, fa + 0.05, 0, 0.1, fd, fd + 0.05, feet, fs)
    _footprint_along(b, wall, a0, a0 + width, depth)


def bin_(b: Builder, x: float, z: float) -> None:
    rng = b.rng
    material = pick(rng, {"plastic": 3, "metal": 2})
    r, h = rng.uniform(0.12, 0.2), rng.uniform(0.3, 0.6)
    b.cylinder(x, z, 0, h, r * 0.85, r, material, sides=12, cap=False)
    inside = b.surface(material)
    inside.tint = inside.tint * 0.25
    b.cylinder(x, z, h * 0.9, h - 0.005, r * 0.95, r * 0.97, material, inside, sides=12, cap=True)
    b.footprint(x - r, x + r, z - r, z + r, grow=0.02)


def rug(b: Builder, x0: float, x1: float, z0: float, z1: float) -> None:
    b.box((x0, 0, z0), (x1, b.rng.uniform(0.005, 0.015), z1), "fabric")


def _footprint_along(b: Builder, wall: Wall, a0: float, a1: float, depth: float) -> None:
    p, q = wall.at(a0, 0, 0), wall.at(a1, 0, depth)
    b.footprint(min(p[0], q[0]), max(p[0], q[0]), min(p[2], q[2]), max(p[2], q[2]), grow=0.03)


def _items_along(b: Builder, wall: Wall, a0: float, a1: float, depth: float, y: float, count: int) -> None:
    p, q = wall.at(a0, 0, 0.05), wall.at(a1, 0, depth)
    items_on(b, min(p[0], q[0]), max(p[0], q[0]), min(p[2], q[2]), max(p[2], q[2]), y, count)
