"""Training throughput and offline-inference latency of the training module.

    python bench/training.py [--arch ENet PPLiteSeg:mobilenetv2] [--crop 320] [--batch 8]
                             [--iters 6] [--threads 0] [--precisions fp32 bf16]
                             [--output docs/benchmarks/training.md]

Training: images/s of the real trainer loop (`train_one_epoch`: HRIM dataset of 480×640
JPEGs, albumentations crop/scale/flip, DataLoader, forward, backward, SGD step, Poly
schedule) on the CPU in fp32 and in bf16 autocast + channels_last (`trainer.cpu_precision`),
and on the GPU with fp16 AMP when CUDA is available; the report names the CPU and whether
it has AMX. Inference: ms per 480×640 image for `single`, `multiscale` (6 scales + flips)
and `sliding` (tiles of --crop, 1/3 overlap) prediction (`matseg infer`/`eval` modes), fp32.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.io.dataset_layout import IMAGE_DIR, write_split  # noqa: E402
from matseg_ros.io.masks import write_mask  # noqa: E402
from matseg_ros.materials import load_materials  # noqa: E402
from matseg_ros.training import builders  # noqa: E402
from matseg_ros.training.config import read_raw_config, resolve_config  # noqa: E402
from matseg_ros.training.distributed import DistInfo  # noqa: E402
from matseg_ros.training import precision as precisions  # noqa: E402
from matseg_ros.training.loop import train_one_epoch  # noqa: E402
from matseg_ros.training.predict import predict_logits  # noqa: E402
from matseg_ros.training.schedules import build_scheduler  # noqa: E402

from _report import add_devices_argument, chosen_devices, emit, machine_lines, median_ms  # noqa: E402

IMAGE_SIZE = (480, 640)


def make_data(root: Path, count: int, materials) -> None:
    rng = np.random.default_rng(0)
    (root / IMAGE_DIR).mkdir(parents=True)
    for i in range(count):
        rgb = rng.integers(0, 255, (*IMAGE_SIZE, 3), dtype=np.uint8)
        ids = np.repeat(np.arange(9, dtype=np.uint8), IMAGE_SIZE[1] // 9 + 1)[None, :IMAGE_SIZE[1]]
        cv2.imwrite(str(root / IMAGE_DIR / f"{i:04d}.jpg"), rgb)
        write_mask(root / "SegmentationClass" / f"{i:04d}.png",
                   np.ascontiguousarray(np.repeat(ids, IMAGE_SIZE[0], 0)), materials)
    write_split(root, "train", [f"{i:04d}" for i in range(count)])


def config(arch: str, data: Path, crop: int, batch: int, workers: int) -> dict:
    name, _, backbone = arch.partition(":")
    raw = read_raw_config(ROOT / "config" / "train" / "deeplab_resnet101.json")
    raw["arch"] = {"type": name, "args": {"backbone": backbone or None}}
    raw["train_loader"]["args"].update(data_dir=str(data), batch_size=batch, crop_size=crop,
                                       base_size=IMAGE_SIZE[1], flip=True, num_workers=workers)
    raw["trainer"]["val"] = False
    return resolve_config(raw, "bench")


def train_rate(cfg: dict, device: torch.device, iters: int, setting: str) -> tuple[float, str]:
    """images/s of one epoch after a warm-up epoch, and the precision's label."""
    materials = load_materials()
    train_set, _ = builders.build_datasets(cfg, materials, seed=0)
    loader, _ = builders.build_loaders(cfg, train_set, [], DistInfo(), 0, None,
                                       pin_memory=device.type == "cuda")
    torch.manual_seed(0)
    model = builders.build_network(cfg, materials.num_classes).to(device)
    precision = precisions.choose(setting, device, cuda_amp=True)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = builders.build_optimizer(cfg, model)
    scheduler = build_scheduler("Poly", optimizer, 2, len(loader))
    scaler = torch.amp.GradScaler(device.type, enabled=precision.dtype == torch.float16)
    criterion = builders.build_criterion(cfg, None).to(device)
    args = (model, criterion, optimizer, scheduler, scaler, loader, device)
    train_one_epoch(*args, epoch=0, precision=precision, progress=False)  # warm-up epoch
    stats = train_one_epoch(*args, epoch=1, precision=precision, progress=False)
    return stats["images_per_s"], precision.label


def infer_ms(cfg: dict, device: torch.device, crop: int, repeats: int) -> dict[str, float]:
    model = builders.build_network(cfg, 9).to(device).eval()

    @torch.inference_mode()
    def forward(x):
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            return model(x).float()

    x = torch.randn(1, 3, *IMAGE_SIZE, device=device)
    out = {}
    for mode in ("single", "multiscale", "sliding"):
        out[mode] = median_ms(
            lambda: predict_logits(forward, x, mode=mode, tile=(crop, crop)).argmax(1).cpu(),
            repeats, warmups=1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["ENet", "PPLiteSeg:mobilenetv2",
                                                      "PPLiteSeg:resnet18"],
                        help="ARCH or ARCH:BACKBONE")
    parser.add_argument("--crop", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"],
                        help="CPU training precisions to compare (trainer.cpu_precision)")
    parser.add_argument("--no-inference", action="store_true", help="training rows only")
    parser.add_argument("--iters", type=int, default=6, help="training iterations per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="inference repeats (median)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--output", help="markdown file for the table (e.g. docs/benchmarks/training.md)")
    add_devices_argument(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = chosen_devices(args.devices)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_data(data, args.batch * args.iters, load_materials())
        for arch in args.arch:
            cfg = config(arch, data, args.crop, args.batch, args.workers)
            for device in devices:
                ms = {} if args.no_inference else infer_ms(cfg, device, args.crop, args.repeats)
                fp32_rate = None
                for setting in (args.precisions if device.type == "cpu" else ["fp32"]):
                    rate, label = train_rate(cfg, device, args.iters, setting)
                    fp32_rate = rate if setting == "fp32" else fp32_rate
                    row = {"arch": arch, "device": device.type, "precision": label,
                           "train_img_s": rate, "vs_fp32": rate / fp32_rate if fp32_rate else None,
                           **{f"{k}_ms": v for k, v in ms.items()}}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    supported, features = precisions.cpu_bf16_support()
    lines = [
        "## Training module: training throughput and inference modes",
        "",
        *machine_lines(),
        f"CPU bf16 support: {features}.",
        "",
        f"Training: crops {args.crop}×{args.crop}, batch {args.batch}, {args.iters} iterations after a "
        f"warm-up epoch, full loader (480×640 JPEG decode + augmentation, {args.workers} workers). "
        "Inference: one 480×640 image; multiscale = 6 scales × (image + flip); "
        f"sliding = {args.crop}×{args.crop} tiles, 1/3 overlap.",
        "",
        "| model | device | precision | train images/s | vs fp32 | single ms | multiscale ms | sliding ms |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['vs_fp32']:.2f}×" if r["vs_fp32"] else "–"
        infer = (f"{r['single_ms']:.0f} | {r['multiscale_ms']:.0f} | {r['sliding_ms']:.0f}"
                 if "single_ms" in r else "– | – | –")
        lines.append(f"| {r['arch']} | {r['device']} | {r['precision']} | {r['train_img_s']:.1f} | "
                     f"{ratio} | {infer} |")
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
