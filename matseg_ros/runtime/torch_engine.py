"""PyTorch engine for training checkpoints: the whole frame path on the device (CUDA or CPU).

The uint8 frame is uploaded once (from pinned memory, asynchronously, on CUDA), looked up in
the normalisation table and resized on the device, run through the network (fp16 and
channels_last on CUDA, the forward pass replayed as a CUDA graph per batch size), reduced to
ids and confidence there and resized back to the frame's size: only uint8 ids, float32
confidence and, from `predict_rendered`, the palette image cross to the host.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..materials import MaterialMap
from .engine import EngineError, check_frame, normalization_table
from .rendering import check_lut

log = logging.getLogger(__name__)

GRAPH_WARMUPS = 3  # eager runs on a side stream before a capture, as torch.cuda.graphs asks


def frame_to_input(frame, table, size: tuple[int, int], dtype):
    """H×W×3 uint8 frame on the device -> 1×3×h×w model input: each channel looked up in the
    (3, 256) normalisation table (the CPU path's exact values), then resized bilinearly
    (half-pixel centres, as cv2.INTER_LINEAR) when the frame is not at the model's size."""
    import torch
    from torch.nn import functional as F

    height, width = frame.shape[:2]
    channels = frame.permute(2, 0, 1).reshape(3, -1).long()
    x = torch.gather(table, 1, channels).reshape(1, 3, height, width)
    if (height, width) != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return x.to(dtype)


def reduce_logits(logits):
    """N×C×h×w logits -> (uint8 ids, float32 winning softmax probability), N×h×w each."""
    import torch

    confidence, ids = torch.softmax(logits.float(), dim=1).max(dim=1)
    return ids.to(torch.uint8), confidence


def resize_results(ids, confidence, shape: tuple[int, ...]):
    """Model-resolution h×w ids/confidence -> the frame's H×W (nearest / bilinear)."""
    from torch.nn import functional as F

    size = tuple(shape[:2])
    if tuple(ids.shape) == size:
        return ids, confidence
    ids = F.interpolate(ids[None, None].float(), size=size, mode="nearest")[0, 0].to(ids.dtype)
    confidence = F.interpolate(confidence[None, None], size=size, mode="bilinear",
                               align_corners=False)[0, 0]
    return ids, confidence


class TorchEngine:
    backend = "torch"

    def __init__(self, model_path: str | Path, device: str = "auto", precision: str = "auto",
                 require_gpu: bool = False, threads: int = 0, cuda_graphs: bool = True):
        import torch

        from .checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
        from .modelmeta import ModelMetadataError

        path = Path(model_path)
        has_cuda = torch.cuda.is_available()
        if (require_gpu or device == "cuda") and not has_cuda:
            if require_gpu:
                raise EngineError(f"{path}: a GPU is required but torch sees no CUDA device")
            log.warning("device cuda requested but torch sees no CUDA device; using the CPU")
        self.device = "cuda" if has_cuda and device in ("auto", "cuda") else "cpu"
        if precision == "fp16" and self.device == "cpu":
            log.warning("fp16 is only used on CUDA; running fp32 on the CPU")
        self.precision = "fp16" if self.device == "cuda" and precision in ("auto", "fp16") else "fp32"
        if threads and self.device == "cpu":
            torch.set_num_threads(threads)
        try:
            ckpt = load_checkpoint(path)
            model, self.metadata = model_from_checkpoint(ckpt, str(path))
        except (CheckpointError, ModelMetadataError) as exc:
            raise EngineError(str(exc)) from None
        self._torch = torch
        self._dtype = torch.float16 if self.precision == "fp16" else torch.float32
        model = model.to(self.device, dtype=self._dtype)
        if self.device == "cuda":
            model = model.to(memory_format=torch.channels_last)
        self.model = model.eval()
        self.providers = [f"torch:{self.device}"]
        table = normalization_table(self.metadata.mean, self.metadata.std).reshape(256, 3).T
        self._table = torch.from_numpy(np.ascontiguousarray(table)).to(self.device)
        self._pinned: dict[tuple, Any] = {}  # host staging buffer per batch slot and shape
        self._graphs: dict[int, tuple] | None = {} if cuda_graphs and self.device == "cuda" else None
        self._lut: tuple[np.ndarray, Any] | None = None  # the last palette, and its device copy

    @property
    def classes(self) -> MaterialMap:
        return self.metadata.classes

    @property
    def cuda_graphs(self) -> bool:
        """Whether the forward pass is replayed from CUDA graphs (False after a failed capture)."""
        return self._graphs is not None

    def _upload(self, rgb: np.ndarray, slot: int):
        """The frame on the device, copied once: on CUDA through a pinned buffer (one per slot
        of a batch, so a pending asynchronous copy is never overwritten), without waiting."""
        check_frame(rgb)
        if self.device == "cpu":  # a writable contiguous array (a copy only where it is not one)
            return self._torch.from_numpy(np.require(rgb, requirements=("C", "W")))
        key = (slot, rgb.shape)
        if key not in self._pinned:
            self._pinned[key] = self._torch.empty(rgb.shape, dtype=self._torch.uint8, pin_memory=True)
        pinned = self._pinned[key]
        pinned.numpy()[...] = rgb
        return pinned.to(self.device, non_blocking=True)

    def _forward(self, x):
        if self.device == "cuda":
            x = x.contiguous(memory_format=self._torch.channels_last)
        return reduce_logits(self.model(x))

    def _captured(self, x):
        """`_forward(x)` replayed from the CUDA graph for this batch size (captured at its first
        use); eager, with one warning, if a capture fails."""
        torch = self._torch
        batch = x.shape[0]
        if batch not in self._graphs:
            try:
                static_x = x.clone()
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(GRAPH_WARMUPS):
                        self._forward(static_x)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = self._forward(static_x)
            except RuntimeError as exc:
                log.warning("CUDA graph capture of the forward pass at %s failed (%s); running "
                            "eagerly", tuple(x.shape), str(exc).splitlines()[0])
                self._graphs = None
                return self._forward(x)
            self._graphs[batch] = (graph, static_x, static_out)
            log.info("captured a CUDA graph of the forward pass for input %s", tuple(x.shape))
        graph, static_x, static_out = self._graphs[batch]
        static_x.copy_(x)
        graph.replay()
        return static_out

    def _predict_on_device(self, frames: list[np.ndarray]) -> list[tuple[Any, Any]]:
        """Frames -> per-frame (ids, confidence) tensors on the device at each frame's size."""
        torch = self._torch
        size = self.metadata.input_size
        with torch.inference_mode():
            x = torch.cat([frame_to_input(self._upload(rgb, slot), self._table, size, self._dtype)
                           for slot, rgb in enumerate(frames)])
            ids, confidence = self._captured(x) if self._graphs is not None else self._forward(x)
            return [resize_results(ids[i], confidence[i], rgb.shape) for i, rgb in enumerate(frames)]

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_batch([rgb])[0]

    def predict_batch(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Frames of any sizes through one forward pass; uint8 ids and float32 confidence each."""
        if not frames:
            return []
        return [(ids.cpu().numpy(), confidence.cpu().numpy())
                for ids, confidence in self._predict_on_device(frames)]

    def predict_rendered(self, rgb: np.ndarray,
                         lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict` and the palette image `lut[ids]`, looked up on the device."""
        check_lut(lut)
        if self._lut is None or not np.array_equal(self._lut[0], lut):
            self._lut = (lut.copy(), self._torch.from_numpy(np.ascontiguousarray(lut)).to(self.device))
        (ids, confidence), = self._predict_on_device([rgb])
        with self._torch.inference_mode():
            colored = self._lut[1][ids.long()]
        return ids.cpu().numpy(), confidence.cpu().numpy(), colored.cpu().numpy()
