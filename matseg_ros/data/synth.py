"""Procedural indoor scenes with pixel-exact material masks, and datasets made of them.

`render_scene` builds a random room (floor, walls, ceiling, windows, doors, furniture
and small things, every piece made of one of the eight materials) and renders it from
a robot-height camera; `generate_dataset` writes many of them in the HRIM2021 layout.
Per-image generators come from `SeedSequence(seed, spawn_key=(0, index))` and texture
variants from `(seed, 1, material, variant)`, so the output is identical for a seed
whatever the number of workers.

Labelling: painted plaster (walls, ceiling) and dark open doorways are background (0);
the view through a window is glass. Post effects (exposure, white balance, vignette,
blur, noise, and JPEG when written) change the image only, never the mask.
"""
from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from . import furniture, objects
from ..fileio import atomic_path, atomic_write_text
from ..io.dataset_layout import image_dir, mask_path
from ..io.masks import write_mask
from ..materials import MaterialMap, load_materials
from .render3d import Camera, Raster
from .scene import Builder, Extras, TextureBank, read_textures
from .textures import MATERIALS


def _labels(materials: MaterialMap) -> dict[str, int]:
    """Material name -> id in this class map; materials it does not name become background."""
    return {m.name: m.id for m in materials if m.name in MATERIALS}


def _free(b: Builder, x0: float, x1: float, z0: float, z1: float) -> bool:
    return all(x1 < f[:, 0].min() or x0 > f[:, 0].max() or z1 < f[:, 2].min() or z0 > f[:, 2].max()
               for f in b.footprints)


def _furnish(b: Builder, walls: list[furniture.Wall], W: float, D: float, H: float, cam_z: float) -> None:
    rng = b.rng
    back, left, right, _front = walls
    keep_clear = cam_z + 0.8  # nothing right in front of the lens
    left.used.append((0.0, keep_clear))
    right.used.append((D - keep_clear, D))
    for wall in (back, left, right):
        for _ in range(int(rng.integers(0, 3)) if wall is back else int(rng.random() < 0.5)):
            furniture.window(b, wall, H)
        if rng.random() < 0.25:
            furniture.door(b, wall)
    for _ in range(int(rng.integers(2, 6))):
        wall = [back, left, right][rng.choice(3, p=[0.5, 0.25, 0.25])]
        kind = furniture.pick(rng, {"cabinet": 3, "shelf": 2.5, "counter": 1.5, "sofa": 1})
        width = {"cabinet": rng.uniform(0.5, 1.4), "shelf": rng.uniform(0.6, 1.4),
                 "counter": rng.uniform(1.2, 2.4), "sofa": rng.uniform(1.4, 2.2)}[kind]
        a0 = wall.free(width, rng)
        if a0 is not None:
            if kind == "shelf":
                objects.shelf(b, wall, a0, width, H)
            else:
                getattr(objects, kind)(b, wall, a0, width)
    for wall in (back, left, right):
        for _ in range(int(rng.integers(0, 3))):
            furniture.wall_art(b, wall, H)
    if rng.random() < 0.35:
        x0, z0 = rng.uniform(0.3, W - 1.5), rng.uniform(keep_clear, max(keep_clear, D - 2.0))
        objects.rug(b, x0, x0 + rng.uniform(1.0, 2.5), z0, z0 + rng.uniform(0.8, 2.0))
    if rng.random() < 0.75:
        tw, td = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0)
        x0 = rng.uniform(0.3, max(0.31, W - tw - 0.3))
        z0 = rng.uniform(keep_clear + 0.3, max(keep_clear + 0.31, D - td - 0.8))
        if _free(b, x0 - 0.5, x0 + tw + 0.5, z0 - 0.5, z0 + td + 0.5):
            objects.table(b, x0, x0 + tw, z0, z0 + td)
            for _ in range(int(rng.integers(0, 4))):
                side = int(rng.integers(4))
                along = rng.uniform(0.3, 0.7)
                px, pz, facing = [(x0 + tw * along, z0 - 0.3, 0), (x0 + tw + 0.3, z0 + td * along, 1),
                                  (x0 + tw * along, z0 + td + 0.3, 2), (x0 - 0.3, z0 + td * along, 3)][side]
                if pz > keep_clear and 0.3 < px < W - 0.3 and pz < D - 0.3:
                    objects.chair(b, px, pz, facing)
    for _ in range(int(rng.integers(0, 3))):
        x, z = rng.uniform(0.3, W - 0.3), rng.uniform(keep_clear, D - 0.3)
        if _free(b, x - 0.25, x + 0.25, z - 0.25, z + 0.25):
            if rng.random() < 0.6:
                objects.bin_(b, x, z)
            else:
                objects.carton(b, x, z, 0.0)
                b.footprint(x - 0.2, x + 0.2, z - 0.2, z + 0.2)


