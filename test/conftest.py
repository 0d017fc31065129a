"""Shared fixtures. DDS stays on this machine and on a domain of this test run."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# A domain per test run (100..199), so parallel runs on one machine never cross.
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def materials():
    from matseg_ros.materials import load_materials
    return load_materials()


def make_tiny_net(num_classes: int = 9, seed: int = 0):
    """A small real segmentation network (stride-2 encoder, bilinear decoder)."""
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))

        def forward(self, x):
            return nn.functional.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear",
                                             align_corners=False)

    torch.manual_seed(seed)
    net = TinyNet()
    with torch.no_grad():  # non-trivial BN statistics
        net.body[1].running_mean.uniform_(-0.5, 0.5)
        net.body[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def export_tiny_onnx(path, materials, input_size=(48, 64), seed=0, fp16=False, opset=17):
    """Export make_tiny_net to ONNX with full matseg metadata; returns (path, torch net)."""
    import onnx
    import torch

    from matseg_ros.runtime.modelmeta import INPUT_NAME, OUTPUT_NAME, ModelMetadata

    net = make_tiny_net(materials.num_classes, seed)
    example = torch.zeros(1, 3, *input_size)
    torch.onnx.export(net.half() if fp16 else net, example.half() if fp16 else example, str(path),
                      input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                      dynamic_axes={INPUT_NAME: {0: "n", 2: "h", 3: "w"},
                                    OUTPUT_NAME: {0: "n", 2: "h", 3: "w"}}, dynamo=False)
    model = onnx.load(str(path))
    meta = ModelMetadata(materials, input_size=input_size, architecture="TinyNet")
    for key, value in meta.to_props().items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path, net.float()


@pytest.fixture(scope="session")
def tiny_onnx_model(tmp_path_factory, materials):
    """Path to a small exported ONNX model with full metadata (9 classes, input 48×64)."""
    path, _ = export_tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx", materials)
    return path
