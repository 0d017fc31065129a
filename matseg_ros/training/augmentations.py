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
