"""PyTorch engine for training checkpoints: CUDA with fp16 and channels_last, or CPU."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..materials import MaterialMap
from .engine import EngineError, preprocess, restore_size

log = logging.getLogger(__name__)


class TorchEngine:
    backend = "torch"

    def __init__(self, model_path: str | Path, device: str = "auto", precision: str = "auto",
                 require_gpu: bool = False, threads: int = 0):
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

    @property
    def classes(self) -> MaterialMap:
        return self.metadata.classes

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        x = torch.from_numpy(preprocess(rgb, self.metadata)).to(self.device, dtype=self._dtype)
        if self.device == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            logits = self.model(x)
            confidence, ids = torch.softmax(logits.float(), dim=1).max(dim=1)
        ids_np = ids[0].to(torch.uint8).cpu().numpy()
        conf_np = confidence[0].cpu().numpy().astype(np.float32, copy=False)
        return restore_size(ids_np, conf_np, rgb.shape)
