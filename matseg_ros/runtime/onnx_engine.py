"""ONNX Runtime engine: TensorRT/CUDA/CPU providers, reports the providers really in use.

At load time the graph gets a few extra nodes after `logits` (ArgMax for the ids, the
winning softmax probability for the confidence) so both come out of ONNX Runtime directly:
on a GPU only two small H×W arrays cross to the host, on a CPU the reduction runs in ORT's
threads. On the CPU provider each PRelu is also rewritten as Relu/Mul/Add (`rewrite_prelu`).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..materials import MaterialMap
from .engine import EngineError, preprocess, restore_size
from .modelmeta import INPUT_NAME, OUTPUT_NAME, ModelMetadata, ModelMetadataError

log = logging.getLogger(__name__)

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "cpu": "CPUExecutionProvider"}
GPU_PROVIDERS = {"TensorrtExecutionProvider", "CUDAExecutionProvider"}
IDS_NAME, CONFIDENCE_NAME = "matseg_ids", "matseg_confidence"
AXIS1_NAME = "matseg_axis1"


# where an NVIDIA GPU driver shows itself: desktop/server Linux, WSL2 (GPU paravirtualisation),
# Jetson (L4T: integrated GPU, no /dev/nvidia0)
NVIDIA_DRIVER_FILES = ("/proc/driver/nvidia/version", "/dev/nvidia0", "/dev/dxg",
                       "/etc/nv_tegra_release", "/dev/nvhost-ctrl-gpu")


def nvidia_driver_present() -> bool:
    """True where an NVIDIA driver is present. onnxruntime-gpu lists the CUDA provider
    everywhere and logs library-load errors where it cannot start, so `device=auto` asks
    for CUDA only where a driver exists (and the session then says what really runs)."""
    return any(Path(name).exists() for name in NVIDIA_DRIVER_FILES)


def requested_providers(device: str, providers: tuple[str, ...] | None) -> list[str]:
    if providers:
        unknown = [p for p in providers if p not in PROVIDERS]
        if unknown:
            raise EngineError(f"unknown provider(s) {unknown}; expected names from {list(PROVIDERS)}")
        names = list(providers)
    else:
        auto = ["cuda", "cpu"] if nvidia_driver_present() else ["cpu"]
        names = {"auto": auto, "cuda": ["cuda", "cpu"], "cpu": ["cpu"]}[device]
    return [PROVIDERS[n] for n in names]


def session_options(threads: int = 0):
    """The engine's ONNX Runtime session options (0 threads: ORT's default pool size)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # ORT's pool threads spin after each run by default; on a robot computer they then take
    # CPU from the ROS threads and the camera driver. Off: node throughput / bare 0.75 ->
    # 0.83-0.85, added latency p50 5.2 -> 2.3-3.1 ms on 2 cores (docs/benchmarks/node.md)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


def reduce_node(op: str, data: str, output: str, axes_input: bool, **attrs):
    """A Reduce* node over the class axis: axes as an input where the opset takes them so
    (ReduceSum from 13, ReduceMax from 18), as an attribute before."""
    from onnx import helper

    if axes_input:
        return helper.make_node(op, [data, AXIS1_NAME], [output], name=output, **attrs)
    return helper.make_node(op, [data], [output], axes=[1], name=output, **attrs)


