"""Periodic noise and small colour helpers for the procedural textures.

Every noise field here is built in the frequency domain of a discrete torus (white
noise -> FFT -> filter -> inverse FFT), so opposite edges match exactly and a texture
made from it tiles without seams, at any size and in any direction of anisotropy.
"""
from __future__ import annotations

import numpy as np


def as_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """(h, w) from an int or a pair; ValueError naming the value otherwise."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2:
        h, w = (int(v) for v in size)
    else:
        raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if h < 8 or w < 8:
        raise ValueError(f"texture size must be at least 8×8 pixels, got {h}×{w}")
    return h, w


def _normalise(field: np.ndarray) -> np.ndarray:
    field -= field.mean()
    std = field.std()
    if std > 0:
        field /= std
    return field


def periodic_noise(shape: tuple[int, int], rng: np.random.Generator, scale: float,
                   aniso: float = 1.0, angle: float = 0.0) -> np.ndarray:
    """Gaussian-filtered white noise on a torus: zero mean, unit std, float32.

    `scale` is the feature size in pixels (std of the blur); `aniso` > 1 stretches the
    features by that factor along direction `angle` (radians from the x axis).
    """
    h, w = shape
    spectrum = np.fft.rfft2(rng.standard_normal((h, w), dtype=np.float32))
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    along, across = fx * c + fy * s, fy * c - fx * s
    sa, sc = np.float32(scale * aniso), np.float32(scale)
    gain = np.exp(np.float32(-2 * np.pi ** 2) * ((along * sa) ** 2 + (across * sc) ** 2))
    return _normalise(np.fft.irfft2(spectrum * gain, s=(h, w)).astype(np.float32))


def fractal_noise(shape: tuple[int, int], rng: np.random.Generator, beta: float = 2.0,
                  low_cycles: float = 1.5, aniso: float = 1.0) -> np.ndarray:
    """Power-law (1/f^beta) noise on a torus: cloudy blotches at every scale, unit std.

    `low_cycles` damps features larger than the tile/low_cycles; `aniso` stretches along x.
    """
    h, w = shape
    spectrum = np.fft.rfft2(rng.standard_normal((h, w), dtype=np.float32))
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None] * h
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :] * w * np.float32(aniso)
    cycles2 = fx ** 2 + fy ** 2 + np.float32(low_cycles ** 2)
    gain = cycles2 ** np.float32(-beta / 2)
    return _normalise(np.fft.irfft2(spectrum * gain, s=(h, w)).astype(np.float32))


def grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates as broadcastable float32 arrays (h×1 ys, 1×w xs)."""
    h, w = shape
    return (np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :])


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def rgb(color) -> np.ndarray:
    """A 0..255 colour triple as float32 0..1."""
    return np.asarray(color, dtype=np.float32) / 255.0


def jitter(rng: np.random.Generator, color, amount: float = 0.06) -> np.ndarray:
    """A colour varied in brightness and slightly in hue, so no two draws look alike."""
    base = rgb(color) if np.max(color) > 1.0 else np.asarray(color, np.float32)
    scale = 1.0 + rng.normal(0.0, amount) + rng.normal(0.0, amount / 3, 3)
    return np.clip(base * scale.astype(np.float32), 0.0, 1.0)


def lerp(c0: np.ndarray, c1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Blend two colours (or colour images) by a weight field t (h×w) -> h×w×3."""
    t = t[..., None]
    return c0 + (c1 - c0) * t


def wrap_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur on a torus (OpenCV's filters have no wrap-around border)."""
    import cv2

    pad = max(1, int(np.ceil(3 * sigma)))
    widths = ((pad, pad), (pad, pad)) + ((0, 0),) * (image.ndim - 2)
    padded = np.pad(image, widths, mode="wrap")
    return cv2.GaussianBlur(padded, (0, 0), sigma)[pad:-pad, pad:-pad]


def periodic_lines(image: np.ndarray, segments: np.ndarray, color: np.ndarray,
                   thickness: int = 1) -> None:
    """Draw line segments (N×4 x0,y0,x1,y1) in place, wrapping around the edges."""
    import cv2

    h, w = image.shape[:2]
    for x0, y0, x1, y1 in segments:
        for dy in (-h, 0, h):
            for dx in (-w, 0, w):
                cv2.line(image, (int(x0 + dx), int(y0 + dy)), (int(x1 + dx), int(y1 + dy)),
                         color.tolist(), thickness, cv2.LINE_AA)
