"""`matseg train`: train from an original-format JSON config, on one device or under torchrun.

    matseg train --config config/train/deeplab_resnet101.json [--resume saved/.../last.pt]
    matseg train --config my_robot.json --init-weights saved/.../best.pt   # fine-tune
    torchrun --standalone --nproc_per_node=4 -m matseg_ros.cli train --config CFG.json

Checkpoints go to trainer.save_dir/<name>/<timestamp>/: `last.pt` every epoch (resume),
`epoch_<N>.pt` every save_period epochs, `best.pt` whenever the monitored metric improves.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import builders, distributed, precision as precisions
from ..fileio import atomic_write_text
from ..io.dataset_layout import DatasetError
from ..io.masks import MaskError
from ..materials import MaterialMap, MaterialsError, load_materials
from ..runtime.checkpoint import CheckpointError, load_checkpoint, load_weights, save_checkpoint
from ..runtime.modelmeta import ModelMetadata, ModelMetadataError
from .balance import class_pixel_counts
from .config import (ConfigError, add_override_arguments, apply_overrides, parse_monitor,
                     read_raw_config, resolve_config)
from .loop import evaluate, train_one_epoch
from .schedules import ScheduleError, build_scheduler, load_schedule_state
from .state import make_checkpoint, rng_state, seed_everything, set_rng_state
from .visualize import example_panels

log = logging.getLogger("matseg.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="training config JSON (the original format); optional "
                        "with --resume, which reuses the checkpoint's config")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume", help="checkpoint to continue from (last.pt of a run)")
    start.add_argument("--init-weights", metavar="CKPT",
                       help="fine-tune: start from this checkpoint's weights (same architecture "
                       "and class map) with a fresh optimizer, schedule and epoch count")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: CUDA when available and n_gpu > 0")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: torch's default); 1 is fastest on a busy machine")
    add_override_arguments(parser)


def _device(choice: str, cfg: dict[str, Any], info: distributed.DistInfo) -> torch.device:
    use_cuda = torch.cuda.is_available() and (choice == "cuda" or
                                              (choice == "auto" and cfg["n_gpu"] > 0))
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA device")
    return torch.device(f"cuda:{info.local_rank}") if use_cuda else torch.device("cpu")


def _load_inputs(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The resolved config (file or checkpoint, plus overrides) and the checkpoint to resume."""
    ckpt = load_checkpoint(args.resume) if args.resume else None
    if args.config:
        raw, source = read_raw_config(args.config), args.config
    elif ckpt is not None:
        if "config" not in ckpt:
            raise ConfigError(f"{args.resume}: checkpoint holds no config; pass --config")
        raw, source = ckpt["config"], f"{args.resume} (config)"
    else:
        raise ConfigError("give --config CFG.json (or --resume CKPT to continue a run)")
    return resolve_config(apply_overrides(raw, args), source), ckpt


def _initial_weights(path: str, materials: MaterialMap) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint to fine-tune from, checked against the class map."""
    ckpt = load_checkpoint(path)
    try:
        source = ModelMetadata.from_checkpoint(ckpt, path)
    except ModelMetadataError as exc:
        raise CheckpointError(str(exc)) from None
    if source.classes != materials:
        raise CheckpointError(
            f"--init-weights {path}: its class map ({', '.join(source.classes.names)}) differs "
            f"from the config's materials ({', '.join(materials.names)}); fine-tuning keeps the "
            "class map, so train from scratch for a different one")
    miou = (ckpt.get("metrics") or {}).get("mIoU")
    log.info("initial weights: %s (%s, epoch %s, validation mIoU %s)", path, source.architecture,
             ckpt.get("epoch", "?"), "unknown" if miou is None else f"{miou:.4f}")
    return ckpt["model"]


def _run_dir(cfg: dict[str, Any], args: argparse.Namespace) -> tuple[Path, Path]:
    """Checkpoint and TensorBoard folders; a resumed run continues in its checkpoint's folder."""
    trainer = cfg["trainer"]
    if args.resume and not args.save_dir:
        run = Path(args.resume).resolve().parent
        stamp = run.name
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run = Path(trainer["save_dir"]) / cfg["name"] / stamp
    return run, Path(trainer["log_dir"]) / cfg["name"] / stamp