def rewrite_prelu(model) -> int:
    """Replace each PRelu whose slope is a constant by Relu(x)·(1 − slope) + x·slope (the
    same function; for x > 0 up to one rounding). ONNX Runtime's CPU provider has no PRelu
    in its blocked NCHWc layout: every PRelu costs a layout reorder on each side and a slow
    broadcast, while Relu, Mul and Add mostly stay in that layout (ENet, 67 PRelus: the
    graph 1.20-1.23× faster, docs/benchmarks.md). Returns the number of nodes replaced."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    nodes, slopes, replaced = [], set(), 0
    for node in graph.node:
        if node.op_type != "PRelu" or node.input[1] not in constants:
            nodes.append(node)
            continue
        x, y, slope_name = node.input[0], node.output[0], node.input[1]
        slope = numpy_helper.to_array(constants[slope_name])  # its own dtype: fp16 models too
        name = f"matseg_prelu{replaced}"
        graph.initializer.extend([numpy_helper.from_array(slope, f"{name}_slope"),
                                  numpy_helper.from_array(1 - slope, f"{name}_keep")])
        nodes += [helper.make_node("Relu", [x], [f"{name}_relu"], name=f"{name}_relu"),
                  helper.make_node("Mul", [f"{name}_relu", f"{name}_keep"], [f"{name}_pos"],
                                   name=f"{name}_pos"),
                  helper.make_node("Mul", [x, f"{name}_slope"], [f"{name}_neg"], name=f"{name}_neg"),
                  helper.make_node("Add", [f"{name}_pos", f"{name}_neg"], [y], name=f"{name}_add")]
        slopes.add(slope_name)
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    for slope_name in slopes - used:  # the original slopes no node reads any more
        graph.initializer.remove(constants[slope_name])
    return replaced


def add_postprocessing(model) -> None:
    """Append ids = ArgMax(logits) and confidence = max softmax = 1 / sum(exp(logits - max))
    after the logits output. The confidence is built from element-wise ops and reductions
    rather than Softmax(axis=1): on ONNX Runtime's CPU provider that Softmax took 44-49 ms of a
    105-113 ms run on a 9×384×512 output, these ops 3-4 ms (docs/benchmarks.md)."""
    from onnx import TensorProto, helper

    graph = model.graph
    outputs = [o.name for o in graph.output]
    if OUTPUT_NAME not in outputs:
        raise ModelMetadataError(f"model output must be named {OUTPUT_NAME!r}, got {outputs}")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=17)
    graph.initializer.append(helper.make_tensor(AXIS1_NAME, TensorProto.INT64, [1], [1]))
    graph.node.extend([
        reduce_node("ReduceMax", OUTPUT_NAME, "matseg_max", opset >= 18, keepdims=1),
        helper.make_node("Sub", [OUTPUT_NAME, "matseg_max"], ["matseg_shifted"], name="matseg_sub"),
        helper.make_node("Exp", ["matseg_shifted"], ["matseg_exp"], name="matseg_exp"),
        reduce_node("ReduceSum", "matseg_exp", "matseg_sum", opset >= 13, keepdims=0),
        helper.make_node("Reciprocal", ["matseg_sum"], ["matseg_conf_raw"], name="matseg_reciprocal"),
        helper.make_node("Cast", ["matseg_conf_raw"], [CONFIDENCE_NAME], to=TensorProto.FLOAT,
                         name="matseg_cast_conf"),
        helper.make_node("ArgMax", [OUTPUT_NAME], ["matseg_ids64"], axis=1, keepdims=0,
                         name="matseg_argmax"),
        helper.make_node("Cast", ["matseg_ids64"], [IDS_NAME], to=TensorProto.UINT8,
                         name="matseg_cast_ids"),
    ])
    del graph.output[:]
    graph.output.extend([
        helper.make_tensor_value_info(IDS_NAME, TensorProto.UINT8, None),
        helper.make_tensor_value_info(CONFIDENCE_NAME, TensorProto.FLOAT, None),
    ])


class OnnxEngine:
    backend = "onnxruntime"

    def __init__(self, model_path: str | Path, device: str = "auto", precision: str = "auto",
                 require_gpu: bool = False, providers: tuple[str, ...] | None = None,
                 threads: int = 0):
        import onnx
        import onnxruntime as ort

        path = Path(model_path)
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError/ValueError/OSError variants
            raise EngineError(f"{path}: cannot read ONNX model: {exc}") from None
        props = {p.key: p.value for p in model.metadata_props}
        try:
            self.metadata = ModelMetadata.from_props(props, str(path))
            inputs = [i.name for i in model.graph.input]
            if INPUT_NAME not in inputs:
                raise ModelMetadataError(f"model input must be named {INPUT_NAME!r}, got {inputs}")
            add_postprocessing(model)
        except ModelMetadataError as exc:
            raise EngineError(str(exc)) from None

        wanted = requested_providers(device, providers)
        available = set(ort.get_available_providers())
        chosen = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        if chosen[0] == "CPUExecutionProvider":
            rewrite_prelu(model)
        options = session_options(threads)
        try:
            self.session = ort.InferenceSession(model.SerializeToString(), options, providers=chosen)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise EngineError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None
        self.providers = list(self.session.get_providers())
        on_gpu = bool(GPU_PROVIDERS & set(self.providers))
        if require_gpu and not on_gpu:
            raise EngineError(f"{path}: a GPU is required but ONNX Runtime runs on "
                              f"{self.providers} (requested {wanted})")
        if not on_gpu and any(p in GPU_PROVIDERS for p in wanted) and device == "cuda":
            log.warning("CUDA requested but not usable; ONNX Runtime falls back to %s", self.providers)
        self.device = "cuda" if on_gpu else "cpu"
        input_type = self.session.get_inputs()[0].type
        self._dtype = np.float16 if "float16" in input_type else np.float32
        self.precision = "fp16" if self._dtype == np.float16 else "fp32"
        if precision == "fp16" and self.precision != "fp16":
            log.warning("%s: precision fp16 needs a model exported with --fp16; running fp32", path)

    @property
    def classes(self) -> MaterialMap:
        return self.metadata.classes

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = preprocess(rgb, self.metadata).astype(self._dtype, copy=False)
        ids, confidence = self.session.run([IDS_NAME, CONFIDENCE_NAME], {INPUT_NAME: x})
        return restore_size(ids[0], confidence[0], rgb.shape)
