"""ONNX Runtime execution providers: which to ask for, their options, and why one is missing.

onnxruntime-gpu lists the CUDA and TensorRT providers everywhere, also where they cannot
load; the session then falls back silently. This module asks only for what can plausibly
load here, builds the TensorRT options (an engine cache on disk keyed by model, input size,
precision and GPU) and names what is missing when TensorRT cannot start.
"""
from __future__ import annotations

import ctypes
import hashlib
import re
from pathlib import Path

from .engine import EngineError
from .modelmeta import INPUT_NAME

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "cpu": "CPUExecutionProvider"}
GPU_PROVIDERS = {"TensorrtExecutionProvider", "CUDAExecutionProvider"}
CUDA_DEVICE_ID = 0

# where an NVIDIA GPU driver shows itself: desktop/server Linux, WSL2 (GPU paravirtualisation),
# Jetson (L4T: integrated GPU, no /dev/nvidia0)
NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/dxg",
                       "/etc/nv_tegra_release", "/dev/nvhost-ctrl-gpu")
# the TensorRT runtime the TensorRT provider of onnxruntime-gpu 1.2x/1.3x opens (TensorRT 10)
TENSORRT_LIBRARY = "libnvinfer.so.10"
# where a GPU's name is: /proc/driver/nvidia/gpus/<bus id>/information ("Model: ..."), Jetson's model
GPU_INFO_GLOB = "/proc/driver/nvidia/gpus/*/information"
JETSON_MODEL_FILE = "/proc/device-tree/model"
TRT_CACHE_DEFAULT = Path("~/.cache/matseg_ros/trt")
TRT_MAX_BATCH = 8  # the TensorRT optimisation profile covers batches of 1..TRT_MAX_BATCH frames


def nvidia_driver_present() -> bool:
    """True where an NVIDIA driver is present. onnxruntime-gpu lists the CUDA provider
    everywhere and logs library-load errors where it cannot start, so `device=auto` asks
    for CUDA only where a driver exists (and the session then says what really runs)."""
    return any(Path(name).exists() for name in NVIDIA_DRIVER_FILES)


def tensorrt_missing() -> str | None:
    """None where the TensorRT provider can load, else what is missing, in words a user
    can act on (checked in the order ONNX Runtime would fail)."""
    import onnxruntime as ort

    if not nvidia_driver_present():
        return "no NVIDIA driver on this machine"
    if PROVIDERS["tensorrt"] not in ort.get_available_providers():
        return (f"onnxruntime {ort.__version__} has no TensorRT provider "
                "(install onnxruntime-gpu)")
    try:
        ctypes.CDLL(TENSORRT_LIBRARY)
    except OSError:
        return (f"{TENSORRT_LIBRARY} (TensorRT 10) not found: install TensorRT and put its lib "
                "folder on LD_LIBRARY_PATH")
    return None


def requested_providers(device: str, providers: tuple[str, ...] | None) -> list[str]:
    """The providers to ask for, best first: explicit `providers`, else by `device`
    (TensorRT, then CUDA, where a driver is present and TensorRT's runtime loads)."""
    if providers:
        unknown = [p for p in providers if p not in PROVIDERS]
        if unknown:
            raise EngineError(f"unknown provider(s) {unknown}; expected names from {list(PROVIDERS)}")
        names = list(providers)
    elif device == "cpu" or (device == "auto" and not nvidia_driver_present()):
        names = ["cpu"]
    else:
        names = ["cuda", "cpu"] if tensorrt_missing() else ["tensorrt", "cuda", "cpu"]
    return [PROVIDERS[n] for n in names]


def session_options(threads: int = 0, spinning: bool = False):
    """The engine's ONNX Runtime session options (0 threads: ORT's default pool size)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # ORT's pool threads spin after each run by default; on a robot computer they then take
    # CPU from the ROS threads and the camera driver. Off: node throughput / bare 0.75 ->
    # 0.83-0.85, added latency p50 5.2 -> 2.3-3.1 ms on 2 cores (docs/benchmarks/node.md)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


def gpu_name() -> str:
    """The first NVIDIA GPU's model name, read without CUDA libraries ("unknown GPU" if hidden)."""
    for info in sorted(Path("/").glob(GPU_INFO_GLOB.lstrip("/"))):
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith("Model:"):
                return line.split(":", 1)[1].strip()
    jetson = Path(JETSON_MODEL_FILE)
    if jetson.is_file():
        return jetson.read_text(errors="replace").strip("\x00\n ")
    return "unknown GPU"


def tensorrt_cache_dir(root: str | Path, model: bytes, model_name: str, input_size: tuple[int, int],
                       fp16: bool, gpu: str) -> Path:
    """One folder per model (content hash), input size, precision and GPU under `root`
    ("" = ~/.cache/matseg_ros/trt): an engine built for one never loads for another."""
    import onnxruntime as ort

    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower() or "gpu"
    height, width = input_size
    key = (f"{Path(model_name).stem}-{hashlib.sha256(model).hexdigest()[:12]}-{height}x{width}-"
           f"{'fp16' if fp16 else 'fp32'}-{slug}-ort{ort.__version__}")
    return Path(root or TRT_CACHE_DEFAULT).expanduser() / key


def tensorrt_options(input_size: tuple[int, int], fp16: bool, cache_enable: bool,
                     cache_dir: Path) -> dict[str, str | bool | int]:
    """TensorRT provider options: fp16 as asked, an optimisation profile for 1..TRT_MAX_BATCH
    frames at the model's input size (frames are always resized to it, so one profile and one
    engine serve every camera), and the engine cache folder when caching is on."""
    height, width = input_size

    def shape(batch: int) -> str:
        return f"{INPUT_NAME}:{batch}x3x{height}x{width}"

    options: dict[str, str | bool | int] = {
        "device_id": CUDA_DEVICE_ID,
        "trt_fp16_enable": fp16,
        "trt_engine_cache_enable": cache_enable,
        "trt_profile_min_shapes": shape(1),
        "trt_profile_opt_shapes": shape(1),
        "trt_profile_max_shapes": shape(TRT_MAX_BATCH),
    }
    if cache_enable:
        options["trt_engine_cache_path"] = str(cache_dir)
    return options


def cached_engines(cache_dir: Path) -> set[Path]:
    """The engine files ONNX Runtime has written into a cache folder."""
    return set(cache_dir.glob("*.engine")) if cache_dir.is_dir() else set()