def _improved(mode: str, value: float, best: float | None) -> bool:
    if value != value:  # NaN never improves
        return False
    return best is None or (value > best if mode == "max" else value < best)


SCALARS = ("loss", "mIoU", "pixel_accuracy", "mean_accuracy", "mDice", "fwIoU", "object_accuracy")


def _validate(model: nn.Module, loaders: list[builders.ValLoader], device: torch.device,
              num_classes: int, criterion: nn.Module, precision: precisions.Precision,
              progress: bool, panels: int,
              exclude: int | None) -> tuple[dict[str, Any], dict[str, list]]:
    """Every validation set scored on its own. One set: its metrics as they are. Several:
    {"datasets": {name: metrics}} plus, at the top, each scalar's mean over the sets that
    have it, so that `max Mean_IoU` weighs a small real set as much as a large synthetic one."""
    per_set, examples = {}, {}
    for v in loaders:
        per_set[v.name], examples[v.name] = evaluate(
            model, v.loader, device, num_classes, criterion, precision=precision, progress=progress,
            keep_examples=panels, exclude_class=exclude, objects=v.objects)
    if len(loaders) == 1 and not loaders[0].name:
        return per_set[""], examples
    means = {}
    for key in SCALARS:
        values = [m[key] for m in per_set.values() if key in m and m[key] == m[key]]
        if values:
            means[key] = sum(values) / len(values)
    return {**means, "datasets": per_set}, examples


def monitored(metrics: dict[str, Any], metric: str) -> float | None:
    """The value `trainer.monitor` watches: 'mIoU' or one set's 'smdra/mIoU'."""
    name, _, key = metric.rpartition("/")
    source = metrics.get("datasets", {}).get(name, {}) if name else metrics
    value = source.get(key)
    return None if value is None else float(value)


