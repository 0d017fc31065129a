"""albumentations pipelines shared by training and `matseg data augment`; no torch needed."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def seed_pipeline(pipeline, entropy: Sequence[int]) -> None:
    """Seed an albumentations Compose so that each of its transforms draws from its own stream.

    `Compose.set_random_seed` hands every child the same seed: their first "apply?" draws
    coincide, so the transforms would fire all together or not at all (with p ≤ 0.7 each,
    about 3 copies in 10 would come out unchanged)."""
    states = np.random.SeedSequence(list(entropy)).generate_state(len(pipeline.transforms) + 1)
    pipeline.set_random_seed(int(states[0]))
    for transform, state in zip(pipeline.transforms, states[1:]):
        transform.set_random_seed(int(state))


def camera_ops() -> list:
    """Photometric changes between cameras, and between rendered rooms and photographs:
    exposure and contrast, colour, white balance, gamma, sensor noise, JPEG artefacts and
    blur. Pixel-only, so masks stay as they are."""
    import albumentations as A

    return [
        A.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.3, hue=0.02, p=0.7),
        A.PlanckianJitter(mode="blackbody", temperature_limit=(3000, 9000), p=0.4),  # white balance
        A.RandomGamma(gamma_limit=(70, 150), p=0.4),
        A.OneOf([A.GaussNoise(std_range=(0.01, 0.05)),
                 A.ISONoise(color_shift=(0.01, 0.04), intensity=(0.1, 0.4))], p=0.4),
        A.ImageCompression(quality_range=(35, 95), p=0.4),
        A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7)),
                 A.Defocus(radius=(1, 3))], p=0.25),
    ]
