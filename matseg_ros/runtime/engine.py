"""Inference engines behind one small interface.

    engine = load_engine("models/default.onnx")           # or a .pt checkpoint
    ids, confidence = engine.predict(rgb)                  # uint8 H×W, float32 H×W

Both engines resize the frame to the model's input size, normalise with the model's
mean/std, and return class ids and the winning softmax probability at the frame's size
(ids by nearest-neighbour, confidence bilinearly). Argmax and softmax run inside the
backend (ONNX graph or torch on the device), so only H×W results cross to numpy.
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
PRECISIONS = ("auto", "fp32", "fp16")
ONNX_SUFFIXES = (".onnx",)
TORCH_SUFFIXES = (".pt", ".pth")


class EngineError(RuntimeError):
    """The engine cannot start: missing/unreadable model, GPU required but absent, bad option."""


class Engine(Protocol):
    metadata: ModelMetadata
    backend: str          # "onnxruntime" or "torch"
    device: str           # "cuda" or "cpu": where the model really runs
    precision: str        # "fp32" or "fp16"
    providers: list[str]  # ONNX Runtime providers really in use, or ["torch:<device>"]

    @property
    def classes(self) -> MaterialMap: ...

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise EngineError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_frame(rgb: np.ndarray, what: str = "predict") -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ValueError(f"{what} expects an H×W×3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")


def normalize(rgb: np.ndarray, mean, std) -> np.ndarray:
    """H×W×3 uint8 RGB -> 3×H×W float32, (rgb/255 - mean) / std: the one normalisation
    training and inference share. The formula is applied to the 256 possible values of each
    channel and the frame is looked up in that table (cv2.LUT): the same float32 values as
    computing it per pixel, in a third of the time at 640×480 (docs/benchmarks.md)."""
    check_frame(rgb, "normalize")
    levels = np.arange(256, dtype=np.float32).reshape(256, 1, 1)
    table = (levels * np.float32(1.0 / 255.0) - np.asarray(mean, dtype=np.float32)) \
        * (1.0 / np.asarray(std, dtype=np.float32))
    return np.ascontiguousarray(cv2.LUT(np.ascontiguousarray(rgb), table).transpose(2, 0, 1))


def preprocess(rgb: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """H×W×3 uint8 RGB -> 1×3×h×w float32 at the model's input size, normalised."""
    check_frame(rgb)
    height, width = meta.input_size
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return normalize(rgb, meta.mean, meta.std)[None]


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


def load_engine(model_path: str | Path, backend: str = "auto", device: str = "auto",
                precision: str = "auto", require_gpu: bool = False,
                providers: tuple[str, ...] | None = None, threads: int = 0,
                warmup: int = 1) -> Engine:
    """Open a model file with the right engine; raise EngineError with one clear line."""
    model_path = Path(model_path)
    check_choice("device", device, DEVICES)
    check_choice("precision", precision, PRECISIONS)
    if require_gpu and device == "cpu":
        raise EngineError("require_gpu is set but device is 'cpu'")
    if not model_path.is_file():
        raise EngineError(f"{model_path}: model file not found")
    kind = resolve_backend(model_path, backend)
    if kind == "onnxruntime":
        from .onnx_engine import OnnxEngine
        engine: Engine = OnnxEngine(model_path, device=device, precision=precision,
                                    require_gpu=require_gpu, providers=providers, threads=threads)
    else:
        from .torch_engine import TorchEngine
        engine = TorchEngine(model_path, device=device, precision=precision,
                             require_gpu=require_gpu, threads=threads)
    if warmup:
        height, width = engine.metadata.input_size
        dummy = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(warmup):
            engine.predict(dummy)
    log.info("engine %s on %s (%s), providers %s", engine.backend, engine.device,
             engine.precision, engine.providers)
    return engine