def train(cfg: dict[str, Any], args: argparse.Namespace, ckpt: dict[str, Any] | None,
          info: distributed.DistInfo) -> dict[str, Any]:
    """Run the configured training; returns a summary (best metric, run folder, last metrics)."""
    device = _device(args.device, cfg, info)
    if args.threads:
        torch.set_num_threads(args.threads)
    distributed.init(info, device)
    trainer = cfg["trainer"]
    progress_bars = info.is_main and not args.no_progress
    seed = cfg["seed"] if cfg["seed"] is not None else (
        int(ckpt["seed"]) if ckpt and "seed" in ckpt else random.SystemRandom().randrange(2**31))
    seed = distributed.all_gather(seed)[0]  # one seed for every process's sampler: rank 0's
    seed_everything(seed + info.rank)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg["seed"] is None
        torch.backends.cudnn.deterministic = cfg["seed"] is not None
    try:
        materials = load_materials(cfg["materials"])
    except MaterialsError as exc:
        raise ConfigError(f"'materials': {exc}") from None
    init = args.init_weights
    init_state = _initial_weights(init, materials) if init else None  # before any data work
    num_classes = materials.num_classes
    mean, std = builders.normalisation(cfg)
    train_set, val_sets = builders.build_datasets(cfg, materials, seed)
    meta = ModelMetadata(materials, tuple(mean), tuple(std),
                         tuple(builders.input_size(cfg, val_sets[0][1] if val_sets else train_set)),
                         cfg["arch"]["type"], cfg["arch"]["args"]["backbone"] or "")
    counts = None
    if cfg["balance"]["class_weights"] == "median_frequency" or cfg["balance"]["oversample"]:
        counts = class_pixel_counts(train_set, num_classes, progress=progress_bars)
    weights = builders.class_weights(cfg, counts, num_classes)
    if weights is not None and info.is_main:
        log.info("class weights: %s", dict(zip(materials.names, weights)))
    train_loader, val_loaders = builders.build_loaders(cfg, train_set, val_sets, info, seed, counts,
                                                       pin_memory=device.type == "cuda")

    model = builders.build_network(cfg, num_classes)
    label = f"{cfg['arch']['type']}/{cfg['arch']['args']['backbone']}"
    if ckpt is not None:
        load_weights(model, ckpt["model"], args.resume, label)
        init = ckpt.get("init_weights")
    elif init_state is not None:
        new = load_weights(model, init_state, init, label, allow_new=True)
        if new and info.is_main:
            log.info("initial weights: %d parameter tensors %s are not in %s and start at values "
                     "that leave its output unchanged", len(new), sorted({k.rsplit(".", 2)[0] for k in new}), init)
    model.to(device)
    criterion = builders.build_criterion(cfg, weights).to(device)
    precision = _precision(cfg, ckpt, device, model, criterion, num_classes, info.is_main)
    if info.is_main:
        log.info("precision: %s (%s)", precision.label, precision.reason)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if info.enabled:
        if cfg["use_synch_bn"]:
            if device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            elif info.is_main:
                log.warning("use_synch_bn: SyncBatchNorm needs CUDA; on the CPU each process keeps "
                            "its own BatchNorm statistics")
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    elif cfg["use_synch_bn"] and info.is_main:
        log.info("use_synch_bn has no effect in a single process")

    optimizer = builders.build_optimizer(cfg, model)
    try:
        scheduler = build_scheduler(cfg["lr_scheduler"]["type"], optimizer, trainer["epochs"],
                                    len(train_loader), cfg["lr_scheduler"]["args"])
    except ScheduleError as exc:
        raise ConfigError(str(exc)) from None
    scaler = torch.amp.GradScaler(device.type, enabled=precision.dtype == torch.float16)
    # Validation scores in fp32 on a CPU (bf16 would change the figures checkpoints are chosen
    # by), in the model's memory format
    val_precision = precision if device.type == "cuda" else precision._replace(dtype=None)
    mode, metric = parse_monitor(trainer["monitor"])
    if metric is not None and not val_loaders:
        log.warning("trainer.monitor %r needs validation (trainer.val is false): no best.pt",
                    trainer["monitor"])
        mode, metric = "off", None

    start_epoch, best, best_epoch, global_step, last_metrics = 1, None, 0, 0, {}
    elapsed = 0.0  # seconds spent in completed epochs, over every sitting of the run
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        load_schedule_state(scheduler, ckpt["scheduler"])
        if args.lr is not None and info.is_main:
            log.warning("--lr %g is not used: a resumed run continues with the checkpoint's "
                        "learning rates and schedule (start a new run with --init-weights for "
                        "a new lr)", args.lr)
        if ckpt["scaler"]:  # empty when saved without AMP (e.g. a CPU run resumed on a GPU)
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch = int(ckpt["epoch"]) + 1
        best, best_epoch = ckpt.get("best_metric"), int(ckpt.get("best_epoch", 0))
        global_step, last_metrics = int(ckpt.get("global_step", 0)), ckpt.get("metrics") or {}
        elapsed = float(ckpt.get("elapsed_s", 0.0))
        states = ckpt.get("rng_ranks") or [ckpt["rng"]]
        if len(states) == info.world_size:
            set_rng_state(states[info.rank])
        elif info.is_main:
            log.warning("%s holds the RNG states of %d process(es), this run has %d: the random "
                        "streams restart from the seed, so the run is not bit-identical to an "
                        "uninterrupted one", args.resume, len(states), info.world_size)

    run_dir, log_dir = _run_dir(cfg, args)
    writer = None
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.json", json.dumps(cfg, indent=2))
        if trainer["tensorboard"]:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(log_dir))
        log.info("training %s/%s on %s (%d process(es), %s): %d train / %s val images, "
                 "epochs %d..%d; checkpoints in %s", cfg["arch"]["type"],
                 cfg["arch"]["args"]["backbone"], device, info.world_size, precision.label, len(train_set),
                 "+".join(str(len(v)) for _, v in val_sets) or "no", start_epoch, trainer["epochs"], run_dir)

    def on_log(iteration: int, loss: float, lr: float) -> None:
        if writer is not None:
            writer.add_scalar("train/loss_iter", loss, global_step + iteration + 1)
            writer.add_scalar("train/lr", lr, global_step + iteration + 1)

    meta_entries = meta.to_checkpoint_entries()
    try:
        for epoch in range(start_epoch, trainer["epochs"] + 1):
            epoch_start = time.perf_counter()
            train_loader.sampler.set_epoch(epoch)
            train_set.set_epoch(epoch)
            stats = train_one_epoch(model, criterion, optimizer, scheduler, scaler, train_loader,
                                    device, epoch, precision=precision, log_every=trainer["log_per_iter"],
                                    progress=progress_bars, on_log=on_log)
            global_step += len(train_loader)
            if stats["unknown_pixels"] and info.is_main:
                log.warning("epoch %d: %d mask pixels had no class colour within %.0f and were "
                            "ignored; `matseg data validate` lists the files", epoch,
                            stats["unknown_pixels"], cfg["train_loader"]["args"]["mask_tolerance"])
            validate = bool(val_loaders) and (epoch % trainer["val_per_epochs"] == 0
                                              or epoch == trainer["epochs"])
            val_metrics: dict[str, Any] = {}
            examples: dict[str, list] = {}
            if validate:
                val_metrics, examples = _validate(
                    model, val_loaders, device, num_classes, criterion, val_precision, progress_bars,
                    trainer["image_panels"] if writer else 0, builders.ignore_class(cfg))
                last_metrics = val_metrics
            value = monitored(val_metrics, metric) if validate and metric else None
            improved = value is not None and _improved(mode, value, best)
            if improved:
                best, best_epoch = float(value), epoch
            rng = distributed.all_gather(rng_state())  # a collective: every process joins
            elapsed += time.perf_counter() - epoch_start
            if info.is_main:
                _report(epoch, stats, val_metrics, optimizer, writer, materials,
                        examples, mean, std)
                ckpt_out = make_checkpoint(model, cfg, meta_entries, optimizer, scheduler, scaler, rng, {
                    "epoch": epoch, "metrics": last_metrics, "best_metric": best,
                    "best_epoch": best_epoch, "seed": seed, "global_step": global_step,
                    "train_loss": stats["loss"], "init_weights": init,
                    "precision": precisions.describe(precision), "elapsed_s": elapsed})
                if epoch % trainer["save_period"] == 0:
                    save_checkpoint(run_dir / f"epoch_{epoch}.pt", ckpt_out)
                if improved:
                    save_checkpoint(run_dir / "best.pt", ckpt_out)
                    log.info("epoch %d: %s improved to %.4f -> %s", epoch, metric, best,
                             run_dir / "best.pt")
                save_checkpoint(run_dir / "last.pt", ckpt_out)
            early_stop = trainer["early_stop"]
            if metric is not None and early_stop and epoch - best_epoch >= early_stop:
                if info.is_main:
                    log.info("early stop: %s has not improved for %d epochs (best %.4f at epoch %d)",
                             metric, epoch - best_epoch, best, best_epoch)
                break
    finally:
        if writer is not None:
            writer.close()
    return {"run_dir": str(run_dir), "best_metric": best, "best_epoch": best_epoch,
            "metrics": last_metrics, "seed": seed}


