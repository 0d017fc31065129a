"""From a resolved config to the objects a run needs: loaders, model, optimizer, loss."""
from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset

from . import balance
from ..io.dataset_layout import read_objects
from ..materials import IGNORE_INDEX, MaterialMap
from ..runtime.modelmeta import IMAGENET_MEAN, IMAGENET_STD
from .config import ConfigError
from .dataset import HRIM, pad_collate
from .distributed import DistInfo
from .losses import build_loss
from .mixture import MixedDataset, mixture_weights
from .state import unwrap
from .transforms import train_transform, val_transform

log = logging.getLogger(__name__)


class ValLoader(NamedTuple):
    """A validation set's loader, its name ('' alone) and the boxed objects of each of its
    samples in loader order (None: the set has no objects.json)."""
    name: str
    loader: DataLoader
    objects: list[list[dict]] | None


def normalisation(cfg: dict[str, Any]) -> tuple[list[float], list[float]]:
    args = cfg["train_loader"]["args"]
    return list(args["mean"] or IMAGENET_MEAN), list(args["std"] or IMAGENET_STD)


def ignore_class(cfg: dict[str, Any]) -> int | None:
    """The class whose pixels the config ignores: -1 (the original's value) and 255 name none."""
    value = cfg["ignore_index"]
    return None if value in (-1, IGNORE_INDEX) else value


def input_size(cfg: dict[str, Any], dataset: HRIM, sample: int = 256) -> list[int]:
    """Size recorded for deployment, [height, width]: the longest side is the validation
    crop_size if given, else the training one; the aspect ratio is that of the dataset's
    most common image size (validation scores whole images, so a square would squash every
    camera frame into a shape the model was never scored on). Sides are multiples of 32."""
    from collections import Counter

    from PIL import Image

    longest = int(cfg["val_loader"]["args"]["crop_size"] or cfg["train_loader"]["args"]["crop_size"])
    sizes: Counter[tuple[int, int]] = Counter()
    for _, image, _ in dataset.samples[:sample]:
        with Image.open(image) as img:  # reads the header only
            sizes[(img.height, img.width)] += 1
    if not sizes:
        return [longest, longest]
    height, width = sizes.most_common(1)[0][0]
    scale = longest / max(height, width)
    return [max(32, int(round(height * scale / 32)) * 32), max(32, int(round(width * scale / 32)) * 32)]


def build_datasets(cfg: dict[str, Any], materials: MaterialMap, seed: int
                   ) -> tuple[HRIM | MixedDataset, list[tuple[str, HRIM]]]:
    """The training set (one dataset, or a mixture of `train_loader.args.datasets`) and the
    named validation sets (one unnamed set, or `val_loader.args.datasets`; none without val)."""
    mean, std = normalisation(cfg)
    ignored = ignore_class(cfg)
    if ignored is not None and ignored not in materials.ids:
        raise ConfigError(f"'ignore_index' {ignored} is not a class id of the class map {materials.ids}")
    t = cfg["train_loader"]["args"]
    transform = train_transform(t["crop_size"], t["base_size"], mean, std, augment=t["augment"],
                                scale=t["scale"], rotate=t["rotate"], flip=t["flip"],
                                blur=t["blur"], photometric=t["photometric"], seed=seed)

    def dataset(args: dict[str, Any], data_dir: str, split: str, pair_transform) -> HRIM:
        return HRIM(data_dir, split, materials, pair_transform, use_aug_folders=args["use_aug_folders"],
                    mask_tolerance=args["mask_tolerance"], ignore_class=ignored,
                    cache_dir=args["cache_dir"], cache_longest=args["base_size"] if args is t else None)

    if t["datasets"]:
        train: HRIM | MixedDataset = MixedDataset(
            [(d["name"], dataset(t, d["data_dir"], d["split"], transform)) for d in t["datasets"]])
    else:
        train = dataset(t, t["data_dir"], t["split"], transform)
    vals: list[tuple[str, HRIM]] = []
    if cfg["trainer"]["val"]:
        v = cfg["val_loader"]["args"]
        entries = v["datasets"] or [{"name": "", "data_dir": v["data_dir"], "split": v["split"]}]
        vals = [(d["name"], dataset(v, d["data_dir"], d["split"], val_transform(mean, std))) for d in entries]
    return train, vals


