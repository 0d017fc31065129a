"""What the ONNX engine's CPU-side choices cost and save, each against what it replaced.

    python bench/engine_cpu.py [--model models/default.onnx] [--sizes 384x512 480x640]
                               [--repeats 30] [--output docs/benchmarks/engine_cpu.md]

Graphs, one ONNX Runtime CPU session each, built with the engine's own session options
(`ort_providers.session_options`: pool threads do not spin), all given the same random input
at each size; the median of --repeats runs after three warm-ups is reported:
- the bare network (`logits` only);
- the ids/confidence nodes the engine appends (`onnx_engine.add_postprocessing`: ArgMax,
  and the confidence as 1 / sum(exp(logits - max))), against the Softmax(axis=1) + ReduceMax
  nodes it used before;
- the engine's graph as it now runs on a CPU, each constant-slope PRelu rewritten as
  Relu/Mul/Add (`onnx_engine.rewrite_prelu`), against the same graph with PRelu.
Outputs are compared between each pair. The normalisation of a 640×480 frame
(`engine.normalize`, a per-channel table) is timed against the per-pixel float arithmetic
it replaced, and the two results compared bitwise.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.runtime.engine import normalize  # noqa: E402
from matseg_ros.runtime.modelmeta import INPUT_NAME, OUTPUT_NAME  # noqa: E402
from matseg_ros.runtime.onnx_engine import (CONFIDENCE_NAME, IDS_NAME, add_postprocessing,  # noqa: E402
                                            rewrite_prelu)
from matseg_ros.runtime.ort_providers import session_options  # noqa: E402

from _report import emit, machine_lines, median_ms  # noqa: E402

BARE = "bare network (logits)"
SOFTMAX = "ArgMax + Softmax(axis=1) + ReduceMax (before)"
POSTPROCESS = "ArgMax + 1/sum(exp(logits - max)), PRelu kept (before)"
ENGINE = "engine on a CPU: the same with PRelu as Relu/Mul/Add"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def add_softmax_postprocessing(model) -> None:
    """The earlier graph: Softmax over the class axis, then ReduceMax; ArgMax for the ids."""
    from onnx import TensorProto, helper

    graph = model.graph
    graph.node.extend([
        helper.make_node("Softmax", [OUTPUT_NAME], ["prob"], axis=1),
        helper.make_node("ReduceMax", ["prob"], [CONFIDENCE_NAME], axes=[1], keepdims=0),
        helper.make_node("ArgMax", [OUTPUT_NAME], ["ids64"], axis=1, keepdims=0),
        helper.make_node("Cast", ["ids64"], [IDS_NAME], to=TensorProto.UINT8),
    ])
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(IDS_NAME, TensorProto.UINT8, None),
                         helper.make_tensor_value_info(CONFIDENCE_NAME, TensorProto.FLOAT, None)])


def graphs(path: str) -> dict:
    import onnx

    def built(*steps):
        model = onnx.load(path)
        for step in steps:
            step(model)
        return model

    return {BARE: built(), SOFTMAX: built(add_softmax_postprocessing),
            POSTPROCESS: built(add_postprocessing), ENGINE: built(rewrite_prelu, add_postprocessing)}


def session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])


def per_pixel_normalize(rgb: np.ndarray) -> np.ndarray:
    """The normalisation `engine.normalize` used before its table."""
    x = (rgb.astype(np.float32) * np.float32(1.0 / 255.0) - np.asarray(MEAN, dtype=np.float32)) \
        * (1.0 / np.asarray(STD, dtype=np.float32))
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def normalisation_lines(repeats: int) -> list[str]:
    rgb = np.random.default_rng(0).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    before = median_ms(lambda: per_pixel_normalize(rgb), repeats)
    table = median_ms(lambda: normalize(rgb, MEAN, STD), repeats)
    same = np.array_equal(per_pixel_normalize(rgb), normalize(rgb, MEAN, STD))
    return ["### Normalising a 640×480 frame", "",
            "| method | ms |", "|---|---:|",
            f"| per-pixel float arithmetic (before) | {before:.2f} |",
            f"| `engine.normalize`: a per-channel table (cv2.LUT) | {table:.2f} |", "",
            f"Before / table: **{before / table:.2f}×**; results bitwise equal: {same}.", ""]


def size_lines(models: dict, height: int, width: int, repeats: int) -> list[str]:
    x = np.random.default_rng(0).standard_normal((1, 3, height, width), dtype=np.float32)
    sessions = {name: session(model) for name, model in models.items()}
    times = {name: median_ms(lambda s=sess: s.run(None, {INPUT_NAME: x}), repeats)
             for name, sess in sessions.items()}
    out = {name: sessions[name].run([IDS_NAME, CONFIDENCE_NAME], {INPUT_NAME: x})
           for name in (SOFTMAX, POSTPROCESS, ENGINE)}

    def compare(a: str, b: str) -> str:
        (ids_a, conf_a), (ids_b, conf_b) = out[a], out[b]
        return (f"same ids on {np.mean(ids_a == ids_b):.4%} of pixels, confidence max "
                f"|difference| {np.abs(conf_a - conf_b).max():.1e}")

    bare = times[BARE]
    return [f"### Input 1×3×{height}×{width}", "",
            "| graph | ms | added to the bare network |", "|---|---:|---:|",
            *[f"| {name} | {ms:.1f} | {ms - bare:+.1f} ms |" for name, ms in times.items()], "",
            f"- Softmax nodes / engine's ids and confidence nodes (both with PRelu): "
            f"**{times[SOFTMAX] / times[POSTPROCESS]:.2f}×**; {compare(SOFTMAX, POSTPROCESS)}.",
            f"- PRelu kept / PRelu as Relu/Mul/Add: **{times[POSTPROCESS] / times[ENGINE]:.2f}×**; "
            f"{compare(POSTPROCESS, ENGINE)}.",
            f"- Before both changes / the engine now: **{times[SOFTMAX] / times[ENGINE]:.2f}×**.", ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default.onnx"))
    parser.add_argument("--sizes", nargs="+", default=["384x512", "480x640"],
                        help="input sizes HxW to time the graphs at")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", help="markdown file (e.g. docs/benchmarks/engine_cpu.md)")
    args, _ = parser.parse_known_args()  # tolerate bench/run_all.py's shared arguments
    if not Path(args.model).is_file():
        print(f"{args.model}: model file not found", file=sys.stderr)
        return 1
    try:
        sizes = [tuple(int(v) for v in size.lower().split("x")) for size in args.sizes]
    except ValueError:
        print(f"--sizes: expected HxW values such as 480x640, got {args.sizes}", file=sys.stderr)
        return 2
    models = graphs(args.model)
    lines = ["## The ONNX engine on a CPU", "", *machine_lines(), "",
             f"Model `{Path(args.model).name}` ({sum(n.op_type == 'PRelu' for n in models[BARE].graph.node)} "
             f"PRelu nodes), CPU provider, median of {args.repeats} runs after 3 warm-ups.", ""]
    for height, width in sizes:
        lines += size_lines(models, height, width, args.repeats)
    lines += normalisation_lines(args.repeats)
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