@functools.lru_cache(maxsize=4)
def _noise_pool(h: int, w: int) -> np.ndarray:
    """A fixed field of sensor noise; each image reads it at a random offset (fast, seeded)."""
    return np.random.default_rng(0x5EED).standard_normal((2 * h, 2 * w, 3), dtype=np.float32)


def finish(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Camera effects on the image only: exposure, white balance, vignette, blur, noise."""
    h, w = rgb.shape[:2]
    gain = (rng.uniform(0.85, 1.2) * (1 + rng.normal(0, 0.035, 3))).astype(np.float32)
    ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    vignette = 1.0 - np.float32(rng.uniform(0.0, 0.3) / 2) * (xs ** 2 + ys ** 2)
    out = rgb * vignette[..., None]
    out *= gain
    if rng.random() < 0.15:  # camera shake
        k = int(rng.integers(3, 8))
        kernel = np.zeros((k, k), np.float32)
        cv2.line(kernel, (0, int(rng.integers(k))), (k - 1, int(rng.integers(k))), 1.0, 1)
        out = cv2.filter2D(out, -1, kernel / kernel.sum())
    else:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.35, 1.0))
    dy, dx = int(rng.integers(h)), int(rng.integers(w))
    out += _noise_pool(h, w)[dy:dy + h, dx:dx + w] * np.float32(rng.uniform(0.004, 0.015))
    return cv2.convertScaleAbs(np.maximum(out, 0, out=out), alpha=255.0)


def render_scene(rng: np.random.Generator, size: tuple[int, int] = (384, 512),
                 materials: MaterialMap | None = None, bank: TextureBank | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One random room: (rgb uint8 H×W×3, class ids uint8 H×W), pixel-exact.

    Without a `bank`, textures are made for this scene alone (slower); datasets share one.
    """
    view = render_room(rng, size, materials, bank)[0]
    return view.rgb, view.ids


@dataclass
class RoomView:
    """One view of a room: colour, class ids, z-depth in metres (0: nothing) and its K."""
    rgb: np.ndarray
    ids: np.ndarray
    depth_m: np.ndarray
    K: np.ndarray


def render_room(rng: np.random.Generator, size: tuple[int, int] = (384, 512),
                materials: MaterialMap | None = None, bank: TextureBank | None = None,
                hfov_deg: float | None = None, yaw_offsets_deg: tuple[float, ...] = (0.0,)) -> list[RoomView]:
    """Views of one random room from one spot, turned by `yaw_offsets_deg` (a camera pan),
    with a horizontal field of view of `hfov_deg` (random when None). The first view with
    the defaults is `render_scene`'s, from the same random draws."""
    h, w = (int(v) for v in size)
    if h < 16 or w < 16:
        raise ValueError(f"size must be at least 16×16 (height, width), got {size!r}")
    materials = materials or load_materials()
    bank = bank or TextureBank(int(rng.integers(1 << 31)), variants=3)
    b = Builder(rng, bank, _labels(materials))
    W, D, H = rng.uniform(3.0, 7.0), rng.uniform(3.5, 8.0), rng.uniform(2.4, 3.2)
    walls = furniture.room(b, W, D, H)
    room_faces = len(b.faces)
    cam_x, cam_z = rng.uniform(0.3, 0.7) * W, rng.uniform(0.15, 0.9)
    _furnish(b, walls, W, D, H, cam_z)
    yaw = np.radians(rng.uniform(-35, 35)) + (0.15 if cam_x < W / 2 else -0.15)
    position = (cam_x, rng.uniform(0.5, 1.6), cam_z)
    pitch, roll, hfov = np.radians(rng.uniform(-28, -4)), np.radians(rng.normal(0, 1.5)), rng.uniform(55, 80)
    hfov = np.radians(hfov if hfov_deg is None else hfov_deg)
    light = (rng.uniform(0.2, 0.8) * W, H - 0.15, rng.uniform(0.3, 0.9) * D)
    ambient, power = rng.uniform(0.35, 0.55), rng.uniform(0.6, 1.0)
    shadow = rng.uniform(0.25, 0.5), rng.uniform(4, 10) * w / 512
    things = [f for f in b.faces[room_faces:] if f.surface.glass == 0]
    glass = [f for f in b.faces if f.surface.glass > 0]
    views = []
    for offset in yaw_offsets_deg:
        camera = Camera.look(position, yaw + np.radians(offset), pitch, roll, hfov, (h, w))
        raster = Raster(camera, light, ambient=ambient, power=power)
        # opaque things near to far (hidden faces are then rejected early), the room behind
        # them, contact shadows on the room only, then see-through glass far to near
        depth = {id(f): f.depth_key(camera) for f in b.faces}
        for face in sorted(things, key=lambda f: depth[id(f)]):
            raster.draw(face)
        covered = raster.invz > 0
        for face in b.faces[:room_faces]:
            if face.surface.glass == 0:
                raster.draw(face)
        raster.shadow(b.footprints, *shadow, only=~covered)
        for face in sorted(glass, key=lambda f: -depth[id(f)]):
            raster.draw(face)
        z = np.divide(1.0, raster.invz, out=np.zeros_like(raster.invz), where=raster.invz > 0)
        views.append(RoomView(finish(raster.rgb, rng), raster.ids, z, camera.K.copy()))
    return views


# --- datasets -----------------------------------------------------------------
_WORKER: dict = {}


def _init_worker(seed: int, size: tuple[int, int], materials_json: str, variants: int,
                 extra: Extras, single_thread: bool = False) -> None:
    if single_thread:  # one process per core: OpenCV's own threads would only contend
        cv2.setNumThreads(1)
    _WORKER.update(seed=seed, size=size, materials=MaterialMap.from_json(materials_json),
                   bank=TextureBank(seed, variants=variants, extra=extra))


def _make_one(args: tuple[str, int]) -> tuple[str, list[int]]:
    """Render and write image `index`; returns its id and the class ids present."""
    output, index = args
    rng = np.random.default_rng(np.random.SeedSequence(_WORKER["seed"], spawn_key=(0, index)))
    rgb, ids = render_scene(rng, _WORKER["size"], _WORKER["materials"], _WORKER["bank"])
    image_id = f"{index:06d}"
    ok, jpeg = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
    if not ok:
        raise OSError(f"could not encode image {image_id} as JPEG")
    with atomic_path(image_dir(output) / f"{image_id}.jpg") as tmp:
        tmp.write_bytes(jpeg.tobytes())
    write_mask(mask_path(output, image_id), ids, _WORKER["materials"])
    return image_id, np.flatnonzero(np.bincount(ids.ravel(), minlength=256)).tolist()


def generate_dataset(output: str | Path, count: int, size: tuple[int, int] = (384, 512), seed: int = 0,
                     workers: int | None = None, materials: MaterialMap | None = None,
                     variants: int = 12, val: float = 0.15, test: float = 0.15,
                     progress: bool = False, add_textures: tuple[str | Path, ...] = ()) -> dict:
    """Write `count` scenes in the HRIM2021 layout with stratified ImageSets; returns a summary.

    `add_textures`: folders of `<material>_<style>[_<name>].jpg/png` images that join the
    texture bank next to the `variants` generated ones per material (see `read_textures`).
    """
    from .split import stratified_split, write_splits

    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    output = Path(output)
    materials = materials or load_materials()
    workers = max(1, min(workers or os.cpu_count() or 1, count))
    jobs = [(str(output), i) for i in range(count)]
    extra: dict[str, list] = {}
    for folder in add_textures:
        for material, images in read_textures(folder).items():
            extra.setdefault(material, []).extend(images)
    init = (int(seed), tuple(size), materials.to_json(), int(variants), extra)
    if workers == 1:
        _init_worker(*init)
        results = map(_make_one, jobs)
        pool = None
    else:
        # spawn, not fork: a forked child can inherit OpenCV's thread-pool locks held and hang
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init_worker, initargs=init + (True,))
        results = pool.map(_make_one, jobs, chunksize=max(1, min(16, count // (4 * workers))))
    try:
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=count, desc="synth", unit="img")
        present = dict(results)
    finally:
        if pool is not None:
            pool.shutdown()
    splits = stratified_split({i: set(c) - {0} for i, c in present.items()}, val, test, seed)
    write_splits(output, splits)
    summary = {"generator": "matseg_ros.data.synth", "count": count, "size": list(size), "seed": seed,
               "texture_variants": variants,
               "added_textures": {k: len(v) for k, v in sorted(extra.items())},
               "texture_folders": [str(f) for f in add_textures], "splits": {k: len(v) for k, v in splits.items()},
               "images_with_class": {m.name: sum(m.id in c for c in present.values()) for m in materials}}
    atomic_write_text(output / "synth.json", json.dumps(summary, indent=2) + "\n")
    return summary


# --- command line -------------------------------------------------------------
def _size_arg(text: str) -> tuple[int, int]:
    """'512x384' (width x height) -> (384, 512) (height, width)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, e.g. 512x384, got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, required=True, help="dataset root to write")
    parser.add_argument("--count", type=int, required=True, help="number of images")
    parser.add_argument("--size", type=_size_arg, default=(384, 512), help="WIDTHxHEIGHT (default 512x384)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--variants", type=int, default=12, help="texture variants per material (default 12)")
    parser.add_argument("--val", type=float, default=0.15)
    parser.add_argument("--test", type=float, default=0.15)
    parser.add_argument("--add-textures", type=Path, action="append", default=[], metavar="DIR",
                        help="add the <material>_<style>[_<name>].jpg/png images of DIR to the "
                        "texture bank, e.g. gazebo_worlds/materials/textures or photos of the "
                        "robot's surfaces (repeatable)")
    parser.add_argument("--textures", type=Path, default=None,
                        help="also export tileable PNG textures of every material here")
    parser.add_argument("--texture-size", type=int, default=512)
    parser.add_argument("--materials", type=Path, default=None, help="class map YAML (default: shipped)")


def run(args: argparse.Namespace) -> int:
    import sys

    from ..materials import MaterialsError
    from .textures import export_textures

    try:
        materials = load_materials(args.materials)
        summary = generate_dataset(args.output, args.count, args.size, args.seed, args.workers, materials,
                                   args.variants, args.val, args.test, progress=sys.stderr.isatty(),
                                   add_textures=tuple(args.add_textures))
        if args.textures:
            written = export_textures(args.textures, args.texture_size, args.seed)
            print(f"{len(written)} textures written to {args.textures}")
    except (MaterialsError, ValueError, OSError) as exc:
        print(f"matseg data synth: {exc}", file=sys.stderr)
        return 2
    print(f"{summary['count']} images in {args.output}: " + ", ".join(f"{k}={v}" for k, v in summary["splits"].items()))
    return 0
