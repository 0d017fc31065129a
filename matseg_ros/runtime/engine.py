"""Inference engines behind one small interface.

    engine = load_engine("models/default.onnx")           # or a .pt checkpoint
    ids, confidence = engine.predict(rgb)                  # uint8 H×W, float32 H×W
    results = engine.predict_batch([rgb_front, rgb_rear])  # one forward pass, [(ids, confidence)]
    ids, confidence, colored = engine.predict_rendered(rgb, materials.palette_lut())

Both engines resize the frame to the model's input size, normalise with the model's
mean/std, and return class ids and the winning softmax probability at the frame's size
(ids by nearest-neighbour, confidence bilinearly). Argmax and softmax run inside the
backend (ONNX graph or torch on the device), so only H×W results cross to numpy.

Precision int8 is an ONNX Runtime CPU graph made by `matseg export --int8`: asked for a
model that is not one, the engine takes its sibling `<stem>.int8.onnx` when there is one
(and logs it), else refuses with the command that makes it.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..materials import MaterialMap
from .modelmeta import ModelMetadata

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "torch")
DEVICES = ("auto", "cuda", "cpu")
PRECISIONS = ("auto", "fp32", "fp16", "int8")
ONNX_SUFFIXES = (".onnx",)
INT8_SUFFIX = ".int8.onnx"
TORCH_SUFFIXES = (".pt", ".pth")


class EngineError(RuntimeError):
    """The engine cannot start: missing/unreadable model, GPU required but absent, bad option."""


class Engine(Protocol):
    metadata: ModelMetadata
    backend: str          # "onnxruntime" or "torch"
    device: str           # "cuda" or "cpu": where the model really runs
    precision: str        # "fp32", "fp16" or "int8": what really runs
    providers: list[str]  # ONNX Runtime providers really in use, or ["torch:<device>"]

    @property
    def classes(self) -> MaterialMap: ...

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def predict_batch(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]: ...

    def predict_rendered(self, rgb: np.ndarray,
                         lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise EngineError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_frame(rgb: np.ndarray, what: str = "predict") -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ValueError(f"{what} expects an H×W×3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")


def normalization_table(mean, std) -> np.ndarray:
    """(256, 1, 3) float32: (level/255 - mean) / std for each of the 256 values of each
    channel, computed in float32 as the per-pixel formula would be."""
    levels = np.arange(256, dtype=np.float32).reshape(256, 1, 1)
    return (levels * np.float32(1.0 / 255.0) - np.asarray(mean, dtype=np.float32)) \
        * (1.0 / np.asarray(std, dtype=np.float32))


def normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """H×W×3 uint8 RGB -> 3×H×W float32, (rgb/255 - mean) / std: the one normalisation
    training and inference share. The frame is looked up in `normalization_table` (cv2.LUT):
    the same float32 values as computing it per pixel, in a third of the time at 640×480
    (docs/benchmarks.md). The torch engine looks the frame up in the same table on its device."""
    check_frame(rgb, "normalize")
    table = normalization_table(mean, std)
    return np.ascontiguousarray(cv2.LUT(np.ascontiguousarray(rgb), table).transpose(2, 0, 1))


def preprocess(rgb: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """H×W×3 uint8 RGB -> 1×3×h×w float32 at the model's input size, normalised."""
    check_frame(rgb)
    height, width = meta.input_size
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return normalize(rgb, meta.mean, meta.std)[None]


def preprocess_batch(frames: list[np.ndarray], meta: ModelMetadata) -> np.ndarray:
    """Frames of any sizes -> N×3×h×w float32 at the model's input size (one copy for one frame)."""
    if len(frames) == 1:
        return preprocess(frames[0], meta)
    return np.concatenate([preprocess(rgb, meta) for rgb in frames])


def restore_size(ids: np.ndarray, confidence: np.ndarray,
                 shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Model-resolution ids/confidence back to the frame's H×W."""
    height, width = shape[:2]
    if ids.shape != (height, width):
        ids = cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)
        confidence = cv2.resize(confidence, (width, height), interpolation=cv2.INTER_LINEAR)
    return ids, confidence


