"""Does the ENet context prior help? The model with its image-level prior and without it.

The prior adds one learnt logit offset per class at every pixel, from the encoder's global
average (networks/enet.py). "Without" zeroes the prior's last convolution, which is exactly
the network before the prior was added with the trunk it was trained with (the prior starts
at zero when added). Both run through the same engine on validation splits only (choosing
whether to keep the prior is a choice, so it must not see test splits).

    python bench/context_prior.py --data data/composite_val --data data/real/trashnet \\
        --data data/real/smdra --data data/synth_s14 --split val
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.runtime.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from matseg_ros.runtime.engine import load_engine  # noqa: E402

from _report import cpu_name, emit  # noqa: E402
from default_model import accuracy  # noqa: E402

PRIOR_OUTPUT = "decoder.prior.2."  # the prior's last 1×1 conv (weight, bias)


def without_prior(ckpt: dict) -> dict:
    model = dict(ckpt["model"])
    names = [k for k in model if k.startswith(PRIOR_OUTPUT)]
    if not names:
        raise SystemExit(f"the checkpoint has no {PRIOR_OUTPUT}* parameters: not an ENet with context")
    for name in names:
        model[name] = torch.zeros_like(model[name])
    return {**ckpt, "model": model}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default.pt",
                        help="an ENet-with-context checkpoint (.pt)")
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.split == "test":
        raise SystemExit("--split test: keep the test splits for the final figures; choose on val")
    ckpt = load_checkpoint(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        plain = save_checkpoint(Path(tmp) / "no_prior.pt", without_prior(ckpt))
        engines = {"with prior": load_engine(args.model, backend="torch", device="cpu"),
                   "without prior": load_engine(plain, backend="torch", device="cpu")}
        for data in args.data:
            for name, engine in engines.items():
                metrics, count = accuracy(engine, data, args.split)
                rows.append((data.name, name, count, metrics))
                print(data.name, name, f"mIoU {metrics['mIoU']:.3f}", flush=True)
    lines = ["## ENet context prior: with and without (`bench/context_prior.py`)", "",
             f"Model `{args.model.name}`; machine {cpu_name()}, {os.cpu_count()} cores; split `{args.split}`.", "",
             "| set | model | images | mIoU | object accuracy | collapse rate |", "|---|---|---:|---:|---:|---:|"]
    for data, name, count, m in rows:
        obj = f"{m['object_accuracy']:.3f}" if "object_accuracy" in m else "–"
        rate = f"{m['collapse_rate']:.3f} ({m['collapsed_images']}/{m['multi_material_images']})" \
            if m["multi_material_images"] else "–"
        lines.append(f"| {data} | {name} | {count} | {m['mIoU']:.3f} | {obj} | {rate} |")
    lines += ["", f"Reproduce: `python bench/context_prior.py {shlex.join(sys.argv[1:])}`."]
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
