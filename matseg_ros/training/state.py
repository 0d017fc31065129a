"""Everything a run needs to continue as if uninterrupted, as weights_only-loadable types."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

from ..runtime.checkpoint import FORMAT


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DDP, so saved keys carry no `module.` prefix."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states as tensors, lists and numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch. Under DDP pass `seed + rank`: each process then draws its
    own dropout masks (the sampler and augmentation take the shared seed separately)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_checkpoint(model: nn.Module, cfg: dict[str, Any], meta_entries: dict[str, Any],
                    optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                    rng: list[dict[str, Any]], progress: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint dict of the contract (see matseg_ros.runtime.checkpoint), plus run progress.

    `meta_entries`: ModelMetadata.to_checkpoint_entries() (classes, mean, std, input_size,
    arch, backbone). `rng`: every process's rng_state(), in rank order (`rng` keeps rank 0's,
    `rng_ranks` all of them; `rng` is the same object as `rng_ranks[0]`, which pickle stores
    once). `progress`: epoch, metrics, best_metric, best_epoch, seed,
    global_step.
    """
    arch_args = {k: v for k, v in cfg["arch"]["args"].items() if k != "backbone"}
    return {
        "format": FORMAT,
        "model": {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()},
        **meta_entries,
        "arch_args": arch_args,
        "config": cfg,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng[0],
        "rng_ranks": rng,
        **progress,
    }
