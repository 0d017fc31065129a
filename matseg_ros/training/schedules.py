"""Learning-rate schedules stepped once per iteration, with the config's `lr_scheduler.args`.

Poly: lr · (1 − t/T)^power after an optional linear warm-up of `warmup_epochs`.
OneCycle: torch's OneCycleLR with the original's argument names (`phase1` = share of the
run spent rising, `div_factor`: start at lr/div_factor, `momentums` = (low, high)).
The original never read `lr_scheduler.args`; here an unknown argument is an error.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

POLY_ARGS = {"power": 0.9, "warmup_epochs": 0}
ONECYCLE_ARGS = {"phase1": 0.3, "div_factor": 25.0, "final_div_factor": 1e4,
                 "momentums": (0.85, 0.95), "anneal_strategy": "cos"}


class ScheduleError(ValueError):
    pass


def _args(given: dict[str, Any], defaults: dict[str, Any], name: str) -> dict[str, Any]:
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ScheduleError(f"lr_scheduler.args: unknown argument(s) {unknown} for {name}; "
                            f"accepted: {sorted(defaults)}")
    return {**defaults, **given}


def poly_factor(step: int, total: int, power: float, warmup: int) -> float:
    """Multiplier of the base lr at iteration `step` (0-based) of `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    return max(0.0, 1.0 - step / max(1, total)) ** power


def build_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int,
                    iters_per_epoch: int, args: dict[str, Any] | None = None) -> LRScheduler:
    total = epochs * iters_per_epoch
    if name == "Poly":
        a = _args(args or {}, POLY_ARGS, name)
        if not (a["power"] > 0 and a["warmup_epochs"] >= 0):
            raise ScheduleError(f"lr_scheduler.args: Poly needs power > 0 and warmup_epochs >= 0, got {a}")
        warmup = int(round(a["warmup_epochs"] * iters_per_epoch))
        power = float(a["power"])
        return LambdaLR(optimizer, lambda step: poly_factor(step, total, power, warmup))
    if name == "OneCycle":
        a = _args(args or {}, ONECYCLE_ARGS, name)
        low, high = a["momentums"]
        cycle_momentum = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
        return OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                          total_steps=max(1, total), pct_start=float(a["phase1"]),
                          div_factor=float(a["div_factor"]),
                          final_div_factor=float(a["final_div_factor"]),
                          anneal_strategy=a["anneal_strategy"], cycle_momentum=cycle_momentum,
                          base_momentum=float(low), max_momentum=float(high))
    raise ScheduleError(f"unknown lr_scheduler.type {name!r}; expected Poly or OneCycle")


def load_schedule_state(scheduler: LRScheduler, state: dict[str, Any]) -> None:
    """Restore a resumed run's position in its schedule; the schedule's length stays this
    run's. Poly reads its length from the rebuilt lambda; OneCycle's state would carry the old
    `total_steps`, so `--resume --epochs N` (longer) would fail on its first step past it."""
    length = {k: v for k, v in vars(scheduler).items() if k in ("total_steps", "_schedule_phases")}
    scheduler.load_state_dict(state)
    vars(scheduler).update(length)
