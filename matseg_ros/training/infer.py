"""`matseg infer`: segment a folder of images with a checkpoint or ONNX model.

The seed's inference.py without its flaws: the model file alone gives the class map,
normalisation and tile size (no DataLoader rebuilt to learn them); the output folder is
created; palette PNGs are written atomically, optionally id PNGs and overlays.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..fileio import atomic_path
from ..io.dataset_layout import IMAGE_EXTENSIONS, DatasetError, read_rgb
from ..io.masks import write_mask
from ..runtime.rendering import colorize, overlay
from .config import ConfigError, read_raw_config, resolve_config
from .predict import DEFAULT_SCALES, MODES, PredictError, image_tensor, load_model, predict_logits


def add_mode_arguments(parser: argparse.ArgumentParser) -> None:
    """--mode/--scales/--no-flip/--tile-size/--overlap, shared with `matseg eval`."""
    parser.add_argument("--mode", choices=MODES, help="default: the config's inference.mode, "
                        "else multiscale for infer and single for eval; node: resized to the "
                        "model's input size, as segment_node runs it")
    parser.add_argument("--scales", type=float, nargs="+", help="multiscale scales "
                        "(default 0.5 0.75 1.0 1.25 1.5 1.75)")
    parser.add_argument("--no-flip", action="store_true", help="multiscale without flipped copies")
    parser.add_argument("--tile-size", type=int, nargs="+", metavar="PX",
                        help="sliding tile (one value: square; two: H W); default: model input size")
    parser.add_argument("--overlap", type=float, help="sliding tile overlap fraction (default 1/3)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0: default)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help=".pt/.pth checkpoint or .onnx model")
    parser.add_argument("--images", required=True, help="folder of images (jpg/png)")
    parser.add_argument("--output", required=True, help="folder for the masks (created)")
    parser.add_argument("--config", help="training config JSON; only its optional 'inference' "
                        "section is used (mode, scales, flip, tile_size, overlap)")
    add_mode_arguments(parser)
    parser.add_argument("--save-ids", action="store_true", help="also write <name>_ids.png (class ids)")
    parser.add_argument("--overlay", action="store_true", help="also write <name>_overlay.jpg")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity of the mask")


def mode_settings(args: argparse.Namespace, input_size: tuple[int, int],
                  default_mode: str) -> dict:
    """predict_logits keyword arguments: the command line over the config's 'inference'."""
    if getattr(args, "config", None):
        section = resolve_config(read_raw_config(args.config), args.config)["inference"]
    else:
        section = {"mode": default_mode, "scales": list(DEFAULT_SCALES), "flip": True,
                   "tile_size": None, "overlap": 1 / 3}
    tile = args.tile_size or ([section["tile_size"]] if section["tile_size"] else None)
    return {"mode": args.mode or section["mode"],
            "scales": args.scales or section["scales"],
            "flip": section["flip"] and not args.no_flip,
            "tile": (tile[0], tile[-1]) if tile else tuple(input_size),
            "overlap": section["overlap"] if args.overlap is None else args.overlap,
            "input_size": tuple(input_size)}


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"{folder}: image folder not found")
    images = sorted(p for p in folder.iterdir() if p.suffix in IMAGE_EXTENSIONS and p.is_file())
    if not images:
        raise DatasetError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS[:3])}...) found")
    return images


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        images = list_images(Path(args.images))
        forward, meta, device, _ = load_model(args.model, args.device)
        settings = mode_settings(args, meta.input_size, "multiscale")
    except (PredictError, DatasetError, ConfigError) as exc:
        print(f"matseg infer: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    lut = meta.classes.palette_lut()
    failed = 0
    for path in tqdm(images, desc=f"infer ({settings['mode']})", dynamic_ncols=True):
        try:
            rgb = read_rgb(path)
        except DatasetError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            failed += 1
            continue
        logits = predict_logits(forward, image_tensor(rgb, meta).to(device), **settings)
        ids = logits.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()
        write_mask(out / f"{path.stem}.png", ids, meta.classes)
        if args.save_ids:
            write_mask(out / f"{path.stem}_ids.png", ids, meta.classes, palette=False)
        if args.overlay:
            blend = overlay(rgb, colorize(ids, lut), args.alpha, ids)
            with atomic_path(out / f"{path.stem}_overlay.jpg") as tmp:
                cv2.imwrite(str(tmp), np.ascontiguousarray(blend[..., ::-1]))
    print(f"{len(images) - failed} masks written to {out}" + (f", {failed} unreadable" if failed else ""))
    return 1 if failed else 0
