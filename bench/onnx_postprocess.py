"""Cost of the ids/confidence nodes the ONNX engine appends after `logits`.

    python bench/onnx_postprocess.py [--model models/default.onnx] [--height 384] [--width 512]
                                     [--repeats 30] [--output docs/benchmarks/onnx_postprocess.md]

One ONNX Runtime CPU session per graph, built with the engine's own session options
(`onnx_engine.session_options`: pool threads do not spin): the bare network (`logits` only); the engine's graph
(`onnx_engine.add_postprocessing`: ArgMax, and the confidence as 1 / sum(exp(logits - max)));
and the graph the engine used before, ArgMax plus Softmax(axis=1) and ReduceMax. Each
gets the same random input of the model's size; the median of --repeats runs after three
warm-ups is reported, with the ids and confidence of the two full graphs compared.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from matseg_ros.modelmeta import INPUT_NAME, OUTPUT_NAME  # noqa: E402
from matseg_ros.onnx_engine import (CONFIDENCE_NAME, IDS_NAME, add_postprocessing,  # noqa: E402
                                    session_options)

from _report import emit, machine_lines  # noqa: E402

BARE = "bare network (logits)"
ENGINE = "engine: ArgMax + 1/sum(exp(logits - max))"
BEFORE = "before: ArgMax + Softmax(axis=1) + ReduceMax"


def add_softmax_postprocessing(model) -> None:
    """The previous graph: Softmax over the class axis, then ReduceMax; ArgMax for the ids."""
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


def session(model):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString(), session_options(),
                                providers=["CPUExecutionProvider"])


def median_ms(sess, x: np.ndarray, repeats: int) -> float:
    for _ in range(3):
        sess.run(None, {INPUT_NAME: x})
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, {INPUT_NAME: x})
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    import onnx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "default.onnx"))
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", help="markdown file (e.g. docs/benchmarks/onnx_postprocess.md)")
    args, _ = parser.parse_known_args()  # tolerate bench/run_all.py's shared arguments
    if not Path(args.model).is_file():
        print(f"{args.model}: model file not found", file=sys.stderr)
        return 1
    x = np.random.default_rng(0).standard_normal((1, 3, args.height, args.width), dtype=np.float32)
    graphs = {BARE: onnx.load(args.model)}
    for name, add in [(ENGINE, add_postprocessing), (BEFORE, add_softmax_postprocessing)]:
        graphs[name] = onnx.load(args.model)
        add(graphs[name])
    sessions = {name: session(model) for name, model in graphs.items()}
    times = {name: median_ms(sess, x, args.repeats) for name, sess in sessions.items()}
    (ids_new, conf_new), (ids_old, conf_old) = [
        sessions[name].run([IDS_NAME, CONFIDENCE_NAME], {INPUT_NAME: x}) for name in (ENGINE, BEFORE)]
    bare = times[BARE]
    lines = [
        "## ONNX Runtime: the engine's ids/confidence nodes",
        "",
        *machine_lines(),
        "",
        f"Model `{Path(args.model).name}`, input 1×3×{args.height}×{args.width}, CPU provider, "
        f"median of {args.repeats} runs after 3 warm-ups.",
        "",
        "| graph | ms | added to the bare network |",
        "|---|---:|---:|",
        *[f"| {name} | {ms:.1f} | {ms - bare:+.1f} ms |" for name, ms in times.items()],
        "",
        f"Before / engine: **{times[BEFORE] / times[ENGINE]:.2f}×**. "
        f"Same ids: {np.mean(ids_new == ids_old):.4%} of pixels; confidence max |difference| "
        f"{np.abs(conf_new - conf_old).max():.1e}.",
    ]
    emit(lines, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