def resolve_backend(model_path: Path, backend: str) -> str:
    check_choice("backend", backend, BACKENDS)
    if backend != "auto":
        return backend
    if model_path.suffix.lower() in ONNX_SUFFIXES:
        return "onnxruntime"
    if model_path.suffix.lower() in TORCH_SUFFIXES:
        return "torch"
    raise EngineError(f"{model_path}: cannot tell the backend from the suffix; expected one of "
                      f"{ONNX_SUFFIXES + TORCH_SUFFIXES} or backend=onnxruntime|torch")


def int8_command(model_path: Path) -> str:
    """The command that makes the int8 sibling of a model file."""
    return (f"matseg export --model {model_path} --output {int8_sibling(model_path)} --int8 "
            "--calibrate-data DATASET_DIR")


def int8_sibling(model_path: Path) -> Path:
    """`models/default.onnx` (or `.pt`) -> `models/default.int8.onnx`."""
    return model_path.with_suffix(INT8_SUFFIX)


def resolve_int8(model_path: Path, precision: str) -> Path:
    """The file to open: for precision int8, a model's int8 sibling when it has one; the
    engine then checks that what it opens really is an int8 model."""
    if precision != "int8" or model_path.name.endswith(INT8_SUFFIX):
        return model_path
    sibling = int8_sibling(model_path)
    if sibling.is_file():
        log.info("precision int8: using %s, the int8 sibling of %s", sibling, model_path)
        return sibling
    if model_path.suffix.lower() in TORCH_SUFFIXES:
        raise EngineError(f"{model_path}: precision int8 runs an int8 ONNX model on ONNX Runtime and "
                          f"{sibling.name} does not exist; make it with `{int8_command(model_path)}`")
    return model_path


def load_engine(model_path: str | Path, backend: str = "auto", device: str = "auto",
                precision: str = "auto", require_gpu: bool = False,
                providers: tuple[str, ...] | None = None, threads: int = 0,
                warmup: int = 1, cuda_graphs: bool = True, trt_engine_cache_enable: bool = True,
                trt_engine_cache_path: str | Path = "") -> Engine:
    """Open a model file with the right engine; raise EngineError with one clear line.

    `cuda_graphs`: the torch engine replays its forward pass as a CUDA graph (CUDA only).
    `trt_engine_cache_*`: where ONNX Runtime's TensorRT provider keeps the engines it builds
    ("" = ~/.cache/matseg_ros/trt)."""
    model_path = Path(model_path)
    check_choice("device", device, DEVICES)
    check_choice("precision", precision, PRECISIONS)
    if require_gpu and device == "cpu":
        raise EngineError("require_gpu is set but device is 'cpu'")
    if not model_path.is_file():
        raise EngineError(f"{model_path}: model file not found")
    model_path = resolve_int8(model_path, precision)
    kind = resolve_backend(model_path, backend)
    if kind == "onnxruntime":
        from .onnx_engine import OnnxEngine
        engine: Engine = OnnxEngine(model_path, device=device, precision=precision,
                                    require_gpu=require_gpu, providers=providers, threads=threads,
                                    trt_engine_cache_enable=trt_engine_cache_enable,
                                    trt_engine_cache_path=trt_engine_cache_path)
    else:
        if precision == "int8":
            raise EngineError(f"{model_path}: precision int8 runs on ONNX Runtime, not on backend "
                              f"torch; make the int8 model with `{int8_command(model_path)}`")
        from .torch_engine import TorchEngine
        engine = TorchEngine(model_path, device=device, precision=precision,
                             require_gpu=require_gpu, threads=threads, cuda_graphs=cuda_graphs)
    if warmup:
        height, width = engine.metadata.input_size
        dummy = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(warmup):
            engine.predict(dummy)
    log.info("engine %s on %s (%s), providers %s", engine.backend, engine.device,
             engine.precision, engine.providers)
    return engine
