"""Tileable procedural textures for the eight HRIM2021 materials.

Each material has several styles (tiles and mosaics, weaves and plaids, brushed and
painted metal, printed and kraft paper, marble and concrete, wood species and planks...)
and every call draws its own colours and proportions, so a class is a family of looks,
not one pattern. Palettes deliberately overlap across classes in places (beige paper,
ceramic and maple; grey metal, concrete and plastic) so that a model has to learn the
texture, not the colour. Everything is built from periodic noise and grids with an
integer number of cells per tile, so opposite edges match and textures tile seamlessly
(also as albedo maps in the Gazebo worlds).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..fileio import atomic_path
from .noise import (as_shape, fractal_noise, grid, jitter, lerp, periodic_lines, periodic_noise,
                    rgb, smoothstep, wrap_blur)

MATERIALS = ("ceramic", "fabric", "glass", "metal", "paper", "plastic", "stone", "wood")
Shape = tuple[int, int]
Rng = np.random.Generator

# Palettes (0..255). Shared tones across classes are intentional.
CERAMIC = [(236, 234, 228), (228, 218, 196), (172, 200, 218), (160, 186, 164), (196, 116, 84),
           (48, 48, 54), (226, 196, 196), (214, 200, 172), (90, 120, 150), (200, 200, 196)]
GROUT = [(205, 203, 196), (120, 118, 112), (60, 58, 56), (232, 230, 224)]
FABRIC = [(40, 52, 92), (120, 120, 124), (60, 60, 64), (150, 40, 44), (52, 102, 70),
          (200, 184, 150), (196, 150, 50), (40, 110, 120), (110, 72, 50), (170, 140, 170)]
PAINT = [(120, 124, 130), (226, 226, 220), (52, 82, 64), (44, 70, 128), (170, 46, 40),
         (214, 200, 170), (60, 62, 66), (230, 190, 60)]
PLASTIC_GLOSSY = [(210, 40, 40), (30, 90, 190), (240, 200, 40), (40, 150, 70), (240, 240, 236),
                  (24, 24, 26), (240, 120, 30), (120, 60, 160)]
PLASTIC_MATTE = [(130, 132, 136), (214, 204, 180), (232, 232, 228), (40, 40, 44), (46, 60, 96),
                 (96, 120, 90), (170, 150, 120)]
WOOD = {  # species: early wood, late wood
    "oak": ((196, 156, 104), (146, 104, 62)), "walnut": ((116, 76, 50), (68, 42, 28)),
    "pine": ((226, 194, 142), (182, 128, 72)), "cherry": ((178, 104, 68), (128, 66, 40)),
    "maple": ((232, 208, 168), (206, 172, 128)), "mahogany": ((140, 64, 42), (96, 38, 26)),
}


def _size(shape: Shape, px: float) -> float:
    """A feature size given for a 256-pixel tile, scaled to this tile."""
    return px * min(shape) / 256.0


def _cells(length: int, period: float, multiple: int = 1) -> int:
    """An integer number of cells (a multiple of `multiple`) close to length/period."""
    return max(multiple, int(round(length / period / multiple)) * multiple)


# --- ceramic ------------------------------------------------------------------
def _tiles(shape: Shape, rng: Rng, columns: int, aspect: float = 1.0, offset: bool = False,
           colors: int = 1) -> np.ndarray:
    h, w = shape
    ys, xs = grid(shape)
    tile_w = w / columns
    rows = _cells(h, tile_w / aspect, 2 if offset else 1)
    tile_h = h / rows
    row = np.floor(ys / tile_h)
    shift = (row % 2) * 0.5 if offset else 0.0
    u = xs / tile_w + shift
    col = np.floor(u) % columns
    fx, fy = u - np.floor(u), ys / tile_h - row
    edge = np.minimum(np.minimum(fx, 1 - fx) * tile_w, np.minimum(fy, 1 - fy) * tile_h)
    grout_half = rng.uniform(0.6, 1.6) * _size(shape, 1.0) * max(1.0, tile_w / 40)
    tile_index = (row * columns + col).astype(np.int64)
    palette = np.stack([jitter(rng, CERAMIC[i], 0.03)
                        for i in rng.choice(len(CERAMIC), colors, replace=False)])
    pick = rng.integers(0, colors, rows * columns)
    shade = 1.0 + rng.normal(0, 0.025, rows * columns).astype(np.float32)
    color = palette[pick][tile_index] * shade[tile_index][..., None]
    bevel = 0.86 + 0.14 * smoothstep(grout_half, grout_half + _size(shape, 3.0), edge)
    glaze = 1.0 + 0.025 * periodic_noise(shape, rng, _size(shape, 10))
    kx, ky = int(rng.integers(1, 3)), int(rng.choice([-1, 1]))
    band = np.sin(2 * np.pi * (kx * xs / w + ky * ys / h) + rng.uniform(0, 6.3))
    gloss = 0.14 * smoothstep(0.82, 0.97, band) * smoothstep(grout_half, grout_half + 4, edge)
    out = color * (bevel * glaze)[..., None] + gloss[..., None]
    grout = jitter(rng, GROUT[rng.integers(len(GROUT))], 0.03)
    grout_img = grout * (1.0 + 0.06 * periodic_noise(shape, rng, 0.8))[..., None]
    return np.where((edge < grout_half)[..., None], grout_img, out)


def ceramic_tiles(shape: Shape, rng: Rng) -> np.ndarray:
    return _tiles(shape, rng, int(rng.choice([2, 3, 4, 5])))


def ceramic_subway(shape: Shape, rng: Rng) -> np.ndarray:
    return _tiles(shape, rng, int(rng.choice([2, 3, 4])), aspect=2.0 + rng.integers(0, 2),
                  offset=True)


def ceramic_mosaic(shape: Shape, rng: Rng) -> np.ndarray:
    return _tiles(shape, rng, int(rng.choice([8, 10, 12, 16])), colors=int(rng.integers(2, 4)))


def ceramic_glazed(shape: Shape, rng: Rng) -> np.ndarray:
    """Sanitary ware and crockery: smooth, glossy, no grout."""
    base = jitter(rng, CERAMIC[int(rng.choice([0, 1, 0, 6, 2]))], 0.02)
    ys, xs = grid(shape)
    cloud = 0.03 * periodic_noise(shape, rng, _size(shape, 24))
    sheen = np.clip(periodic_noise(shape, rng, _size(shape, 18), aniso=3.0) - 1.3, 0, None)
    return base * (1 + cloud)[..., None] + 0.25 * sheen[..., None]


# --- fabric -------------------------------------------------------------------
def _weave(shape: Shape, rng: Rng, kind: str) -> np.ndarray:
    h, w = shape
    period = rng.uniform(3.5, 7.0) * min(shape) / 256.0
    repeat = {"plain": 2, "twill": 4, "plaid": 2, "melange": 2}[kind]
    if kind == "plaid":
        stripe_threads = rng.integers(2, 9, size=rng.integers(3, 7))
        pattern = np.repeat(rng.integers(0, 3, len(stripe_threads)), stripe_threads)
        repeat = int(np.lcm(len(pattern), 2))
    nx, ny = _cells(w, period, repeat), _cells(h, period, repeat)
    ys, xs = grid(shape)
    px, py = xs * nx / w, ys * ny / h
    i, j = np.floor(px).astype(np.int64), np.floor(py).astype(np.int64)
    fx, fy = px - i, py - j
    base = jitter(rng, FABRIC[rng.integers(len(FABRIC))], 0.05)
    if kind == "twill":
        weft_base = jitter(rng, (226, 222, 210), 0.04) if rng.random() < 0.5 else base * 0.8
        over = ((i + j) % 4) < 2
    else:
        weft_base = base * rng.uniform(0.75, 1.05)
        over = ((i + j) % 2) == 0
    warp_cols = base * (1 + rng.normal(0, 0.05, (nx, 1))).astype(np.float32)
    weft_cols = weft_base * (1 + rng.normal(0, 0.05, (ny, 1))).astype(np.float32)
    if kind == "plaid":
        stripes = np.stack([base, jitter(rng, FABRIC[rng.integers(len(FABRIC))], 0.05),
                            jitter(rng, (230, 226, 214), 0.05)])
        tiled = np.resize(pattern, max(nx, ny))
        warp_cols, weft_cols = stripes[tiled[:nx]], stripes[tiled[:ny]] * 0.92
    elif kind == "melange":
        other = jitter(rng, FABRIC[rng.integers(len(FABRIC))], 0.05)
        warp_cols = np.where(rng.random((nx, 1)) < 0.35, other, warp_cols)
        weft_cols = np.where(rng.random((ny, 1)) < 0.35, other, weft_cols)
    i, j = np.broadcast_to(i, shape), np.broadcast_to(j, shape)
    warp = warp_cols[i % nx] * (0.62 + 0.38 * np.sqrt(np.sin(np.pi * fx)))[..., None]
    weft = weft_cols[j % ny] * (0.62 + 0.38 * np.sqrt(np.sin(np.pi * fy)))[..., None]
    out = np.where(np.broadcast_to(over, shape)[..., None], warp, weft)
    fuzz = 0.05 * periodic_noise(shape, rng, 0.7) + 0.08 * periodic_noise(shape, rng, _size(shape, 30))
    return out * (1 + fuzz)[..., None]


def fabric_plain(shape: Shape, rng: Rng) -> np.ndarray:
    return _weave(shape, rng, "plain")


def fabric_twill(shape: Shape, rng: Rng) -> np.ndarray:
    return _weave(shape, rng, "twill")


def fabric_plaid(shape: Shape, rng: Rng) -> np.ndarray:
    return _weave(shape, rng, "plaid")


def fabric_melange(shape: Shape, rng: Rng) -> np.ndarray:
    return _weave(shape, rng, "melange")


# --- glass --------------------------------------------------------------------
def glass_reflection(shape: Shape, rng: Rng) -> np.ndarray:
    """Grey-level diagonal reflection streaks (0..1), used over see-through glass in scenes."""
    h, w = shape
    ys, xs = grid(shape)
    kx, ky = int(rng.integers(1, 3)), int(rng.choice([-2, -1, 1, 2]))
    t = kx * xs / w + ky * ys / h + 0.03 * periodic_noise(shape, rng, _size(shape, 20))
    t = t - np.floor(t)
    out = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(1, 4))):
        centre, width = rng.uniform(0, 1), rng.uniform(0.02, 0.12)
        d = np.abs(t - centre)
        d = np.minimum(d, 1 - d)
        out += rng.uniform(0.3, 0.8) * smoothstep(width, width * 0.4, d)
    return np.clip(out, 0, 1)


def _tint(rng: Rng) -> np.ndarray:
    tints = [(0.86, 0.98, 0.94), (0.85, 0.92, 1.0), (0.9, 0.9, 0.9), (0.95, 0.85, 0.72)]
    return np.asarray(tints[rng.integers(len(tints))], np.float32)


def glass_clear(shape: Shape, rng: Rng) -> np.ndarray:
    """Tinted see-through of a blurred, out-of-focus room behind, with reflections."""
    hue = np.stack([jitter(rng, (128, 128, 128), 0.15) for _ in range(2)])
    mix = smoothstep(-0.8, 0.8, fractal_noise(shape, rng, 3.0))
    behind = lerp(hue[0], hue[1], mix) * (1 + 0.15 * fractal_noise(shape, rng, 3.2))[..., None]
    out = behind * _tint(rng) * 0.8 + 0.06
    return out + 0.45 * glass_reflection(shape, rng)[..., None]


def glass_frosted(shape: Shape, rng: Rng) -> np.ndarray:
    base = 0.78 + 0.05 * fractal_noise(shape, rng, 3.0)
    grain = 0.03 * periodic_noise(shape, rng, 0.6)
    return (base + grain)[..., None] * _tint(rng) + 0.2 * glass_reflection(shape, rng)[..., None]


def glass_tinted(shape: Shape, rng: Rng) -> np.ndarray:
    behind = 0.28 + 0.08 * fractal_noise(shape, rng, 3.0)
    return behind[..., None] * _tint(rng) + 0.55 * glass_reflection(shape, rng)[..., None]


# --- metal --------------------------------------------------------------------
def _scratches(image: np.ndarray, rng: Rng, count: int, strength: float) -> None:
    h, w = image.shape[:2]
    starts = rng.uniform(0, 1, (count, 2)) * (w, h)
    angle = rng.uniform(0, np.pi, count)
    length = rng.uniform(0.05, 0.3, count) * w
    ends = starts + np.stack([np.cos(angle), np.sin(angle)], 1) * length[:, None]
    periodic_lines(image, np.hstack([starts, ends]), np.full(3, strength, np.float32))


def metal_brushed(shape: Shape, rng: Rng) -> np.ndarray:
    base = jitter(rng, (rng.uniform(150, 205),) * 3, 0.02) * np.float32([0.98, 0.99, 1.02])
    lines = 0.07 * periodic_noise(shape, rng, 0.5, aniso=80) + 0.05 * periodic_noise(
        shape, rng, 2.0, aniso=40)
    sheen = 0.12 * periodic_noise(shape, rng, _size(shape, 30), aniso=4)
    return base * (1 + lines + sheen)[..., None]


def metal_painted(shape: Shape, rng: Rng) -> np.ndarray:
    base = jitter(rng, PAINT[rng.integers(len(PAINT))], 0.04)
    peel = 0.025 * periodic_noise(shape, rng, _size(shape, 1.5))
    dirt = 0.04 * fractal_noise(shape, rng, 2.5)
    out = np.ascontiguousarray(base * (1 + peel + dirt)[..., None])
    scratched = out.copy()
    _scratches(scratched, rng, int(rng.integers(4, 14)), 0.85)
    return np.where(scratched > out, 0.5 * (out + scratched), out)


def metal_polished(shape: Shape, rng: Rng) -> np.ndarray:
    """Stainless steel: a blurred, high-contrast reflection of the surroundings."""
    env = periodic_noise(shape, rng, _size(shape, 14), aniso=rng.uniform(1, 5),
                         angle=rng.uniform(0, np.pi))
    base = 0.55 + 0.22 * np.tanh(1.5 * env) + 0.015 * periodic_noise(shape, rng, 0.6)
    return base[..., None] * np.float32([0.97, 0.99, 1.03])


def metal_perforated(shape: Shape, rng: Rng) -> np.ndarray:
    base = metal_brushed(shape, rng) if rng.random() < 0.5 else metal_painted(shape, rng)
    h, w = shape
    n = _cells(w, rng.uniform(10, 22) * min(shape) / 256.0)
    m = _cells(h, w / n)
    ys, xs = grid(shape)
    fx, fy = xs * n / w % 1.0 - 0.5, ys * m / h % 1.0 - 0.5
    r = np.sqrt(fx ** 2 + fy ** 2)
    hole = smoothstep(0.3, 0.25, r)
    return base * (1 - 0.85 * hole)[..., None]


# --- paper --------------------------------------------------------------------
def _text(shape: Shape, rng: Rng, line_px: float, columns: int = 1, fill: float = 0.9) -> np.ndarray:
    """Ink coverage (0..1) of text-like lines: words of glyph strokes in rows."""
    h, w = shape
    rows = _cells(h, line_px)
    line_h = h / rows
    ink = np.zeros(shape, np.float32)
    glyph_w = max(2, int(line_h * 0.45))
    col_w = w // columns
    ys = np.arange(h, dtype=np.float32)
    for r in range(rows):
        if rng.random() > fill:
            continue
        y0 = r * line_h
        heading = rng.random() < 0.06
        band = smoothstep(0.25, 0.35, (ys - y0) / line_h) * smoothstep(0.8, 0.7, (ys - y0) / line_h)
        band = band[int(y0):int(y0 + line_h) + 1]
        row = np.zeros(w, np.float32)
        for c in range(columns):
            lengths = rng.integers(1, 9, 40) * glyph_w
            gaps = np.full(40, glyph_w, np.int64)
            edges = np.cumsum(np.stack([lengths, gaps], 1).ravel())
            end = int(col_w * rng.uniform(0.5, 0.95) if rng.random() < 0.15 else col_w * 0.92)
            marks = np.searchsorted(edges, np.arange(end), side="right") % 2 == 0
            strokes = rng.random(end) < (0.75 if heading else 0.5)
            row[c * col_w + int(col_w * 0.04): c * col_w + int(col_w * 0.04) + end] = marks & strokes
        row = np.roll(row, int(rng.integers(0, w)) if columns == 1 else 0)
        ink[int(y0):int(y0) + len(band)] = band[:, None] * row[None, :] * (1.0 if heading else 0.8)
    return wrap_blur(ink, 0.6)


def _paper_base(shape: Shape, rng: Rng, color) -> np.ndarray:
    fibres = 0.018 * periodic_noise(shape, rng, 0.7) + 0.02 * periodic_noise(
        shape, rng, 0.6, aniso=8, angle=rng.uniform(0, np.pi))
    cloud = 0.015 * fractal_noise(shape, rng, 2.5)
    return jitter(rng, color, 0.02) * (1 + fibres + cloud)[..., None]


def paper_printed(shape: Shape, rng: Rng) -> np.ndarray:
    base = _paper_base(shape, rng, [(246, 244, 238), (238, 232, 214), (250, 250, 248)][rng.integers(3)])
    ink_color = rgb([(20, 20, 24), (40, 40, 48), (30, 40, 110)][rng.integers(3)])
    ink = _text(shape, rng, rng.uniform(7, 12) * min(shape) / 256.0, columns=int(rng.integers(1, 3)))
    return lerp(base, ink_color, ink * 0.85)


def paper_ruled(shape: Shape, rng: Rng) -> np.ndarray:
    h, w = shape
    base = _paper_base(shape, rng, (248, 248, 244))
    ys, xs = grid(shape)
    rows = _cells(h, rng.uniform(9, 14) * min(shape) / 256.0)
    d = np.abs((ys * rows / h) % 1.0 - 0.5) * h / rows
    line = smoothstep(0.9, 0.3, np.broadcast_to(d, shape))
    out = lerp(base, rgb((120, 150, 210)), 0.6 * line)
    margin = smoothstep(1.2, 0.4, np.abs(xs - w * rng.uniform(0.1, 0.9)))
    out = lerp(out, rgb((210, 90, 90)), 0.6 * np.broadcast_to(margin, shape))
    writing = _text(shape, rng, h / rows, fill=0.5)
    return lerp(out, rgb((40, 50, 120)), 0.55 * writing)


def paper_kraft(shape: Shape, rng: Rng) -> np.ndarray:
    """Cardboard and kraft paper: brown, fibrous, sometimes printed - wood-like colours."""
    base = _paper_base(shape, rng, (rng.uniform(160, 200), rng.uniform(122, 150), rng.uniform(80, 104)))
    speck = np.clip(periodic_noise(shape, rng, 0.8) - 2.2, 0, None)
    out = base * (1 - 0.3 * speck)[..., None]
    if rng.random() < 0.5:
        ys, _ = grid(shape)
        flutes = _cells(shape[0], rng.uniform(6, 10) * min(shape) / 256.0)
        out = out * (1 + 0.03 * np.sin(2 * np.pi * ys * flutes / shape[0]))[..., None]
    if rng.random() < 0.4:
        out = lerp(out, rgb((30, 30, 30)), 0.7 * _text(shape, rng, 14 * min(shape) / 256.0, fill=0.3))
    return out


def paper_newsprint(shape: Shape, rng: Rng) -> np.ndarray:
    base = _paper_base(shape, rng, (224, 222, 212))
    ink = _text(shape, rng, rng.uniform(5, 7) * min(shape) / 256.0, columns=int(rng.integers(2, 4)))
    return lerp(base, rgb((36, 36, 40)), 0.75 * ink)


# --- plastic ------------------------------------------------------------------
def plastic_glossy(shape: Shape, rng: Rng) -> np.ndarray:
    base = jitter(rng, PLASTIC_GLOSSY[rng.integers(len(PLASTIC_GLOSSY))], 0.04)
    cloud = 0.02 * periodic_noise(shape, rng, _size(shape, 20))
    high = np.clip(periodic_noise(shape, rng, _size(shape, 14)) - 1.4, 0, None) ** 1.5
    return base * (1 + cloud)[..., None] + 0.35 * high[..., None]


def plastic_matte(shape: Shape, rng: Rng) -> np.ndarray:
    base = jitter(rng, PLASTIC_MATTE[rng.integers(len(PLASTIC_MATTE))], 0.04)
    grain = 0.03 * periodic_noise(shape, rng, 0.7) + 0.015 * periodic_noise(shape, rng, 2.0)
    return base * (1 + grain + 0.02 * fractal_noise(shape, rng, 2.5))[..., None]


def plastic_textured(shape: Shape, rng: Rng) -> np.ndarray:
    """Embossed stipple / leather grain: a bump field lit from one side."""
    colors = PLASTIC_MATTE + PLASTIC_GLOSSY[:3]
    base = jitter(rng, colors[rng.integers(len(colors))], 0.04)
    height = periodic_noise(shape, rng, _size(shape, rng.uniform(1.2, 2.5)))
    relief = np.roll(height, 1, axis=1) - height + 0.5 * (np.roll(height, 1, axis=0) - height)
    return base * (1 + 0.12 * np.tanh(relief))[..., None]


# --- stone --------------------------------------------------------------------
def stone_concrete(shape: Shape, rng: Rng) -> np.ndarray:
    base = jitter(rng, (rng.uniform(120, 185),) * 3, 0.03) * np.float32([1.0, 0.99, 0.96])
    blotch = 0.07 * fractal_noise(shape, rng, 2.2)
    speck = 0.06 * periodic_noise(shape, rng, 0.6)
    pores = np.clip(-periodic_noise(shape, rng, 1.0) - 2.0, 0, None)
    aggregate = 0.04 * np.tanh(2 * periodic_noise(shape, rng, _size(shape, 2.5)))
    return base * (1 + blotch + speck + aggregate - 0.5 * pores)[..., None]


def stone_marble(shape: Shape, rng: Rng) -> np.ndarray:
    h, w = shape
    bases = [(236, 234, 228), (226, 218, 200), (150, 150, 152), (40, 40, 44), (60, 96, 80)]
    base = jitter(rng, bases[rng.integers(len(bases))], 0.03)
    vein_col = base * 0.45 if base.mean() > 0.4 else jitter(rng, (220, 210, 190), 0.03)
    ys, xs = grid(shape)
    turb = fractal_noise(shape, rng, 2.0)
    t = int(rng.integers(1, 3)) * xs / w + int(rng.choice([-1, 1])) * ys / h + 0.25 * turb
    vein = (1 - np.abs(np.sin(2 * np.pi * t))) ** rng.uniform(10, 30)
    fine = (1 - np.abs(periodic_noise(shape, rng, _size(shape, 6)))) ** 12 * 0.5
    cloud = 0.04 * fractal_noise(shape, rng, 2.5)
    out = base * (1 + cloud)[..., None]
    return lerp(out, vein_col, np.clip(vein + fine, 0, 1) * 0.8)


def stone_granite(shape: Shape, rng: Rng) -> np.ndarray:
    sets = [[(30, 30, 32), (120, 118, 116), (200, 196, 190)], [(40, 36, 36), (180, 120, 110), (210, 200, 196)],
            [(60, 60, 66), (100, 100, 104), (150, 150, 150)], [(90, 70, 50), (170, 150, 120), (40, 34, 30)]]
    palette = np.stack([jitter(rng, c, 0.04) for c in sets[rng.integers(len(sets))]])
    n = periodic_noise(shape, rng, _size(shape, 1.4)) + 0.5 * periodic_noise(shape, rng, 0.6)
    idx = np.digitize(n, [-0.5, 0.7])
    return palette[idx] * (1 + 0.05 * periodic_noise(shape, rng, 0.6))[..., None]


def stone_terrazzo(shape: Shape, rng: Rng) -> np.ndarray:
    base = stone_concrete(shape, rng) * 1.1
    chips = [jitter(rng, c, 0.05) for c in [(236, 232, 224), (40, 40, 42), (180, 130, 110), (140, 150, 150)]]
    out = base
    for color in chips[: int(rng.integers(2, 5))]:
        mask = periodic_noise(shape, rng, _size(shape, 2.2)) > 1.6
        out = np.where(mask[..., None], color, out)
    return out


# --- wood ---------------------------------------------------------------------
def _grain(shape: Shape, rng: Rng, early: np.ndarray, late: np.ndarray, rings: int) -> np.ndarray:
    """Growth rings running along x (flat-sawn figure), with pores and colour drift."""
    h, _ = shape
    ys, _ = grid(shape)
    warp = 0.8 * fractal_noise(shape, rng, 2.6, aniso=6.0) + 0.15 * periodic_noise(
        shape, rng, _size(shape, 3), aniso=10)
    t = rings * ys / h + warp
    ring = t - np.floor(t)
    late_w = smoothstep(0.55, 0.9, ring) * smoothstep(1.0, 0.92, ring)
    out = lerp(early, late, late_w)
    pores = np.clip(periodic_noise(shape, rng, 0.5, aniso=25) - 1.0, 0, None)
    drift = 0.06 * fractal_noise(shape, rng, 2.5, aniso=4)
    return out * (1 + drift - 0.12 * pores)[..., None]


def _species(rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    early, late = list(WOOD.values())[rng.integers(len(WOOD))]
    return jitter(rng, early, 0.05), jitter(rng, late, 0.05)


def wood_grain(shape: Shape, rng: Rng) -> np.ndarray:
    early, late = _species(rng)
    return _grain(shape, rng, early, late, int(rng.integers(3, 12)))


def wood_planks(shape: Shape, rng: Rng) -> np.ndarray:
    h, w = shape
    early, late = _species(rng)
    planks = int(rng.integers(2, 6))
    plank_h = h / planks
    out = np.empty((h, w, 3), np.float32)
    ys, xs = grid(shape)
    for p in range(planks):
        y0, y1 = int(round(p * plank_h)), int(round((p + 1) * plank_h))
        shade = np.float32(1 + rng.normal(0, 0.06))
        piece = _grain((h, w), rng, early * shade, late * shade, int(rng.integers(3, 10)))
        joint = rng.uniform(0, w)
        seam = smoothstep(1.5, 0.4, np.abs(xs - joint))
        out[y0:y1] = piece[y0:y1] * (1 - 0.45 * seam)[..., None]
    seam = smoothstep(1.5, 0.3, np.abs((ys + plank_h / 2) % plank_h - plank_h / 2))
    return out * (1 - 0.5 * seam)[..., None]


STYLES: dict[str, dict[str, Callable[[Shape, Rng], np.ndarray]]] = {
    "ceramic": {"tiles": ceramic_tiles, "subway": ceramic_subway, "mosaic": ceramic_mosaic,
                "glazed": ceramic_glazed},
    "fabric": {"plain": fabric_plain, "twill": fabric_twill, "plaid": fabric_plaid,
               "melange": fabric_melange},
    "glass": {"clear": glass_clear, "frosted": glass_frosted, "tinted": glass_tinted},
    "metal": {"brushed": metal_brushed, "painted": metal_painted, "polished": metal_polished,
              "perforated": metal_perforated},
    "paper": {"printed": paper_printed, "ruled": paper_ruled, "kraft": paper_kraft,
              "newsprint": paper_newsprint},
    "plastic": {"glossy": plastic_glossy, "matte": plastic_matte, "textured": plastic_textured},
    "stone": {"concrete": stone_concrete, "marble": stone_marble, "granite": stone_granite,
              "terrazzo": stone_terrazzo},
    "wood": {"grain": wood_grain, "planks": wood_planks},
}


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def parse_texture_name(path: str | Path) -> tuple[str, str]:
    """(material, style) of a texture file named `<material>_<style>[_<anything>].<ext>`."""
    material, _, rest = Path(path).stem.partition("_")
    style = rest.split("_", 1)[0]
    if material not in STYLES or style not in STYLES[material]:
        known = ", ".join(f"{m}_{s}" for m in STYLES for s in STYLES[m])
        raise ValueError(f"{path}: a texture file name must be <material>_<style>[_<name>] with "
                         f"<material>_<style> one of: {known}")
    return material, style


def make_texture_float(material: str, size: int | tuple[int, int], rng: Rng,
                       style: str | None = None) -> tuple[np.ndarray, str]:
    """(H×W×3 float32 RGB in 0..1, style name); the renderer works in float."""
    if material not in STYLES:
        raise KeyError(f"unknown material {material!r}; known: {', '.join(STYLES)}")
    styles = STYLES[material]
    if style is None:
        style = list(styles)[rng.integers(len(styles))]
    elif style not in styles:
        raise KeyError(f"unknown {material} style {style!r}; known: {', '.join(styles)}")
    image = styles[style](as_shape(size), rng)
    return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False), style


def make_texture(material: str, size: int | tuple[int, int], rng: Rng,
                 style: str | None = None) -> np.ndarray:
    """A tileable H×W×3 uint8 RGB texture of `material` (a random style unless given)."""
    return to_uint8(make_texture_float(material, size, rng, style)[0])


def export_textures(out_dir: str | Path, size: int = 512, seed: int = 0) -> list[Path]:
    """Write `<material>.png` and `<material>_<style>.png` for every material and style.

    Deterministic for a seed; used as albedo maps by the Gazebo worlds.
    """
    out_dir = Path(out_dir)
    written = []
    for m_index, material in enumerate(MATERIALS):
        jobs = [(material, None)] + [(f"{material}_{s}", s) for s in STYLES[material]]
        for j_index, (name, style) in enumerate(jobs):
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(m_index, j_index)))
            image = make_texture(material, size, rng, style)
            path = out_dir / f"{name}.png"
            with atomic_path(path) as tmp:
                if not cv2.imwrite(str(tmp), image[..., ::-1]):
                    raise OSError(f"{path}: could not write PNG")
            written.append(path)
    return written
