"""The demo's sample sequence, made at run time and the same on every run.

A slow camera pan across real photographs (scikit-image's bundled samples, and a few
photographs of the shared real sets where a developer's checkout has them beside it) and,
where the data tools are installed, through synthetic rooms, rendered with their depth
and one calibrated camera — so the demo needs no download, no dataset and no depth camera.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from ..fileio import atomic_path
from ..io.depth_source import Calibration, millimetres, write_calibration

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SCENE_SEED = 7
ROOMS = 2
ROOM_HFOV_DEG = 65.0  # one field of view for every room: one calibration for the whole sequence
ROOM_PAN_DEG = 16.0   # how far a room's views turn from the first to the last
# Photographs of ../shared/realdata (a developer checkout's sibling; absent on a robot), read
# in place, from the training splits the shipped model's card describes.
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
SHARED_PHOTOS = ("trashnet/images/glass/glass11.jpg", "trashnet/images/metal/metal10.jpg",
                 "trashnet/images/plastic/plastic10.jpg", "smdra/images/image_00000010.jpg")


def _photos() -> list[np.ndarray]:
    try:
        import skimage.data as samples
    except ImportError:  # scikit-image is a test/demo dependency, not a runtime one
        return []
    photos = [getattr(samples, name)() for name in PHOTOS]
    for relative in SHARED_PHOTOS:
        bgr = cv2.imread(str(REALDATA / relative)) if (REALDATA / relative).is_file() else None
        if bgr is not None:
            photos.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return photos


def _room_renderer() -> Callable[..., Any] | None:
    """The data tools' synthetic rooms (matseg_ros.data.synth), where they import."""
    try:
        from ..data.synth import render_room
    except ImportError:
        return None
    return render_room


def rooms_available() -> bool:
    """Whether the sample sequence has rooms, and so depth."""
    return _room_renderer() is not None


def _rooms(size: tuple[int, int], views: int) -> tuple[list[list[np.ndarray]], list[list[np.ndarray]], np.ndarray | None]:
    """ROOMS synthetic rooms, each `views` frames of a camera turning on the spot: (colour
    frames, z-depth frames in metres, K) per room; nothing where the data tools are absent."""
    render_room = _room_renderer()
    if render_room is None:
        return [], [], None
    rng = np.random.default_rng(SCENE_SEED)
    offsets = tuple(ROOM_PAN_DEG * (i / max(1, views - 1) - 0.5) for i in range(views))
    rooms = [render_room(rng, size, hfov_deg=ROOM_HFOV_DEG, yaw_offsets_deg=offsets) for _ in range(ROOMS)]
    return ([[v.rgb for v in room] for room in rooms], [[v.depth_m for v in room] for room in rooms],
            rooms[0][0].K)


def _fallback(size: tuple[int, int]) -> np.ndarray:
    """A deterministic colour-gradient scene for installs with neither source."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.dstack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255]).astype(np.uint8)


def _pan(image: np.ndarray, size: tuple[int, int], steps: int) -> Iterator[np.ndarray]:
    """`steps` views of `image` (scaled to cover 1.25× the frame) moving left to right."""
    height, width = size
    scale = 1.25 * max(height / image.shape[0], width / image.shape[1])
    big = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    span_x, span_y = big.shape[1] - width, big.shape[0] - height
    for i in range(steps):
        t = i / max(1, steps - 1)
        x0, y0 = round(t * span_x), round((0.5 - 0.25 * t) * span_y)
        yield np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width])


@dataclass
class SampleSequence:
    frames: list[np.ndarray]               # RGB
    depth_m: list[np.ndarray | None]       # z-depth in metres (0: none); None: a photograph
    calibration: Calibration | None        # the rooms' camera; None without rooms


def sample_rgbd(count: int, size: tuple[int, int] = (480, 640)) -> SampleSequence:
    """`count` frames of `size`: equal-length pans over each photograph, then through each
    room (with depth). When `count` is short, photographs give way first: the rooms are
    what shows the material cloud."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    photos = _photos()
    per_picture = -(-count // max(1, len(photos) + ROOMS))
    rooms, depths, K = _rooms(size, per_picture)
    if not photos and not rooms:
        photos = [_fallback(size)]
        per_picture = count
    room_frames = [f for room in rooms for f in room][:count]
    room_depth = [d for room in depths for d in room][:count]
    photo_frames = [f for photo in photos for f in _pan(photo, size, per_picture)][:count - len(room_frames)]
    calibration = None if K is None else Calibration.pinhole(K[0, 0], K[1, 1], K[0, 2], K[1, 2], size[1], size[0])
    return SampleSequence(photo_frames + room_frames, [None] * len(photo_frames) + room_depth, calibration)


def sample_sequence(count: int, size: tuple[int, int] = (480, 640)) -> list[np.ndarray]:
    """`sample_rgbd`'s colour frames."""
    return sample_rgbd(count, size).frames


def write_sequence(frames: list[np.ndarray], folder: Path) -> list[Path]:
    """frame_0000.png, ... in `folder` (RGB arrays written as PNG)."""
    paths = []
    for index, rgb in enumerate(frames):
        path = folder / f"frame_{index:04d}.png"
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                raise OSError(f"{path}: could not write PNG")
        paths.append(path)
    return paths


def write_depth(sequence: SampleSequence, folder: Path, calibration_file: Path) -> list[Path]:
    """The rooms' depth as 16-bit millimetre PNGs named like their frames, and their camera
    as a camera_calibration YAML file: what camera_replay's depth_dir and calibration_file read."""
    paths = []
    for index, depth in enumerate(sequence.depth_m):
        if depth is not None:
            path = folder / f"frame_{index:04d}.png"
            with atomic_path(path) as tmp:
                if not cv2.imwrite(str(tmp), millimetres(depth)):
                    raise OSError(f"{path}: could not write PNG")
            paths.append(path)
    if sequence.calibration is not None:
        write_calibration(calibration_file, sequence.calibration)
    return paths
