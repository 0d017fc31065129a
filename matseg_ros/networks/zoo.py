"""Architecture registry: names as the original configs spell them, readable aliases,
the valid (architecture, backbone) pairs, and `build_model`."""
from __future__ import annotations

import inspect
import os
from typing import Any, Callable

from torch import nn

from .backbones import RESNETS
from .base import SegmentationModel
from .deeplabv3plus import DeepLabV3Plus
from .duc_hdc import DeepLabDUCHDC
from .enet import ENet
from .fcn import FCN8s
from .gcn import GCN
from .ppliteseg import PPLiteSeg
from .pspnet import PSPNet
from .segnet import SegNet
from .unet import UNet
from .upernet import UperNet

# name → (class, valid backbones (None = the architecture's own encoder), default backbone)
ARCHITECTURES: dict[str, tuple[Callable[..., SegmentationModel], tuple[str | None, ...], str | None]] = {
    "DeepLab": (DeepLabV3Plus, RESNETS + ("xception",), "resnet101"),
    "PSPNet": (PSPNet, RESNETS, "resnet101"),
    "UNet": (UNet, (None,) + RESNETS, None),
    "SegNet": (SegNet, ("vgg16_bn",), "vgg16_bn"),
    "FCN8": (FCN8s, ("vgg16",), "vgg16"),
    "GCN": (GCN, RESNETS, "resnet50"),
    "UperNet": (UperNet, RESNETS, "resnet101"),
    "ENet": (ENet, (None,), None),
    "DeepLab_DUC_HDC": (DeepLabDUCHDC, RESNETS, "resnet101"),
    "PPLiteSeg": (PPLiteSeg, ("resnet18", "resnet34", "mobilenetv2"), "resnet18"),
}

ALIASES: dict[str, str] = {
    "deeplab": "DeepLab", "deeplabv3plus": "DeepLab", "deeplabv3+": "DeepLab", "deeplab_v3_plus": "DeepLab",
    "pspnet": "PSPNet", "psp": "PSPNet",
    "unet": "UNet", "u-net": "UNet",
    "segnet": "SegNet",
    "fcn": "FCN8", "fcn8s": "FCN8", "fcn-8s": "FCN8",
    "gcn": "GCN", "upernet": "UperNet", "enet": "ENet",
    "duc_hdc": "DeepLab_DUC_HDC", "duc-hdc": "DeepLab_DUC_HDC", "duchdc": "DeepLab_DUC_HDC",
    "deeplab_duc_hdc": "DeepLab_DUC_HDC",
    "ppliteseg": "PPLiteSeg", "pp-liteseg": "PPLiteSeg", "pp_liteseg": "PPLiteSeg",
}


def canonical_arch(name: str) -> str:
    """The registry name for `name` (exact, case-insensitive, or an alias)."""
    if name in ARCHITECTURES:
        return name
    lowered = name.lower()
    for key in ARCHITECTURES:
        if key.lower() == lowered:
            return key
    if lowered in ALIASES:
        return ALIASES[lowered]
    raise KeyError(f"unknown architecture {name!r}; valid: {sorted(ARCHITECTURES)} "
                   f"(aliases: {sorted(ALIASES)})")


def available_models() -> list[tuple[str, str | None]]:
    """Every valid (architecture, backbone) pair; None = the architecture's own encoder."""
    return [(arch, backbone) for arch, (_, backbones, _) in ARCHITECTURES.items() for backbone in backbones]


def default_backbone(arch: str) -> str | None:
    return ARCHITECTURES[canonical_arch(arch)][2]


def build_model(arch: str, backbone: str | None = None, num_classes: int = 9, *,
                freeze_bn: bool = False, freeze_backbone: bool = False,
                pretrained: str | os.PathLike | None = None, **kwargs: Any) -> SegmentationModel:
    """Build `arch` on `backbone` (None = the architecture's default) for `num_classes`.

    Extra keyword arguments go to the architecture (e.g. `output_stride` for DeepLab and
    PSPNet). `pretrained` is a local ImageNet backbone file; missing/unexpected keys are
    logged and kept in `model.pretrained_report`.
    """
    name = canonical_arch(arch)
    cls, backbones, default = ARCHITECTURES[name]
    if backbone is None:
        backbone = default
    elif backbone not in backbones:
        from .backbones import ENCODERS
        if backbone not in ENCODERS:
            raise KeyError(f"unknown backbone {backbone!r}; valid: {sorted(ENCODERS)}")
        valid = [b if b is not None else "None (own encoder)" for b in backbones]
        raise ValueError(f"architecture {name!r} does not support backbone {backbone!r}; valid: {valid}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes!r}")
    accepted = set(inspect.signature(cls).parameters) - {"num_classes", "backbone"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise TypeError(f"{name} does not take {unknown}; its options: {sorted(accepted)} "
                        "plus freeze_bn, freeze_backbone, pretrained")
    model = cls(num_classes=num_classes, backbone=backbone, **kwargs)
    model.arch, model.backbone_name = name, backbone
    if pretrained not in (None, False, ""):
        if pretrained is True:
            raise ValueError("pretrained must be the path of a local weights file, got True "
                             "(nothing is downloaded)")
        if not model.pretrained_encoder:
            raise ValueError(f"{name} on backbone {backbone!r} has its own encoder and no pretrained "
                             f"local weights file to load; got pretrained={str(pretrained)!r}")
        model.pretrained_report = model.load_pretrained(pretrained)
    if freeze_backbone:
        model.set_freeze_backbone(True)
    if freeze_bn:
        model.set_freeze_bn(True)
    return model


def parameter_groups(model: nn.Module, lr: float, backbone_lr_scale: float = 0.1) -> list[dict]:
    """Optimizer groups: a pretrained encoder at `lr * backbone_lr_scale`, the rest at `lr`.

    Frozen parameters (requires_grad False) are left out; empty groups are omitted. Models
    whose encoder is their own (ENet, the original U-Net) train everything at `lr`."""
    backbone_ids: set[int] = set()
    if isinstance(model, SegmentationModel) and model.pretrained_encoder:
        backbone_ids = {id(p) for p in model.encoder.parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"name": "backbone", "params": [p for p in trainable if id(p) in backbone_ids], "lr": lr * backbone_lr_scale},
        {"name": "head", "params": [p for p in trainable if id(p) not in backbone_ids], "lr": lr},
    ]
    return [g for g in groups if g["params"]]
