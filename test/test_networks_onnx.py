"""Every architecture exports to ONNX with dynamic N/H/W and ONNX Runtime (CPU) matches
PyTorch within 1e-4 relative error at sizes other than the export size."""
from __future__ import annotations

import onnx
import pytest
import torch

from matseg_ros.networks import ARCHITECTURES, available_models, build_model
from matseg_ros.runtime.modelmeta import INPUT_NAME, OUTPUT_NAME
from matseg_ros.training.onnx_export import export_onnx, onnx_parity

EXPORT_SIZE = (48, 48)
CHECK_SIZE = (35, 51)  # odd, and not the export size
TOLERANCE = 1e-4


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and no all-zero layers (FCN's score layers start at zero),
    so that a wrong graph cannot hide behind constant outputs."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.normal_(0, 0.1, generator=generator)
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.01, generator=generator)
    return model.eval()


def smallest(arch: str) -> str | None:
    backbones = ARCHITECTURES[arch][1]
    return "resnet18" if "resnet18" in backbones else backbones[0]


def export_and_check(arch: str, backbone: str | None, path, **kwargs) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(0)
    model = randomize(build_model(arch, backbone, num_classes=3, **kwargs)).train()
    export_onnx(model, path, EXPORT_SIZE, metadata={"matseg.architecture": arch})
    assert model.training, "export must restore training mode"
    return model.eval(), onnx_parity(model, path, CHECK_SIZE)


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_onnx_matches_pytorch(arch, tmp_path):
    path = tmp_path / f"{arch}.onnx"
    kwargs = {"fc_channels": 64} if arch == "FCN8" else {}
    model, error = export_and_check(arch, smallest(arch), path, **kwargs)
    assert error <= TOLERANCE
    assert onnx_parity(model, path, (33, 40), batch=2) <= TOLERANCE

    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.input] == [INPUT_NAME]
    assert [o.name for o in proto.graph.output] == [OUTPUT_NAME]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param != "" for d in dims] == [True, False, True, True]
    assert {p.key: p.value for p in proto.metadata_props} == {"matseg.architecture": arch}
    assert not list(tmp_path.glob(".*tmp*")), "atomic write left a temporary file"


@pytest.mark.slow
def test_dynamo_exporter_also_matches(tmp_path):
    torch.manual_seed(0)
    model = randomize(build_model("PSPNet", "resnet18", num_classes=3))
    export_onnx(model, tmp_path / "psp.onnx", EXPORT_SIZE, dynamo=True)
    assert onnx_parity(model, tmp_path / "psp.onnx", CHECK_SIZE) <= TOLERANCE


def test_export_rejects_old_opsets(tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(build_model("ENet", num_classes=3), tmp_path / "e.onnx", opset=13)
    assert not (tmp_path / "e.onnx").exists()


@pytest.mark.slow
def test_every_pair_exports_and_matches(tmp_path):
    """The full matrix, default widths: logits at two sizes (the export size through
    PyTorch, the odd size through both) and ONNX parity."""
    failures = []
    for arch, backbone in available_models():
        path = tmp_path / "model.onnx"
        model, error = export_and_check(arch, backbone, path)
        with torch.no_grad():
            assert model.eval()(torch.zeros(1, 3, *EXPORT_SIZE)).shape == (1, 3, *EXPORT_SIZE)
        if error > TOLERANCE:
            failures.append((arch, backbone, error))
    assert not failures
