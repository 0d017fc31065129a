"""Forward + backward cost of every training loss, as a ratio to cross-entropy.

    python bench/losses.py [--batch 8] [--crop 256] [--repeats 5] [--threads 0]
                           [--output docs/benchmarks/losses.md]

Logits of the shape the default config trains on (batch × 9 classes × crop × crop, random
values, random targets with some ignored pixels) go through each loss in
`matseg_ros.training.losses.LOSSES` and `backward()`; the median over --repeats after one
warm-up call is reported. The network's own step is not included: compare with
`bench/training.py`'s images/s to see what a loss adds to an epoch.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.materials import IGNORE_INDEX  # noqa: E402
from matseg_ros.training.losses import LOSSES, build_loss  # noqa: E402

from _report import add_devices_argument, chosen_devices, emit, machine_lines  # noqa: E402

NUM_CLASSES = 9


def loss_ms(name: str, logits: torch.Tensor, target: torch.Tensor, repeats: int) -> float:
    criterion = build_loss(name)
    times = []
    for i in range(repeats + 1):
        x = logits.detach().requires_grad_()
        start = time.perf_counter()
        criterion(x, target).backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        if i:  # the first call is a warm-up
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--output", help="markdown file for the table (e.g. docs/benchmarks/losses.md)")
    add_devices_argument(parser)
    args, _ = parser.parse_known_args()  # tolerate bench/run_all.py's shared arguments
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = chosen_devices(args.devices)
    generator = torch.Generator().manual_seed(0)
    shape = (args.batch, args.crop, args.crop)
    logits = torch.randn(args.batch, NUM_CLASSES, args.crop, args.crop, generator=generator)
    target = torch.randint(0, NUM_CLASSES, shape, generator=generator)
    target[torch.rand(shape, generator=generator) < 0.05] = IGNORE_INDEX
    lines = [
        "## Training losses: forward + backward cost",
        "",
        *machine_lines(),
        "",
        f"Logits {args.batch}×{NUM_CLASSES}×{args.crop}×{args.crop} (float32), median of "
        f"{args.repeats} after a warm-up.",
        "",
        "| loss | device | ms | ratio to CrossEntropyLoss2d |",
        "|---|---|---:|---:|",
    ]
    for device in devices:
        x, t = logits.to(device), target.to(device)
        times = {name: loss_ms(name, x, t, args.repeats) for name in LOSSES}
        base = times["CrossEntropyLoss2d"]
        for name, ms in times.items():
            lines.append(f"| {name} | {device.type} | {ms:.1f} | {ms / base:.1f}× |")
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
