"""The original project's JSON training config, read verbatim and checked key by key.

Every key the original documents is read (see docs/training.md for what each does);
a few optional keys of ours are added (`seed`, `materials`, `balance`, `loss_args`,
`inference`, `trainer.amp`, ...). Defaults are filled in, so the resolved dict saved in
checkpoints is itself a complete config. Unknown keys are warned about by name (a typo
must not pass silently); a value of the wrong type is an error naming the key path.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OPEN = "*"  # a schema dict holding OPEN accepts extra keys (passed through, e.g. to build_model)
STR, INT, FLOAT, BOOL, DICT, LIST = str, int, float, bool, dict, list
NONE = type(None)

# key -> (accepted types, default) or a nested schema dict
LOADER_ARGS: dict[str, Any] = {
    "data_dir": ((STR,), "HRIM2021"),
    "batch_size": ((INT,), 8),
    "base_size": ((INT, NONE), None),
    "crop_size": ((INT, NONE), None),
    "augment": ((BOOL,), False),
    "shuffle": ((BOOL,), False),
    "scale": ((BOOL,), True),
    "flip": ((BOOL,), False),
    "rotate": ((BOOL,), False),
    "blur": ((BOOL,), False),
    "split": ((STR,), "train"),
    "num_workers": ((INT,), 0),
    "val": ((BOOL,), False),
    # ours
    "use_aug_folders": ((BOOL,), False),
    "mask_tolerance": ((FLOAT,), 40.0),
    "mean": ((LIST, NONE), None),
    "std": ((LIST, NONE), None),
    "datasets": ((LIST, NONE), None),         # several datasets: [{data_dir, split, weight, name}]
    "samples_per_epoch": ((INT, NONE), None),  # with datasets: images drawn per epoch
    "photometric": ((BOOL,), False),          # camera augmentations (colour, white balance, noise, JPEG)
    "cache_dir": ((STR, NONE), None),         # decoded (and resized) samples kept here: decode_cache.py
}

SCHEMA: dict[str, Any] = {
    "name": ((STR,), "matseg"),
    "n_gpu": ((INT,), 1),
    "use_synch_bn": ((BOOL,), False),
    "arch": {
        "type": ((STR,), "DeepLab"),
        "args": {
            "backbone": ((STR, NONE), None),
            "freeze_bn": ((BOOL,), False),
            "freeze_backbone": ((BOOL,), False),
            "pretrained": ((STR, NONE), None),
            OPEN: True,
        },
    },
    "train_loader": {"type": ((STR,), "HRIM"), "args": dict(LOADER_ARGS)},
    "val_loader": {"type": ((STR,), "HRIM"),
                   "args": {**LOADER_ARGS, "split": ((STR,), "val"), "val": ((BOOL,), True)}},
    "optimizer": {
        "type": ((STR,), "SGD"),
        "differential_lr": ((BOOL,), False),
        "args": {OPEN: True},
    },
    "loss": ((STR,), "CrossEntropyLoss2d"),
    "ignore_index": ((INT,), 255),
    "lr_scheduler": {"type": ((STR,), "Poly"), "args": {OPEN: True}},
    "trainer": {
        "epochs": ((INT,), 100),
        "save_dir": ((STR,), "saved/"),
        "save_period": ((INT,), 10),
        "monitor": ((STR,), "max Mean_IoU"),
        "early_stop": ((INT, NONE), None),
        "tensorboard": ((BOOL,), True),
        "log_dir": ((STR,), "saved/runs"),
        "log_per_iter": ((INT,), 20),
        "val": ((BOOL,), True),
        "val_per_epochs": ((INT,), 1),
        # ours
        "amp": ((BOOL,), True),  # fp16 autocast on CUDA
        "cpu_precision": ((STR,), "auto"),  # auto | fp32 | bf16 (+ channels_last): training/precision.py
        "image_panels": ((INT,), 4),
    },
    # ours
    "seed": ((INT, NONE), None),
    "materials": ((STR, NONE), None),
    "loss_args": {OPEN: True},
    "balance": {
        "class_weights": ((STR, LIST, NONE), None),
        "oversample": ((BOOL,), False),
        "oversample_threshold": ((FLOAT,), 0.3),
    },
    "inference": {
        "mode": ((STR,), "multiscale"),
        "scales": ((LIST,), [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]),
        "flip": ((BOOL,), True),
        "tile_size": ((INT, NONE), None),
        "overlap": ((FLOAT,), 1 / 3),
    },
}

CPU_PRECISIONS = ("auto", "fp32", "bf16")  # trainer.cpu_precision

TYPE_NAMES = {STR: "a string", INT: "an integer", FLOAT: "a number", BOOL: "true/false",
              DICT: "an object", LIST: "a list", NONE: "null"}

# The original's metric names (yassouali lineage) -> ours (ConfusionMatrix.compute keys)
METRIC_ALIASES = {"Mean_IoU": "mIoU", "Pixel_Accuracy": "pixel_accuracy",
                  "Mean_Accuracy": "mean_accuracy", "Mean_Dice": "mDice",
                  "Frequency_Weighted_IoU": "fwIoU", "val_loss": "loss"}
MONITORABLE = ("mIoU", "pixel_accuracy", "mean_accuracy", "mDice", "fwIoU", "loss", "object_accuracy")
SCHEDULERS = ("Poly", "OneCycle")
DATASETS = ("HRIM",)


class ConfigError(ValueError):
    """A config that cannot be trained from; the message names the file and key path."""


def _matches(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return BOOL in types
    if FLOAT in types and isinstance(value, int):
        return True
    return isinstance(value, types)


def _resolve(raw: Any, schema: dict[str, Any], path: str, source: str,
             unknown: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: '{path or '<top level>'}' must be an object, "
                          f"got {type(raw).__name__}")
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        if key == OPEN:
            continue
        where = f"{path}.{key}" if path else key
        if isinstance(spec, dict):
            out[key] = _resolve(raw.get(key, {}), spec, where, source, unknown)
            continue
        types, default = spec
        if key not in raw:
            out[key] = copy.deepcopy(default)
            continue
        value = raw[key]
        if not _matches(value, types):
            expected = " or ".join(TYPE_NAMES[t] for t in types)
            raise ConfigError(f"{source}: '{where}' must be {expected}, got {value!r} "
                              f"({type(value).__name__})")
        out[key] = float(value) if types[0] is FLOAT and isinstance(value, int) else value
    for key in raw:
        if key not in schema:
            if schema.get(OPEN):
                out[key] = raw[key]
            else:
                unknown.append(f"{path}.{key}" if path else key)
    return out


def parse_monitor(monitor: str, source: str = "<config>") -> tuple[str, str | None]:
    """'max Mean_IoU' -> ('max', 'mIoU'); 'max trashnet/object_accuracy' -> ('max',
    'trashnet/object_accuracy') (one validation dataset's metric); 'off' -> ('off', None).
    With several validation datasets a bare metric is their mean."""
    parts = monitor.split()
    if parts == ["off"]:
        return "off", None
    if len(parts) != 2 or parts[0] not in ("min", "max"):
        raise ConfigError(f"{source}: 'trainer.monitor' must be 'off' or 'max|min METRIC' (METRIC "
                          f"may name a validation dataset: DATASET/METRIC), got {monitor!r}")
    dataset, _, name = parts[1].rpartition("/")
    metric = METRIC_ALIASES.get(name, name)
    if metric not in MONITORABLE:
        raise ConfigError(f"{source}: 'trainer.monitor' metric {name!r} is unknown; expected "
                          f"one of {sorted(set(METRIC_ALIASES) | set(MONITORABLE))}")
    return parts[0], f"{dataset}/{metric}" if dataset else metric


def _check_values(cfg: dict[str, Any], source: str) -> None:
    def positive(path: str, value: Any, allow_none: bool = False) -> None:
        if value is None and allow_none:
            return
        if value is None or value <= 0:
            raise ConfigError(f"{source}: '{path}' must be a positive integer, got {value!r}")

    for loader in ("train_loader", "val_loader"):
        if cfg[loader]["type"] not in DATASETS:
            raise ConfigError(f"{source}: '{loader}.type' {cfg[loader]['type']!r} is unknown; "
                              f"expected one of {list(DATASETS)}")
        args = cfg[loader]["args"]
        positive(f"{loader}.args.batch_size", args["batch_size"])
        positive(f"{loader}.args.crop_size", args["crop_size"], allow_none=True)
        positive(f"{loader}.args.base_size", args["base_size"], allow_none=True)
        if args["num_workers"] < 0:
            raise ConfigError(f"{source}: '{loader}.args.num_workers' must be >= 0")
        for key in ("mean", "std"):
            value = args[key]
            if value is not None and (len(value) != 3 or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                raise ConfigError(f"{source}: '{loader}.args.{key}' must be a list of 3 numbers "
                                  f"in 0..1, got {value!r}")
    _check_datasets(cfg, source)
    if cfg["train_loader"]["args"]["crop_size"] is None:
        raise ConfigError(f"{source}: 'train_loader.args.crop_size' is required: training batches "
                          "are crops of this size")
    trainer = cfg["trainer"]
    for key in ("epochs", "save_period", "log_per_iter", "val_per_epochs"):
        positive(f"trainer.{key}", trainer[key])
    if trainer["early_stop"] is not None and trainer["early_stop"] < 0:
        raise ConfigError(f"{source}: 'trainer.early_stop' must be >= 0 epochs (0 = off)")
    parse_monitor(trainer["monitor"], source)
    if trainer["cpu_precision"] not in CPU_PRECISIONS:
        raise ConfigError(f"{source}: 'trainer.cpu_precision' must be one of "
                          f"{', '.join(CPU_PRECISIONS)}, got {trainer['cpu_precision']!r}")
    if cfg["lr_scheduler"]["type"] not in SCHEDULERS:
        raise ConfigError(f"{source}: 'lr_scheduler.type' {cfg['lr_scheduler']['type']!r} is "
                          f"unknown; expected one of {list(SCHEDULERS)}")
    ignore = cfg["ignore_index"]
    if not (ignore in (-1, 255) or 0 <= ignore <= 254):
        raise ConfigError(f"{source}: 'ignore_index' must be -1 (no class ignored), 255 or a class "
                          f"id 0..254, got {ignore}")
    weights = cfg["balance"]["class_weights"]
    if isinstance(weights, str) and weights != "median_frequency":
        raise ConfigError(f"{source}: 'balance.class_weights' must be null, 'median_frequency' or "
                          f"a list of numbers, got {weights!r}")
    if isinstance(weights, list) and not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights):
        raise ConfigError(f"{source}: 'balance.class_weights' list must hold numbers >= 0")
    if cfg["inference"]["mode"] not in ("single", "multiscale", "sliding"):
        raise ConfigError(f"{source}: 'inference.mode' must be single, multiscale or sliding")
    if not cfg["optimizer"]["args"].get("lr"):
        raise ConfigError(f"{source}: 'optimizer.args.lr' is required (a positive number)")


def _check_datasets(cfg: dict[str, Any], source: str) -> None:
    """Fill in and check `datasets` lists: name (default: the folder's name), split (default:
    the loader's), weight (default 1); names unique; the monitored dataset must exist."""
    for loader in ("train_loader", "val_loader"):
        args = cfg[loader]["args"]
        if args["datasets"] is None:
            if args["samples_per_epoch"] is not None:
                raise ConfigError(f"{source}: '{loader}.args.samples_per_epoch' needs 'datasets'")
            continue
        if not args["datasets"]:
            raise ConfigError(f"{source}: '{loader}.args.datasets' is empty; list at least one dataset")
        names = set()
        for k, entry in enumerate(args["datasets"]):
            where = f"{loader}.args.datasets[{k}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("data_dir"), str):
                raise ConfigError(f"{source}: '{where}' must be an object with a 'data_dir' string")
            unknown = set(entry) - {"data_dir", "split", "weight", "name"}
            if unknown:
                raise ConfigError(f"{source}: '{where}' has unknown key(s) {sorted(unknown)}; expected "
                                  "data_dir, split, weight, name")
            entry.setdefault("name", Path(entry["data_dir"]).name)
            entry.setdefault("split", args["split"])
            entry.setdefault("weight", 1.0)
            weight = entry["weight"]
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
                raise ConfigError(f"{source}: '{where}.weight' must be a positive number, got {weight!r}")
            if entry["name"] in names or "/" in entry["name"]:
                raise ConfigError(f"{source}: '{where}.name' {entry['name']!r} is used twice or has a '/'")
            names.add(entry["name"])
        if args["samples_per_epoch"] is not None and args["samples_per_epoch"] <= 0:
            raise ConfigError(f"{source}: '{loader}.args.samples_per_epoch' must be a positive integer")
    _, metric = parse_monitor(cfg["trainer"]["monitor"], source)
    if metric and "/" in metric:
        val_sets = cfg["val_loader"]["args"]["datasets"] or []
        names = [d["name"] for d in val_sets]
        if metric.split("/")[0] not in names:
            raise ConfigError(f"{source}: 'trainer.monitor' names dataset {metric.split('/')[0]!r}; "
                              f"the validation datasets are {names or 'none (no val_loader.args.datasets)'}")


def resolve_config(raw: dict[str, Any], source: str = "<config>") -> dict[str, Any]:
    """Check a raw config dict, warn about unknown keys, return it with every default filled."""
    unknown: list[str] = []
    cfg = _resolve(raw, SCHEMA, "", source, unknown)
    for key in unknown:
        log.warning("%s: unknown config key '%s' is ignored", source, key)
    _check_values(cfg, source)
    return cfg


def load_config(path: str | Path) -> dict[str, Any]:
    return resolve_config(read_raw_config(path), str(path))


CLASS_WEIGHT_CHOICES = ("none", "median_frequency")


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line overrides for the keys one changes most often."""
    group = parser.add_argument_group("config overrides")
    group.add_argument("--data-dir", help="train_loader/val_loader args.data_dir")
    group.add_argument("--epochs", type=int, help="trainer.epochs")
    group.add_argument("--batch-size", type=int, help="train_loader.args.batch_size")
    group.add_argument("--crop-size", type=int, help="train_loader (and val_loader) args.crop_size")
    group.add_argument("--base-size", type=int, help="train_loader.args.base_size")
    group.add_argument("--lr", type=float, help="optimizer.args.lr")
    group.add_argument("--num-workers", type=int, help="train/val_loader args.num_workers")
    group.add_argument("--save-dir", help="trainer.save_dir (checkpoints) and trainer.log_dir "
                       "(TensorBoard, as <save-dir>/runs)")
    group.add_argument("--seed", type=int, help="seed for reproducible runs")
    group.add_argument("--class-weights", choices=CLASS_WEIGHT_CHOICES,
                       help="balance.class_weights ('none': plain cross-entropy, e.g. for a last "
                            "fine-tune that undoes the weights' bias towards rare classes)")


def apply_overrides(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """A copy of the raw config with the command-line overrides written in."""
    cfg = copy.deepcopy(raw)

    def put(path: str, value: Any) -> None:
        node = cfg
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    for option, paths in (
            ("data_dir", ["train_loader.args.data_dir", "val_loader.args.data_dir"]),
            ("epochs", ["trainer.epochs"]),
            ("batch_size", ["train_loader.args.batch_size"]),
            ("crop_size", ["train_loader.args.crop_size", "val_loader.args.crop_size"]),
            ("base_size", ["train_loader.args.base_size"]),
            ("lr", ["optimizer.args.lr"]),
            ("num_workers", ["train_loader.args.num_workers", "val_loader.args.num_workers"]),
            ("seed", ["seed"])):
        value = getattr(args, option, None)
        if value is not None:
            for path in paths:
                put(path, value)
    if getattr(args, "class_weights", None):
        put("balance.class_weights", None if args.class_weights == "none" else args.class_weights)
    if getattr(args, "save_dir", None):
        put("trainer.save_dir", str(args.save_dir))
        put("trainer.log_dir", str(Path(args.save_dir) / "runs"))
    return cfg


def read_raw_config(path: str | Path) -> dict[str, Any]:
    """The JSON object in a config file, unchecked (errors name the file)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a JSON object, got {type(raw).__name__}")
    return raw
