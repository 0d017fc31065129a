"""ONNX Runtime engine: TensorRT/CUDA/CPU providers, reports the providers really in use.

At load time the graph gets a few extra nodes after `logits` (ArgMax for the ids, the
winning softmax probability for the confidence) so both come out of ONNX Runtime directly:
on a GPU only two small H×W arrays cross to the host (IO binding: the input is uploaded into
one device buffer, the outputs stay on the device until copied), on a CPU the reduction runs
in ORT's threads. On the CPU provider each PRelu is also rewritten as Relu/Mul/Add
(`rewrite_prelu`). int8 models (`matseg export --int8`) run on the CPU provider only.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..materials import MaterialMap
from .engine import EngineError, int8_command, preprocess_batch, restore_size
from .modelmeta import INPUT_NAME, OUTPUT_NAME, ModelMetadata, ModelMetadataError
from .ort_providers import (CUDA_DEVICE_ID, GPU_PROVIDERS, PROVIDERS, cached_engines, gpu_name,
                            requested_providers, session_options, tensorrt_cache_dir,
                            tensorrt_missing, tensorrt_options)
from .rendering import colorize

log = logging.getLogger(__name__)

IDS_NAME, CONFIDENCE_NAME = "matseg_ids", "matseg_confidence"
AXIS1_NAME = "matseg_axis1"


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


def check_int8(path: Path, meta: ModelMetadata, precision: str, device: str,
               require_gpu: bool) -> bool:
    """Whether the file is an int8 model, refusing the combinations that would silently run
    another precision or another device than asked."""
    is_int8 = meta.precision == "int8"
    if precision == "int8" and not is_int8:
        raise EngineError(f"{path}: precision int8 asked but this model is {meta.precision}, without "
                          f"int8 calibration; make one with `{int8_command(path)}`")
    if is_int8 and precision in ("fp32", "fp16"):
        raise EngineError(f"{path}: an int8 model (calibrated on {meta.calibration.get('data')}) "
                          f"cannot run in {precision}; open the {precision} model instead")
    if is_int8 and (device == "cuda" or require_gpu):
        raise EngineError(f"{path}: int8 models run on ONNX Runtime's CPU provider only; for a GPU "
                          "use the fp32 model (fp16 on TensorRT/torch), or device cpu")
    return is_int8


class TensorrtBuild:
    """The TensorRT provider's options and engine cache for one session, and the log lines
    saying whether an engine is being built (minutes) or loaded from the cache (seconds)."""

    def __init__(self, model_name: str, serialized: bytes, input_size: tuple[int, int], fp16: bool,
                 cache_enable: bool, cache_path: str | Path):
        self.model_name, self.input_size, self.cache_enable = model_name, input_size, cache_enable
        self.cache_dir = tensorrt_cache_dir(cache_path, serialized, model_name, input_size, fp16,
                                            gpu_name())
        self.options = tensorrt_options(input_size, fp16, cache_enable, self.cache_dir)
        if cache_enable:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.cached = cached_engines(self.cache_dir) if cache_enable else set()
        self.started = time.monotonic()
        if not self.cached:
            log.info("TensorRT: building an engine for %s (%d×%d, %s); this takes minutes%s",
                     model_name, *input_size, "fp16" if fp16 else "fp32",
                     f", then it is cached in {self.cache_dir}" if cache_enable else " (cache off)")

    def report(self) -> None:
        """After the first run, which is when TensorRT has built (or loaded) its engine."""
        seconds = time.monotonic() - self.started
        if self.cached and cached_engines(self.cache_dir) == self.cached:
            log.info("TensorRT engine for %s loaded from %s in %.1f s", self.model_name,
                     self.cache_dir, seconds)
        else:
            log.info("TensorRT engine for %s built in %.1f s", self.model_name, seconds)


class OnnxEngine:
    backend = "onnxruntime"

    def __init__(self, model_path: str | Path, device: str = "auto", precision: str = "auto",
                 require_gpu: bool = False, providers: tuple[str, ...] | None = None,
                 threads: int = 0, spinning: bool = False, trt_engine_cache_enable: bool = True,
                 trt_engine_cache_path: str | Path = ""):
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
        is_int8 = check_int8(path, self.metadata, precision, device, require_gpu)

        wanted = [PROVIDERS["cpu"]] if is_int8 else requested_providers(device, providers)
        available = set(ort.get_available_providers())
        chosen: list = [p for p in wanted if p in available] or [PROVIDERS["cpu"]]
        if chosen[0] == PROVIDERS["cpu"]:
            rewrite_prelu(model)
        fp16_input = model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
        trt_fp16 = fp16_input or precision in ("auto", "fp16")
        serialized = model.SerializeToString()
        trt = None
        if chosen[0] == PROVIDERS["tensorrt"]:
            trt = TensorrtBuild(path.name, serialized, self.metadata.input_size, trt_fp16,
                                trt_engine_cache_enable, trt_engine_cache_path)
            chosen[0] = (chosen[0], trt.options)
        try:
            self.session = ort.InferenceSession(serialized, session_options(threads, spinning),
                                                providers=chosen)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
            raise EngineError(f"{path}: ONNX Runtime cannot load the model: {exc}") from None
        self.providers = list(self.session.get_providers())
        on_gpu = bool(GPU_PROVIDERS & set(self.providers))
        if require_gpu and not on_gpu:
            raise EngineError(f"{path}: a GPU is required but ONNX Runtime runs on "
                              f"{self.providers} (requested {wanted})")
        if not on_gpu and any(p in GPU_PROVIDERS for p in wanted) and device == "cuda":
            log.warning("CUDA requested but not usable; ONNX Runtime falls back to %s", self.providers)
        on_trt = self.providers[0] == PROVIDERS["tensorrt"]
        if PROVIDERS["tensorrt"] in wanted and not on_trt:
            log.warning("TensorRT provider not in use (%s); running on %s",
                        tensorrt_missing() or "it failed to start", self.providers)
        self.device = "cuda" if on_gpu else "cpu"
        self._dtype = np.float16 if fp16_input else np.float32
        self.precision = "int8" if is_int8 else "fp16" if fp16_input or (on_trt and trt_fp16) else "fp32"
        if precision == "fp16" and self.precision != "fp16":
            log.warning("%s: precision fp16 needs a model exported with --fp16 (or TensorRT); "
                        "running fp32", path)
        self._binding = self.session.io_binding() if on_gpu else None
        self._input = None  # the device buffer IO binding feeds, made at the first batch's shape
        if self._binding is not None:
            for name in (IDS_NAME, CONFIDENCE_NAME):
                self._binding.bind_output(name, "cuda", CUDA_DEVICE_ID)
        if trt is not None and on_trt:
            height, width = self.metadata.input_size
            self.predict(np.zeros((height, width, 3), np.uint8))
            trt.report()

    @property
    def classes(self) -> MaterialMap:
        return self.metadata.classes

    def _infer(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """N×3×h×w input -> ids and confidence, N×h×w each, as numpy arrays."""
        if self._binding is None:
            ids, confidence = self.session.run([IDS_NAME, CONFIDENCE_NAME], {INPUT_NAME: x})
            return ids, confidence
        import onnxruntime as ort

        if self._input is None or self._input.shape() != list(x.shape):
            self._input = ort.OrtValue.ortvalue_from_numpy(x, "cuda", CUDA_DEVICE_ID)
            self._binding.bind_ortvalue_input(INPUT_NAME, self._input)
        else:
            self._input.update_inplace(x)
        self.session.run_with_iobinding(self._binding)
        ids, confidence = self._binding.copy_outputs_to_cpu()
        return ids, confidence

    def predict(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.predict_batch([rgb])[0]

    def predict_batch(self, frames: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Frames of any sizes in one run of the graph (its batch axis is dynamic)."""
        if not frames:
            return []
        x = preprocess_batch(frames, self.metadata).astype(self._dtype, copy=False)
        ids, confidence = self._infer(x)
        return [restore_size(ids[i], confidence[i], rgb.shape) for i, rgb in enumerate(frames)]

    def predict_rendered(self, rgb: np.ndarray,
                         lut: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`predict` and the palette image `lut[ids]` (rendered on the CPU)."""
        ids, confidence = self.predict(rgb)
        return ids, confidence, colorize(ids, lut)