def _precision(cfg: dict[str, Any], ckpt: dict[str, Any] | None, device: torch.device,
               model: nn.Module, criterion: nn.Module, num_classes: int,
               is_main: bool) -> precisions.Precision:
    """The run's precision: a resumed run keeps its checkpoint's (so it continues as it
    began); `auto` is decided on rank 0, timed on a random batch of the training crop size,
    and shared with every process."""
    trainer, args = cfg["trainer"], cfg["train_loader"]["args"]
    setting = trainer["cpu_precision"]
    if ckpt is not None and device.type == "cpu" and "precision" in ckpt:
        setting = "bf16" if ckpt["precision"]["precision"].startswith("bf16") else "fp32"
        if setting != trainer["cpu_precision"]:
            log.info("precision: %s kept from the checkpoint (trainer.cpu_precision is %s)",
                     setting, trainer["cpu_precision"])
    batch = None
    if setting == "auto" and device.type == "cpu" and is_main:
        crop, n = args["crop_size"], args["batch_size"]
        gen = torch.Generator().manual_seed(0)
        batch = (torch.randn(n, 3, crop, crop, generator=gen),
                 torch.randint(0, num_classes, (n, crop, crop), generator=gen))
    choice = precisions.choose(setting, device, trainer["amp"], model, criterion, batch) \
        if is_main else None
    return distributed.all_gather(choice)[0]


