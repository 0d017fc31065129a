import logging
import os

import numpy as np
import onnx
import pytest
import torch

from conftest import export_tiny_onnx
from matseg_ros.runtime.engine import EngineError, load_engine, normalize, preprocess
from matseg_ros.runtime.modelmeta import ModelMetadata


def reference(net, rgb, meta):
    """PyTorch on the same preprocessing, then resize ids back as the engine documents."""
    import cv2

    with torch.no_grad():
        prob = torch.softmax(net(torch.from_numpy(preprocess(rgb, meta))), dim=1)[0]
    conf, ids = prob.max(dim=0)
    h, w = rgb.shape[:2]
    ids = cv2.resize(ids.numpy().astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    conf = cv2.resize(conf.numpy(), (w, h), interpolation=cv2.INTER_LINEAR)
    return ids, conf


# 17: the exporter's default (Reduce* axes as attributes); 18: ReduceMax takes them as an input
@pytest.mark.parametrize("opset", [17, 18])
def test_onnx_engine_matches_pytorch(tmp_path, materials, rng, opset):
    path, net = export_tiny_onnx(tmp_path / "m.onnx", materials, input_size=(48, 64), opset=opset)
    assert onnx.load(str(path)).opset_import[0].version == opset
    engine = load_engine(path)
    assert engine.backend == "onnxruntime" and engine.device == "cpu"
    assert engine.providers == ["CPUExecutionProvider"] and engine.classes == materials
    # pool threads do not spin between runs (they took the node's CPU; docs/benchmarks/node.md)
    options = engine.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    for shape in [(48, 64, 3), (97, 131, 3)]:  # model size, and a resize in both directions
        rgb = rng.integers(0, 256, size=shape, dtype=np.uint8)
        ids, conf = engine.predict(rgb)
        ref_ids, ref_conf = reference(net, rgb, engine.metadata)
        assert ids.dtype == np.uint8 and conf.dtype == np.float32 and ids.shape == shape[:2]
        assert (ids == ref_ids).mean() > 0.999
        np.testing.assert_allclose(conf, ref_conf, rtol=1e-4, atol=1e-5)
        assert len(np.unique(ids)) > 1 and ((conf > 1 / 9) & (conf <= 1)).all()


def test_prelu_rewrite_computes_prelu(tmp_path):
    """CPU sessions get each constant-slope PRelu as Relu(x)(1 - a) + x a: the same
    function as PyTorch's PReLU for slopes below 0, in [0, 1] and above 1, per channel or
    shared."""
    from matseg_ros.runtime.onnx_engine import rewrite_prelu
    import onnxruntime as ort

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.PReLU(4),
                              torch.nn.Conv2d(4, 9, 1), torch.nn.PReLU()).eval()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([-0.5, 0.25, 1.0, 1.7]))
        net[3].weight.fill_(2.5)
    x = torch.randn(1, 3, 20, 30)
    torch.onnx.export(net, x, str(tmp_path / "p.onnx"), input_names=["input"], output_names=["logits"],
                      dynamo=False)
    model = onnx.load(str(tmp_path / "p.onnx"))
    slopes = {n.input[1] for n in model.graph.node if n.op_type == "PRelu"}
    assert len(slopes) == 2 and rewrite_prelu(model) == 2
    assert "PRelu" not in {n.op_type for n in model.graph.node}
    assert not slopes & {init.name for init in model.graph.initializer}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = net(x).numpy()
    assert (expected < 0).any() and (expected > 0).any()
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, rtol=1e-5, atol=1e-6)

    # an fp16 model keeps fp16 slopes (a float32 constant would make Mul's types disagree)
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(onnx.load(str(tmp_path / "p.onnx")), keep_io_types=False)
    assert rewrite_prelu(half) == 2
    session = ort.InferenceSession(half.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy().astype(np.float16)})[0]
    np.testing.assert_allclose(got.astype(np.float32), expected, rtol=2e-2, atol=2e-2)


def test_preprocess_normalises_with_metadata(materials):
    meta = ModelMetadata(materials, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), input_size=(2, 2))
    rgb = np.full((2, 2, 3), 255, np.uint8)
    x = preprocess(rgb, meta)
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, :, 0, 0], [2.0, 1.0, 0.5], rtol=1e-6)


