"""Logits from a model file, in single, multiscale or sliding-window mode.

The model file alone suffices: a checkpoint or an exported ONNX model carries its class
map, normalisation and input size. Unlike the runtime engine (which resizes frames to the
model's input size and returns ids), evaluation and offline inference need logits at the
image's own resolution so they can be averaged over scales, flips and tiles before argmax.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from ..runtime.modelmeta import INPUT_NAME, OUTPUT_NAME, ModelMetadata, ModelMetadataError
from .transforms import to_tensors

Forward = Callable[[torch.Tensor], torch.Tensor]  # normalised N×3×H×W -> logits N×C×H×W
MODES = ("single", "multiscale", "sliding", "node")
DEFAULT_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


class PredictError(RuntimeError):
    """A model file that cannot be used for prediction; the message names it."""


def load_model(path: str | Path, device: str = "auto"
               ) -> tuple[Forward, ModelMetadata, torch.device, dict[str, Any]]:
    """(forward, metadata, device, training config) for a .pt/.pth checkpoint or an .onnx model.

    The training config is the one a checkpoint carries (empty for ONNX models and slim
    checkpoints without one); the file is read once for both.
    """
    path = Path(path)
    if not path.is_file():
        raise PredictError(f"{path}: model file not found")
    want_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if device == "cuda" and not torch.cuda.is_available():
        raise PredictError("--device cuda: torch sees no CUDA device")
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path, want_cuda)
    if path.suffix.lower() not in (".pt", ".pth"):
        raise PredictError(f"{path}: expected a .pt/.pth checkpoint or an .onnx model")
    try:
        ckpt = load_checkpoint(path)
        model, meta = model_from_checkpoint(ckpt, str(path))
    except (CheckpointError, ModelMetadataError) as exc:
        raise PredictError(str(exc)) from None
    dev = torch.device("cuda" if want_cuda else "cpu")
    model = model.to(dev).eval()

    @torch.inference_mode()
    def forward(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=dev.type == "cuda"):
            out = model(x.to(dev))
        return (out[0] if isinstance(out, (tuple, list)) else out).float()

    return forward, meta, dev, ckpt.get("config") or {}


def _load_onnx(path: Path, want_cuda: bool
               ) -> tuple[Forward, ModelMetadata, torch.device, dict[str, Any]]:
    import onnx
    import onnxruntime as ort

    from ..runtime.onnx_engine import rewrite_prelu

    providers = (["CUDAExecutionProvider"] if want_cuda else []) + ["CPUExecutionProvider"]
    try:
        model = onnx.load(str(path))
        if not want_cuda:
            rewrite_prelu(model)  # the same function, faster on ORT's CPU provider
        session = ort.InferenceSession(model.SerializeToString(), providers=providers)
    except Exception as exc:  # onnx and ORT raise their own exception types
        raise PredictError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None
    props = session.get_modelmeta().custom_metadata_map
    try:
        meta = ModelMetadata.from_props(props, str(path))
    except ModelMetadataError as exc:
        raise PredictError(str(exc)) from None
    dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = session.run([OUTPUT_NAME], {INPUT_NAME: x.cpu().numpy().astype(dtype, copy=False)})[0]
        return torch.from_numpy(out.astype(np.float32, copy=False))

    return forward, meta, torch.device("cpu"), {}


def image_tensor(rgb: np.ndarray, meta: ModelMetadata) -> torch.Tensor:
    """uint8 RGB H×W×3 -> normalised 1×3×H×W at its own size."""
    image, _ = to_tensors(rgb, np.zeros(rgb.shape[:2], np.uint8), meta.mean, meta.std)
    return image[None]


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def single(forward: Forward, x: torch.Tensor) -> torch.Tensor:
    return _resize(forward(x), tuple(x.shape[-2:]))


def node(forward: Forward, x: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """As segment_node runs a model: the image resized to the model's input size and the
    logits resized back (the engine resizes the ids instead; edges may differ by a pixel)."""
    return _resize(forward(_resize(x, tuple(input_size))), tuple(x.shape[-2:]))


def multiscale(forward: Forward, x: torch.Tensor, scales: Sequence[float] = DEFAULT_SCALES,
               flip: bool = True) -> torch.Tensor:
    """Logits averaged over scales (and horizontal flips, run in the same batch) before argmax."""
    size = tuple(x.shape[-2:])
    total = None
    for scale in scales:
        scaled = _resize(x, (max(1, round(size[0] * scale)), max(1, round(size[1] * scale))))
        batch = torch.cat([scaled, scaled.flip(-1)]) if flip else scaled
        logits = _resize(forward(batch), size)
        summed = logits[:x.shape[0]] + (logits[x.shape[0]:].flip(-1) if flip else 0)
        total = summed if total is None else total + summed
    return total / (len(scales) * (2 if flip else 1))


def sliding(forward: Forward, x: torch.Tensor, tile: tuple[int, int], overlap: float = 1 / 3,
            batch: int = 8) -> torch.Tensor:
    """Overlapping tiles (image padded up to a tile), logits averaged where tiles overlap."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    n, _, height, width = x.shape
    th, tw = tile
    padded = F.pad(x, (0, max(0, tw - width), 0, max(0, th - height)))
    ph, pw = padded.shape[-2:]
    sh, sw = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))
    rows = [min(r * sh, ph - th) for r in range(math.ceil((ph - th) / sh) + 1)]
    cols = [min(c * sw, pw - tw) for c in range(math.ceil((pw - tw) / sw) + 1)]
    boxes = sorted({(r, c) for r in rows for c in cols})
    total, count = None, torch.zeros(1, 1, ph, pw)
    for start in range(0, len(boxes), batch):
        chunk = boxes[start:start + batch]
        tiles = torch.cat([padded[:, :, r:r + th, c:c + tw] for r, c in chunk])
        logits = forward(tiles).cpu()
        if total is None:
            total = torch.zeros(n, logits.shape[1], ph, pw)
        for k, (r, c) in enumerate(chunk):
            total[:, :, r:r + th, c:c + tw] += logits[k * n:(k + 1) * n]
            count[:, :, r:r + th, c:c + tw] += 1
    return (total / count)[:, :, :height, :width]


def predict_logits(forward: Forward, x: torch.Tensor, mode: str = "single",
                   scales: Sequence[float] = DEFAULT_SCALES, flip: bool = True,
                   tile: tuple[int, int] | None = None, overlap: float = 1 / 3,
                   input_size: tuple[int, int] | None = None) -> torch.Tensor:
    if mode == "single":
        return single(forward, x)
    if mode == "node":
        if input_size is None:
            raise ValueError("node mode needs the model's input size")
        return node(forward, x, input_size)
    if mode == "multiscale":
        return multiscale(forward, x, scales, flip)
    if mode == "sliding":
        if tile is None:
            raise ValueError("sliding mode needs a tile size")
        return sliding(forward, x, tile, overlap)
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
