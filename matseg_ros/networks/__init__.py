"""The model zoo in plain PyTorch (no torchvision): `build_model(arch, backbone, num_classes)`.

Architectures: DeepLab (V3+), PSPNet, UNet, SegNet, FCN8, GCN, UperNet, ENet,
DeepLab_DUC_HDC; backbones resnet18…resnet152, xception, vgg16(_bn). `available_models()`
lists the valid pairs. A leaf: imports only torch, nothing else of the package.
"""
from .base import SegmentationModel
from .pretrained import LoadReport, load_backbone_weights
from .zoo import (ALIASES, ARCHITECTURES, available_models, build_model, canonical_arch,
                  default_backbone, parameter_groups)

__all__ = ["ALIASES", "ARCHITECTURES", "LoadReport", "SegmentationModel", "available_models",
           "build_model", "canonical_arch", "default_backbone", "load_backbone_weights",
           "parameter_groups"]
