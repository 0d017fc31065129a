"""The CUDA paths against the CPU ones: engines, every architecture in fp16, AMP training.

The engines' GPU frame paths too: the torch engine's CUDA graphs and batches, ONNX Runtime's
CUDA provider with IO binding, and its TensorRT provider where TensorRT is installed.

Skipped where torch sees no CUDA device (CI); run on a GPU machine with
`python -m pytest test/test_gpu.py`. The references are the same code on the CPU in fp32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from matseg_ros import cli
from matseg_ros.runtime.checkpoint import load_checkpoint, model_from_checkpoint
from matseg_ros.demo.frames import sample_sequence
from matseg_ros.runtime.engine import load_engine
from matseg_ros.runtime.ort_providers import tensorrt_missing
from matseg_ros.networks import ARCHITECTURES, build_model, default_backbone
from training_helpers import make_dataset, only_run, write_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return sample_sequence(12, (480, 640))


def agreement(engine, reference, frames) -> tuple[float, float, float]:
    """Share of equal class ids (worst frame, all frames) and mean |confidence difference|."""
    shares, diffs = [], []
    for rgb in frames:
        ids, conf = engine.predict(rgb)
        ref_ids, ref_conf = reference.predict(rgb)
        assert ids.shape == ref_ids.shape == rgb.shape[:2] and ids.dtype == np.uint8
        shares.append(float((ids == ref_ids).mean()))
        diffs.append(np.abs(conf - ref_conf))
    return min(shares), float(np.mean(shares)), float(np.mean([d.mean() for d in diffs]))


@pytest.fixture(scope="module")
def cpu_reference():
    return load_engine(MODELS / "default.pt", backend="torch", device="cpu")


def test_shipped_checkpoint_in_fp16_on_cuda_agrees_with_fp32_on_the_cpu(cpu_reference, frames):
    engine = load_engine(MODELS / "default.pt", backend="torch", device="cuda", require_gpu=True)
    assert (engine.device, engine.precision, engine.providers) == ("cuda", "fp16", ["torch:cuda"])
    worst, mean, mean_diff = agreement(engine, cpu_reference, frames)
    # H200, stage-12 file: worst frame 0.9901, all frames 0.9957, confidence 0.0028 (PyTorch's default TF32
    # convolutions in fp32 give 0.9948, 0.9984 and 0.0011)
    assert worst >= 0.98 and mean >= 0.99 and mean_diff < 0.005, (worst, mean, mean_diff)


@pytest.fixture
def no_tf32():
    """True fp32 on the GPU: PyTorch lets cuDNN convolutions use TF32 (10-bit mantissa) by default."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_shipped_checkpoint_in_fp32_on_cuda_matches_the_cpu(cpu_reference, frames, no_tf32):
    engine = load_engine(MODELS / "default.pt", backend="torch", device="cuda", precision="fp32")
    assert (engine.device, engine.precision) == ("cuda", "fp32")
    worst, mean, mean_diff = agreement(engine, cpu_reference, frames)
    assert worst >= 0.999 and mean_diff < 1e-3, (worst, mean, mean_diff)  # H200: 0.99947, 3.9e-5


def test_onnx_runtime_cuda_provider_matches_its_cpu_provider(frames):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime ({ort.__version__}) has no CUDA provider")
    engine = load_engine(MODELS / "default.onnx", device="cuda", require_gpu=True)
    assert engine.device == "cuda" and engine.providers[0] == "CUDAExecutionProvider"
    worst, mean, mean_diff = agreement(engine, load_engine(MODELS / "default.onnx", device="cpu"), frames)
    assert worst >= 0.999 and mean_diff < 1e-3, (worst, mean, mean_diff)


def test_cuda_graphs_replay_the_eager_forward_pass(cpu_reference, frames):
    """The default torch engine on CUDA (fp16, channels_last, a CUDA graph per batch size)
    against the same engine without graphs, and against fp32 on the CPU."""
    graphs = load_engine(MODELS / "default.pt", backend="torch", device="cuda")
    eager = load_engine(MODELS / "default.pt", backend="torch", device="cuda", cuda_graphs=False)
    assert graphs.cuda_graphs and not eager.cuda_graphs and graphs.precision == "fp16"
    worst, _, mean_diff = agreement(graphs, eager, frames)
    assert worst >= 0.999 and mean_diff < 1e-4, (worst, mean_diff)
    worst, mean, _ = agreement(graphs, cpu_reference, frames)
    # the fp16 test above measured worst 0.9901, all frames 0.9957 (H200, stage-12 file)
    assert worst >= 0.98 and mean >= 0.995, (worst, mean)


def test_torch_batches_on_cuda_equal_single_frames(frames, materials):
    from matseg_ros.runtime.rendering import colorize

    engine = load_engine(MODELS / "default.pt", backend="torch", device="cuda")
    for size in (2, 4):  # a graph is captured for each batch size at its first use
        batch = engine.predict_batch(frames[:size])
        for rgb, (ids, conf) in zip(frames, batch):
            one_ids, one_conf = engine.predict(rgb)
            assert (ids == one_ids).mean() >= 0.999
            np.testing.assert_allclose(conf, one_conf, atol=2e-3)
    assert engine.cuda_graphs and set(engine._graphs) == {1, 2, 4}
    lut = materials.palette_lut()
    ids, conf, colored = engine.predict_rendered(frames[0], lut)  # palette looked up on the GPU
    np.testing.assert_array_equal(colored, colorize(ids, lut))