def _report(epoch: int, stats: dict[str, Any], val: dict[str, Any], optimizer: torch.optim.Optimizer,
            writer: Any, materials: MaterialMap, examples: dict[str, list], mean: list[float],
            std: list[float]) -> None:
    line = (f"epoch {epoch}: train loss {stats['loss']:.4f} ({stats['images_per_s']:.1f} img/s, "
            f"lr {optimizer.param_groups[-1]['lr']:.3e})")
    sets = val.get("datasets", {"": val} if val else {})
    for name, m in sets.items():
        line += (f" | {name + ' ' if name else ''}val loss {m['loss']:.4f} mIoU {m['mIoU']:.4f} "
                 f"pixel acc {m['pixel_accuracy']:.4f}")
        if "object_accuracy" in m:
            line += f" object acc {m['object_accuracy']:.4f}"
    log.info(line)
    if writer is None:
        return
    writer.add_scalar("train/loss", stats["loss"], epoch)
    writer.add_scalar("train/images_per_s", stats["images_per_s"], epoch)
    for i, group in enumerate(optimizer.param_groups):
        writer.add_scalar(f"lr/group{i}", group["lr"], epoch)
    for key in SCALARS if "datasets" in val else ():
        if key in val:
            writer.add_scalar(f"val/mean_{key}", val[key], epoch)
    for name, m in sets.items():
        prefix = f"{name}/" if name else ""
        for key in SCALARS:
            if key in m and m[key] == m[key]:
                writer.add_scalar(f"val/{prefix}{key}", m[key], epoch)
        for material, iou in zip(materials.names, m["per_class_iou"]):
            if iou == iou:
                writer.add_scalar(f"val_iou/{prefix}{material}", iou, epoch)
        for k, panel in enumerate(example_panels(examples.get(name, []), materials, mean, std)):
            writer.add_image(f"val/{prefix}example_{k}", panel, epoch, dataformats="HWC")
    writer.flush()


def run(args: argparse.Namespace) -> int:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    info = distributed.from_environment()
    try:
        cfg, ckpt = _load_inputs(args)
        if cfg["n_gpu"] > 1 and not info.enabled:
            config = args.config or "CFG.json"
            raise ConfigError(
                f"n_gpu is {cfg['n_gpu']}: multi-GPU training runs one process per GPU under "
                f"torchrun (DistributedDataParallel). Launch it as:\n  "
                f"{distributed.launch_command(cfg['n_gpu'], config)}\n"
                "or set n_gpu to 1 (0 for the CPU) to train in this single process")
        summary = train(cfg, args, ckpt, info)
        if info.is_main:
            best = summary["best_metric"]
            print(f"done: run folder {summary['run_dir']}"
                  + (f", best {best:.4f} at epoch {summary['best_epoch']}" if best is not None else ""))
        if info.enabled:
            distributed.exit_after_success()  # does not return, so the finally is skipped
    except (ConfigError, DatasetError, MaskError, CheckpointError) as exc:
        print(f"matseg train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    return 0