def test_normalize_table_gives_the_per_pixel_formula(rng):
    """Every value of every channel, through a non-contiguous (flipped) view: bitwise the
    float32 arithmetic (rgb/255 - mean) * (1/std)."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    rgb = np.stack([np.arange(256, dtype=np.uint8).reshape(16, 16)] * 3, axis=2)
    rgb[..., 1] = rgb[..., 1].T
    rgb = np.concatenate([rgb, rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)])[:, ::-1]
    expected = ((rgb.astype(np.float32) * np.float32(1 / 255) - np.float32(mean))
                * (1 / np.asarray(std, dtype=np.float32))).transpose(2, 0, 1)
    x = normalize(rgb, mean, std)
    assert x.dtype == np.float32 and x.flags.c_contiguous and x.shape == (3, 32, 16)
    np.testing.assert_array_equal(x, expected)
    with pytest.raises(ValueError, match="uint8"):
        normalize(rgb.astype(np.float32), mean, std)


def test_fp16_model_runs_and_reports_precision(tmp_path, materials, rng):
    path, _ = export_tiny_onnx(tmp_path / "h.onnx", materials, fp16=True)
    engine = load_engine(path)
    assert engine.precision == "fp16"
    ids, conf = engine.predict(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8))
    assert ids.shape == (48, 64) and conf.dtype == np.float32


def test_cuda_request_without_gpu(tiny_onnx_model, caplog):
    with caplog.at_level(logging.WARNING):
        engine = load_engine(tiny_onnx_model, device="cuda")
    assert engine.device == "cpu" and engine.providers == ["CPUExecutionProvider"]
    with pytest.raises(EngineError, match="a GPU is required but ONNX Runtime runs on"):
        load_engine(tiny_onnx_model, device="cuda", require_gpu=True)
    with pytest.raises(EngineError, match="require_gpu is set but device is 'cpu'"):
        load_engine(tiny_onnx_model, device="cpu", require_gpu=True)


def test_error_paths(tmp_path, tiny_onnx_model):
    with pytest.raises(EngineError, match="missing.onnx: model file not found"):
        load_engine(tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(EngineError, match="junk.onnx: cannot read ONNX model"):
        load_engine(tmp_path / "junk.onnx")
    bare = onnx.load(str(tiny_onnx_model))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(EngineError, match="bare.onnx: model metadata lacks 'matseg.format'"):
        load_engine(tmp_path / "bare.onnx")
    (tmp_path / "m.bin").write_bytes(b"")
    with pytest.raises(EngineError, match="cannot tell the backend"):
        load_engine(tmp_path / "m.bin")
    with pytest.raises(EngineError, match="device must be one of auto, cuda, cpu"):
        load_engine(tiny_onnx_model, device="gpu")
    with pytest.raises(EngineError, match="unknown provider"):
        load_engine(tiny_onnx_model, providers=("rocm",))
    with pytest.raises(ValueError, match="H×W×3 uint8"):
        load_engine(tiny_onnx_model).predict(np.zeros((4, 4), np.uint8))


def test_torch_checkpoint_errors(tmp_path):
    for junk in (b"not a zip", b"junk", b""):
        (tmp_path / "bad.pt").write_bytes(junk)
        with pytest.raises(EngineError, match="bad.pt: not a loadable checkpoint"):
            load_engine(tmp_path / "bad.pt")
    torch.save({"model": {}, "hook": os.system}, tmp_path / "pickled.pt")  # code by reference
    with pytest.raises(EngineError, match="weights_only=True failed"):
        load_engine(tmp_path / "pickled.pt")


def test_provider_request_follows_device(monkeypatch):
    from matseg_ros.runtime import onnx_engine

    monkeypatch.setattr(onnx_engine, "nvidia_driver_present", lambda: False)
    assert onnx_engine.requested_providers("auto", None) == ["CPUExecutionProvider"]
    assert onnx_engine.requested_providers("cuda", None) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnx_engine, "nvidia_driver_present", lambda: True)
    assert onnx_engine.requested_providers("auto", None)[0] == "CUDAExecutionProvider"
    assert onnx_engine.requested_providers("auto", ("tensorrt", "cuda", "cpu")) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_driver_detection_covers_wsl2_and_jetson(monkeypatch, tmp_path):
    from matseg_ros.runtime import onnx_engine

    assert {"/dev/nvidia0", "/dev/dxg", "/etc/nv_tegra_release"} <= set(onnx_engine.NVIDIA_DRIVER_FILES)
    monkeypatch.setattr(onnx_engine, "NVIDIA_DRIVER_FILES", (str(tmp_path / "none"),))
    assert not onnx_engine.nvidia_driver_present()
    (tmp_path / "dxg").touch()  # what WSL2 has instead of /dev/nvidia0
    monkeypatch.setattr(onnx_engine, "NVIDIA_DRIVER_FILES", (str(tmp_path / "none"), str(tmp_path / "dxg")))
    assert onnx_engine.nvidia_driver_present()


def test_torch_checkpoint_and_its_onnx_export_agree(tmp_path, materials, rng):
    """A real zoo network as a checkpoint (torch engine) and as ONNX (ORT engine)."""
    from matseg_ros.networks import build_model
    from matseg_ros.runtime.checkpoint import save_checkpoint
    from matseg_ros.training.onnx_export import export_onnx

    torch.manual_seed(0)
    model = build_model("ENet", None, num_classes=materials.num_classes).eval()
    meta = ModelMetadata(materials, input_size=(64, 96), architecture="ENet")
    save_checkpoint(tmp_path / "enet.pt", {"model": model.state_dict(), "arch_args": {},
                                           **meta.to_checkpoint_entries()})
    export_onnx(model, tmp_path / "enet.onnx", example_size=(64, 96), metadata=meta.to_props())
    torch_engine = load_engine(tmp_path / "enet.pt")
    onnx_engine = load_engine(tmp_path / "enet.onnx")
    assert torch_engine.backend == "torch" and torch_engine.providers == ["torch:cpu"]
    assert torch_engine.metadata == onnx_engine.metadata == meta
    rgb = rng.integers(0, 256, size=(120, 150, 3), dtype=np.uint8)
    ids_t, conf_t = torch_engine.predict(rgb)
    ids_o, conf_o = onnx_engine.predict(rgb)
    assert (ids_t == ids_o).mean() > 0.999
    np.testing.assert_allclose(conf_t, conf_o, rtol=1e-4, atol=1e-5)
