import logging
import os
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from conftest import export_tiny_onnx
from matseg_ros.runtime.engine import EngineError, load_engine, normalize, preprocess
from matseg_ros.runtime.modelmeta import ModelMetadata


def reference(net, rgb, meta):
    """PyTorch on the same preprocessing, then resize ids back as the engine documents."""
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
    from matseg_ros.runtime import ort_providers

    monkeypatch.setattr(ort_providers, "nvidia_driver_present", lambda: False)
    assert ort_providers.requested_providers("auto", None) == ["CPUExecutionProvider"]
    monkeypatch.setattr(ort_providers, "tensorrt_missing", lambda: "no TensorRT")
    assert ort_providers.requested_providers("cuda", None) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort_providers, "nvidia_driver_present", lambda: True)
    assert ort_providers.requested_providers("auto", None)[0] == "CUDAExecutionProvider"
    assert ort_providers.requested_providers("cpu", None) == ["CPUExecutionProvider"]
    assert ort_providers.requested_providers("auto", ("tensorrt", "cuda", "cpu")) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort_providers, "tensorrt_missing", lambda: None)  # TensorRT's runtime loads
    assert ort_providers.requested_providers("auto", None) == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_driver_detection_covers_wsl2_and_jetson(monkeypatch, tmp_path):
    from matseg_ros.runtime import ort_providers

    assert {"/dev/nvidia0", "/dev/dxg", "/etc/nv_tegra_release"} <= set(ort_providers.NVIDIA_DRIVER_FILES)
    monkeypatch.setattr(ort_providers, "NVIDIA_DRIVER_FILES", (str(tmp_path / "none"),))
    assert not ort_providers.nvidia_driver_present()
    assert ort_providers.tensorrt_missing() == "no NVIDIA driver on this machine"
    (tmp_path / "dxg").touch()  # what WSL2 has instead of /dev/nvidia0
    monkeypatch.setattr(ort_providers, "NVIDIA_DRIVER_FILES", (str(tmp_path / "none"), str(tmp_path / "dxg")))
    assert ort_providers.nvidia_driver_present()


@pytest.fixture(scope="module")
def enet_files(tmp_path_factory, materials):
    """A real zoo network (random weights) as a checkpoint and as its ONNX export, input 64×96."""
    from matseg_ros.networks import build_model
    from matseg_ros.runtime.checkpoint import save_checkpoint
    from matseg_ros.training.onnx_export import export_onnx

    folder = tmp_path_factory.mktemp("enet")
    torch.manual_seed(0)
    model = build_model("ENet", None, num_classes=materials.num_classes).eval()
    meta = ModelMetadata(materials, input_size=(64, 96), architecture="ENet")
    save_checkpoint(folder / "enet.pt", {"model": model.state_dict(), "arch_args": {},
                                         **meta.to_checkpoint_entries()})
    export_onnx(model, folder / "enet.onnx", example_size=(64, 96), metadata=meta.to_props())
    return folder / "enet.pt", folder / "enet.onnx", meta


def test_torch_checkpoint_and_its_onnx_export_agree(enet_files, rng):
    """A real zoo network as a checkpoint (torch engine) and as ONNX (ORT engine)."""
    pt, onnx_path, meta = enet_files
    torch_engine = load_engine(pt)
    onnx_engine = load_engine(onnx_path)
    assert torch_engine.backend == "torch" and torch_engine.providers == ["torch:cpu"]
    assert torch_engine.metadata == onnx_engine.metadata == meta
    rgb = rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)  # the model's input size
    ids_t, conf_t = torch_engine.predict(rgb)
    ids_o, conf_o = onnx_engine.predict(rgb)
    assert (ids_t == ids_o).mean() > 0.999
    np.testing.assert_allclose(conf_t, conf_o, rtol=1e-4, atol=1e-5)
    # resized, the torch engine interpolates the normalised frame in float on its device where
    # cv2 rounds the resized frame to uint8 levels: inputs differ by under one level, which
    # this random (chaotic) ENet turns into 1.7 % of ids (the shipped ENet on photographs: 0.3-2.3 %)
    rgb = rng.integers(0, 256, size=(120, 150, 3), dtype=np.uint8)
    assert (torch_engine.predict(rgb)[0] == onnx_engine.predict(rgb)[0]).mean() > 0.95


def test_torch_device_path_equals_the_cpu_path(enet_files, rng):
    """The torch engine's frame path (upload the uint8 frame, normalise by table lookup and
    resize on the device, reduce there) against the CPU path it replaced (engine.preprocess,
    the network, softmax and max, cv2 back to the frame's size)."""
    from matseg_ros.runtime.engine import restore_size
    from matseg_ros.runtime.torch_engine import frame_to_input

    engine = load_engine(enet_files[0], device="cpu")
    meta = engine.metadata

    def cpu_path(rgb):
        with torch.inference_mode():
            logits = engine.model(torch.from_numpy(preprocess(rgb, meta)))
            conf, ids = torch.softmax(logits, dim=1).max(dim=1)
        return restore_size(ids[0].to(torch.uint8).numpy(), conf[0].numpy(), rgb.shape)

    rgb = rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    for frame in (rgb, rgb[::-1]):  # a non-contiguous view is copied, not misread
        ids, conf = engine.predict(frame)
        ref_ids, ref_conf = cpu_path(frame)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(conf, ref_conf)
    # a frame of another size: resized after normalising, in float (cv2 rounds to uint8 levels)
    big = cv2.resize(rgb, (192, 128), interpolation=cv2.INTER_NEAREST)
    x = frame_to_input(torch.from_numpy(big), engine._table, meta.input_size, torch.float32)
    one_level = 1 / 255 / min(meta.std)
    assert np.abs(x.numpy() - preprocess(big, meta)).max() < one_level
    np.testing.assert_array_equal(
        frame_to_input(torch.from_numpy(rgb), engine._table, meta.input_size, torch.float32).numpy(),
        preprocess(rgb, meta))  # no resize: bitwise the table the CPU path uses
    ids, _ = engine.predict(big)
    assert ids.shape == (128, 192) and (ids == cpu_path(big)[0]).mean() > 0.95