def test_onnx_runtime_cuda_io_binding_batches(frames):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"this onnxruntime ({ort.__version__}) has no CUDA provider")
    engine = load_engine(MODELS / "default.onnx", device="cuda", providers=("cuda", "cpu"))
    assert engine.device == "cuda" and engine._binding is not None
    cpu = load_engine(MODELS / "default.onnx", device="cpu")
    batch = engine.predict_batch(frames[:4])
    for rgb, (ids, conf) in zip(frames, batch):
        ref_ids, ref_conf = cpu.predict(rgb)
        assert (ids == ref_ids).mean() >= 0.999
        assert np.abs(conf - ref_conf).mean() < 1e-3


def test_tensorrt_builds_caches_and_reloads_its_engine(tmp_path, frames, caplog):
    missing = tensorrt_missing()
    if missing:
        pytest.skip(f"TensorRT provider cannot load: {missing}")
    import logging

    cache = tmp_path / "trt"
    with caplog.at_level(logging.INFO):
        engine = load_engine(MODELS / "default.onnx", providers=("tensorrt", "cuda", "cpu"),
                             trt_engine_cache_path=cache)
    assert engine.providers[0] == "TensorrtExecutionProvider" and engine.precision == "fp16"
    assert "built in" in caplog.text and list(cache.glob("*/*.engine"))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_engine(MODELS / "default.onnx", providers=("tensorrt", "cuda", "cpu"),
                    trt_engine_cache_path=cache)
    assert "loaded from" in caplog.text
    worst, mean, _ = agreement(engine, load_engine(MODELS / "default.onnx", device="cpu"), frames)
    assert worst >= 0.98 and mean >= 0.99, (worst, mean)


def settled(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """`model` in eval mode with BatchNorm statistics measured on `x`, as after training
    (a fresh network's unit running variances let deep ResNets' activations grow without bound),
    and random weights where a layer starts at zero (FCN's score layers), so logits vary."""
    with torch.no_grad():
        for weight in model.parameters():
            if weight.dim() > 1 and not weight.any():
                weight.normal_(0, 0.01)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the passes below
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_every_architecture_on_cuda_in_fp32_and_fp16(arch, no_tf32):
    """fp32 on CUDA matches the CPU; fp16 channels_last runs and stays finite. fp16 accuracy is
    checked on the trained model above: a random deep network is chaotic (on an H200, TF32 alone
    moved the ResNet-101 heads' logits by 48-71 % relative), so its fp16 logits prove nothing."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 256, 256)
    model = settled(build_model(arch, default_backbone(arch), num_classes=9), x)
    with torch.inference_mode():
        reference = model(x[:1])  # fp32 on the CPU
        gpu = model.to("cuda")
        fp32 = gpu(x[:1].cuda()).cpu()
        half = gpu.to(dtype=torch.float16, memory_format=torch.channels_last)
        fp16 = half(x[:1].to("cuda", dtype=torch.float16).contiguous(
            memory_format=torch.channels_last)).float().cpu()
    assert fp32.shape == fp16.shape == reference.shape == (1, 9, 256, 256)
    relative = (torch.linalg.vector_norm(fp32 - reference) / torch.linalg.vector_norm(reference)).item()
    same = (fp32.argmax(1) == reference.argmax(1)).float().mean().item()
    assert relative < 0.05 and same > 0.99, (relative, same)  # H200: at most 0.022 and 0.9962
    assert torch.isfinite(fp16).all()


def test_amp_training_on_cuda_learns_resumes_and_loads_on_the_cpu(tmp_path, materials):
    dataset = make_dataset(tmp_path / "hrim", materials, n_train=16, n_val=4)
    cfg = write_config(tmp_path / "cfg.json", REPO / "config" / "train" / "enet_cpu.json",
                       **{"trainer.save_period": 1, "trainer.tensorboard": False})
    common = ["--data-dir", str(dataset), "--device", "cuda", "--batch-size", "2", "--no-progress"]
    assert cli.main(["train", "--config", str(cfg), "--save-dir", str(tmp_path / "out"),
                     "--epochs", "12", *common]) == 0
    run = only_run(tmp_path / "out")
    first, last = load_checkpoint(run / "epoch_1.pt"), load_checkpoint(run / "last.pt")
    assert last["epoch"] == 12 and last["train_loss"] < 0.6 * first["train_loss"]
    assert last["scaler"] and last["scaler"]["scale"] > 0  # the GradScaler really ran
    assert load_checkpoint(run / "best.pt")["metrics"]["mIoU"] > 0.25
    # saved on the GPU, the tensors load onto a CPU-only machine's map_location
    assert all(t.device.type == "cpu" for t in last["model"].values())
    model, meta = model_from_checkpoint(last, "last.pt")
    assert meta.classes == materials and next(model.parameters()).device.type == "cpu"

    assert cli.main(["train", "--resume", str(run / "last.pt"), "--epochs", "13",
                     "--save-dir", str(tmp_path / "resumed"), *common]) == 0
    assert load_checkpoint(only_run(tmp_path / "resumed") / "last.pt")["epoch"] == 13
