"""The demo's sample sequence, made at run time and the same on every run.

A slow camera pan across real photographs (scikit-image's bundled samples, and a few
photographs of the shared real sets where a developer's checkout has them beside it) and,
where the data tools are installed, across synthetic material scenes — so the demo needs
no download and no dataset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from ..fileio import atomic_path

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
SCENE_SEED = 7
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


def _scenes(size: tuple[int, int], count: int) -> list[np.ndarray]:
    try:  # the data tools' synthetic material scenes (matseg_ros.data.synth)
        from ..data.synth import render_scene
    except ImportError:
        return []
    rng = np.random.default_rng(SCENE_SEED)
    return [render_scene(rng, size=size)[0] for _ in range(count)]


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


def sample_sequence(count: int, size: tuple[int, int] = (480, 640),
                    scenes: Callable[[tuple[int, int], int], list[np.ndarray]] = _scenes) -> list[np.ndarray]:
    """`count` RGB frames of `size`: equal-length pans over each source picture."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    pictures = _photos() + scenes(size, 2)
    if not pictures:
        pictures = [_fallback(size)]
    per_picture = -(-count // len(pictures))
    frames = [frame for picture in pictures for frame in _pan(picture, size, per_picture)]
    return frames[:count]


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
