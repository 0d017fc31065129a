"""Pieces shared by the docs/ figure scripts: the material legend strip under a figure."""
from __future__ import annotations

import cv2
import numpy as np


def legend(materials, width: int, background: bool = True) -> np.ndarray:
    """A 28-pixel white strip of colour swatches and names, one per material (background
    left out with `background=False`, e.g. under overlays that keep background pixels)."""
    strip = np.full((28, width, 3), 255, np.uint8)
    x = 8
    for material in materials:
        if material.id == 0 and not background:
            continue
        cv2.rectangle(strip, (x, 6), (x + 16, 22), tuple(int(c) for c in material.color), -1)
        cv2.rectangle(strip, (x, 6), (x + 16, 22), (0, 0, 0), 1)
        cv2.putText(strip, material.name, (x + 20, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
        x += 24 + 9 * len(material.name) + 10
    return strip