def class_weights(cfg: dict[str, Any], counts: np.ndarray | None, num_classes: int) -> list[float] | None:
    setting = cfg["balance"]["class_weights"]
    if setting is None:
        return None
    if isinstance(setting, list):
        if len(setting) != num_classes:
            raise ConfigError(f"'balance.class_weights' has {len(setting)} values; the class map "
                              f"has {num_classes} classes")
        return [float(w) for w in setting]
    assert counts is not None
    return balance.median_frequency_weights(counts).round(6).tolist()


def build_loaders(cfg: dict[str, Any], train: HRIM | MixedDataset, vals: list[tuple[str, HRIM]],
                  info: DistInfo, seed: int, counts: np.ndarray | None, pin_memory: bool
                  ) -> tuple[DataLoader, list[ValLoader]]:
    t = cfg["train_loader"]["args"]
    threshold = cfg["balance"]["oversample_threshold"]
    if isinstance(train, MixedDataset):
        weights = mixture_weights([len(d) for d in train.parts], [d["weight"] for d in t["datasets"]],
                                  counts if cfg["balance"]["oversample"] else None, threshold)
        sampler: Any = balance.RepeatFactorSampler(weights, info.world_size, info.rank, seed,
                                                   total=t["samples_per_epoch"] or len(train))
    elif cfg["balance"]["oversample"]:
        assert counts is not None
        weights = balance.repeat_factors(counts, threshold)
        sampler = balance.RepeatFactorSampler(weights, info.world_size, info.rank, seed)
    else:
        sampler = DistributedSampler(train, num_replicas=info.world_size, rank=info.rank,
                                     shuffle=t["shuffle"], seed=seed)
    if len(sampler) < t["batch_size"]:
        raise ConfigError(f"train split {t['split']!r} has {len(train)} images: fewer than "
                          f"train_loader.args.batch_size ({t['batch_size']}) per process "
                          f"({info.world_size} process(es)); lower the batch size")
    train_loader = DataLoader(train, batch_size=t["batch_size"], sampler=sampler,
                              num_workers=t["num_workers"], pin_memory=pin_memory, drop_last=True,
                              collate_fn=pad_collate)
    v = cfg["val_loader"]["args"]
    val_loaders = []
    for name, val in vals:
        shard = Subset(val, range(info.rank, len(val), info.world_size))
        loader = DataLoader(shard, batch_size=v["batch_size"], shuffle=False,
                            num_workers=v["num_workers"], pin_memory=pin_memory, collate_fn=pad_collate)
        boxes = read_objects(val.root)
        objects = [boxes.get(val.samples[i][0], []) for i in shard.indices] if boxes else None
        val_loaders.append(ValLoader(name, loader, objects))
    return train_loader, val_loaders


def build_network(cfg: dict[str, Any], num_classes: int) -> nn.Module:
    from ..networks import build_model

    args = dict(cfg["arch"]["args"])
    backbone = args.pop("backbone")
    if args.get("pretrained") is None:
        args.pop("pretrained", None)
    try:
        return build_model(cfg["arch"]["type"], backbone, num_classes=num_classes, **args)
    except (KeyError, ValueError, TypeError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise ConfigError(f"'arch': cannot build {cfg['arch']['type']!r} with backbone "
                          f"{backbone!r} and args {args}: {msg}") from None


def build_optimizer(cfg: dict[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    opt = cfg["optimizer"]
    name, args = opt["type"], dict(opt["args"])
    cls = getattr(torch.optim, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        names = sorted(n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                       and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)
                       and n != "Optimizer")
        raise ConfigError(f"'optimizer.type' {name!r} is not a torch.optim optimizer; expected one "
                          f"of {names}")
    if opt["differential_lr"]:
        from ..networks import parameter_groups
        # the groups come from the bare network: a DDP wrapper hides which part is the encoder
        groups = parameter_groups(unwrap(model), args["lr"], backbone_lr_scale=0.1)
    else:
        groups = [{"params": list(model.parameters())}]
    groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in groups]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ConfigError("'arch.args': every parameter is frozen; nothing to train")
    try:
        return cls(groups, **args)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"'optimizer.args' {args} do not suit {name}: {exc}") from None


def build_criterion(cfg: dict[str, Any], weights: list[float] | None) -> nn.Module:
    try:
        return build_loss(cfg["loss"], ignore_index=IGNORE_INDEX, class_weights=weights,
                          **cfg["loss_args"])
    except KeyError as exc:
        raise ConfigError(f"'loss': {exc.args[0]}") from None
    except ValueError as exc:
        raise ConfigError(f"'loss'/'loss_args': {exc}") from None