@pytest.mark.parametrize("kind", ["onnx", "torch"])
def test_predict_batch_equals_predict_frame_by_frame(enet_files, rng, kind):
    engine = load_engine(enet_files[1] if kind == "onnx" else enet_files[0], device="cpu")
    frames = [rng.integers(0, 256, size=shape, dtype=np.uint8)
              for shape in [(64, 96, 3), (97, 131, 3), (48, 64, 3), (64, 96, 3)]]
    batch = engine.predict_batch(frames)
    assert len(batch) == len(frames) and engine.predict_batch([]) == []
    for rgb, (ids, conf) in zip(frames, batch):
        one_ids, one_conf = engine.predict(rgb)
        assert ids.shape == conf.shape == rgb.shape[:2] and ids.dtype == np.uint8
        np.testing.assert_array_equal(ids, one_ids)
        np.testing.assert_allclose(conf, one_conf, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["onnx", "torch"])
def test_predict_rendered_gives_the_palette_image(enet_files, materials, rng, kind):
    from matseg_ros.runtime.rendering import colorize

    engine = load_engine(enet_files[1] if kind == "onnx" else enet_files[0], device="cpu")
    lut = materials.palette_lut()
    rgb = rng.integers(0, 256, size=(70, 90, 3), dtype=np.uint8)
    ids, conf, colored = engine.predict_rendered(rgb, lut)
    np.testing.assert_array_equal(ids, engine.predict(rgb)[0])
    np.testing.assert_array_equal(colored, colorize(ids, lut))
    assert colored.dtype == np.uint8 and colored.shape == (70, 90, 3)
    lut[ids[0, 0]] = (1, 2, 3)  # a changed palette is picked up
    assert tuple(engine.predict_rendered(rgb, lut)[2][0, 0]) == (1, 2, 3)
    with pytest.raises(ValueError, match="lut must be a"):
        engine.predict_rendered(rgb, lut[:9])


def test_tensorrt_options_and_cache_folder(tmp_path):
    """The TensorRT provider options as documented, and a cache folder per model, input size,
    precision and GPU (built without TensorRT)."""
    from matseg_ros.runtime import ort_providers

    folder = ort_providers.tensorrt_cache_dir(tmp_path, b"model", "default.onnx", (432, 576), True,
                                              "NVIDIA H100 80GB HBM3")
    assert folder.parent == tmp_path and folder.name.startswith("default-")
    assert "-432x576-fp16-nvidia-h100-80gb-hbm3-ort" in folder.name
    others = {ort_providers.tensorrt_cache_dir(tmp_path, *args) for args in [
        (b"other", "default.onnx", (432, 576), True, "NVIDIA H100 80GB HBM3"),
        (b"model", "default.onnx", (480, 640), True, "NVIDIA H100 80GB HBM3"),
        (b"model", "default.onnx", (432, 576), False, "NVIDIA H100 80GB HBM3"),
        (b"model", "default.onnx", (432, 576), True, "Orin")]}
    assert len(others) == 4 and folder not in others
    default = ort_providers.tensorrt_cache_dir("", b"model", "m.onnx", (8, 8), False, "x")
    assert default.parent == Path("~/.cache/matseg_ros/trt").expanduser()

    options = ort_providers.tensorrt_options((432, 576), True, True, folder)
    assert options == {
        "device_id": 0, "trt_fp16_enable": True, "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(folder), "trt_profile_min_shapes": "input:1x3x432x576",
        "trt_profile_opt_shapes": "input:1x3x432x576",
        "trt_profile_max_shapes": f"input:{ort_providers.TRT_MAX_BATCH}x3x432x576"}
    off = ort_providers.tensorrt_options((432, 576), False, False, folder)
    assert "trt_engine_cache_path" not in off and off["trt_engine_cache_enable"] is False
    assert off["trt_fp16_enable"] is False


def test_tensorrt_missing_names_what_is_missing(monkeypatch):
    from matseg_ros.runtime import ort_providers

    monkeypatch.setattr(ort_providers, "nvidia_driver_present", lambda: True)
    monkeypatch.setattr(ort_providers, "TENSORRT_LIBRARY", "libnvinfer-absent.so.10")
    reason = ort_providers.tensorrt_missing()
    assert "libnvinfer-absent.so.10" in reason and "LD_LIBRARY_PATH" in reason
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert "has no TensorRT provider" in ort_providers.tensorrt_missing()


def test_session_options_spin_only_when_asked():
    from matseg_ros.runtime.ort_providers import session_options

    assert session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    spinning = session_options(threads=1, spinning=True)
    assert spinning.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert spinning.intra_op_num_threads == 1
