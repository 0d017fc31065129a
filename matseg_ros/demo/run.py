"""`matseg demo`: the segmentation node on the shipped model, over real DDS, end to end.

Starts `segment_node` and `camera_replay` as separate processes (as on a robot),
replays a sample sequence (the synthetic rooms with their depth and calibration, so the
node runs with `use_depth`), collects the node's outputs with a subscriber and writes
overlays, palette masks, one material cloud and `summary.json` (materials per frame,
areas, distances, UV-C dwell, rates, latency) under the output folder. Child processes
are always stopped, also on Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..fileio import atomic_path, atomic_write_text
from .frames import rooms_available

NODE = "/matseg"
CAMERA_TOPIC = "/camera/image_raw"
DEPTH_TOPIC = "/camera/depth/image_raw"   # segment.launch.py's defaults, camera_replay's names
INFO_TOPIC = "/camera/camera_info"
READY_TIMEOUT_S = 90.0
SETTLE_S = 3.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped models/default.onnx)")
    parser.add_argument("--images", type=Path, default=None,
                        help="replay this image folder instead of the built-in sample sequence")
    parser.add_argument("--frames", type=int, default=30, help="frames of the sample sequence (default 30)")
    parser.add_argument("--size", default="480x640", help="HxW of the sample sequence (default 480x640)")
    parser.add_argument("--rate", type=float, default=5.0, help="replay rate in Hz (default 5)")
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))


def child_env() -> dict[str, str]:
    """Environment for the demo's processes: DDS on this machine, large-image SHM profile."""
    from ..paths import use_fastdds_profile
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    use_fastdds_profile(env)
    return env


def ros_command(module: str, params: dict[str, Any], remaps: dict[str, str] | None = None) -> list[str]:
    args = [sys.executable, "-m", module, "--ros-args"]
    for key, value in params.items():
        value = str(value).lower() if isinstance(value, bool) else value
        args += ["-p", f"{key}:={value}"]
    for old, new in (remaps or {}).items():
        args += ["-r", f"{old}:={new}"]
    return args


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGINT (a clean ROS shutdown), then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def _check_model(model: str | None) -> Path | None:
    from ..paths import default_model_path
    path = Path(model) if model else default_model_path()
    if path.is_file():
        return path
    if model:
        print(f"matseg demo: error: model file not found: {path}", file=sys.stderr)
    else:
        print(f"matseg demo: error: the shipped model is missing: {path}. Restore it from the "
              "repository (git checkout -- models/default.onnx), or train and export one "
              "(matseg train ..., then matseg export --model CKPT --output models/default.onnx), "
              "or pass --model FILE.onnx", file=sys.stderr)
    return None


def _frame_size(args: argparse.Namespace) -> tuple[int, int] | None:
    """--size as (height, width), or None (said why) when it or --images cannot be used."""
    from ..io.framesource import list_images
    if args.images is not None and (not args.images.is_dir() or not list_images(args.images)):
        print(f"matseg demo: error: {args.images}: not a folder with images", file=sys.stderr)
        return None
    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"matseg demo: error: --size must be HxW, e.g. 480x640, got {args.size!r}", file=sys.stderr)
        return None
    return height, width


def _prepare_frames(args: argparse.Namespace, out: Path, size: tuple[int, int]) -> dict[str, Path]:
    """camera_replay's source (and, for the sample sequence's rooms, depth_dir and
    calibration_file) parameters."""
    from .frames import sample_rgbd, write_depth, write_sequence
    if args.images is not None:
        return {"source": args.images.resolve()}
    sequence = sample_rgbd(args.frames, size)
    write_sequence(sequence.frames, out / "input")
    if not write_depth(sequence, out / "depth", out / "camera_info.yaml"):
        return {"source": (out / "input").resolve()}
    return {"source": (out / "input").resolve(), "depth_dir": (out / "depth").resolve(),
            "calibration_file": (out / "camera_info.yaml").resolve()}


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.rate <= 0:
        print("matseg demo: error: --frames must be >= 1 and --rate > 0", file=sys.stderr)
        return 2
    model = _check_model(args.model)
    if model is None:
        return 1
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    size = _frame_size(args)
    if size is None:
        return 1
    depth = args.images is None and rooms_available()
    env = child_env()
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")})

    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from ..ros.output_collector import BackgroundSpinner, OutputCollector, wait_until

    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    children: list[subprocess.Popen] = []
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)  # Ctrl-C stays a KeyboardInterrupt
    outputs = ("colored", "overlay", "materials") + (("cloud",) if depth else ())
    collector = OutputCollector(NODE, outputs=outputs, camera_topic=CAMERA_TOPIC)
    spin = BackgroundSpinner(collector)
    try:
        node_log = logs / "segment_node.log"
        children.append(subprocess.Popen(
            ros_command("matseg_ros.ros.segment_node",
                        {"model_path": model.resolve(), "device": args.device, "publish_raw": False,
                         "use_depth": depth},
                        {"image": CAMERA_TOPIC, "depth": DEPTH_TOPIC, "camera_info": INFO_TOPIC}),
            env=env, stdout=node_log.open("wb"), stderr=subprocess.STDOUT))
        print(f"matseg demo: starting segment_node with {model} ...", flush=True)
        replay_params = _prepare_frames(args, out, size)  # rendered while the node starts
        if not wait_until(lambda: (collector.classes is not None and collector.connected())
                          or children[0].poll() is not None, READY_TIMEOUT_S):
            print(f"matseg demo: error: segment_node did not come up in {READY_TIMEOUT_S:g} s; "
                  f"log: {node_log}\n{_tail(node_log)}", file=sys.stderr)
            return 1
        if children[0].poll() is not None:
            print(f"matseg demo: error: segment_node exited ({children[0].returncode}); "
                  f"log: {node_log}\n{_tail(node_log)}", file=sys.stderr)
            return 1
        replay_log = logs / "camera_replay.log"
        n_frames = len(list(replay_params["source"].glob("*")))
        children.append(subprocess.Popen(
            ros_command("matseg_ros.ros.camera_replay", {
                **replay_params, "rate_hz": float(args.rate), "frame_id": "camera",
                "wait_for_subscribers": 2}, {"camera/image_raw": CAMERA_TOPIC}),
            env=env, stdout=replay_log.open("wb"), stderr=subprocess.STDOUT))
        started = time.monotonic()
        children[1].wait()
        _settle(collector)
        elapsed = time.monotonic() - started
        stop_process(children[0])
        summary = write_outputs(collector, out, model, n_frames, elapsed)
    except KeyboardInterrupt:
        print("matseg demo: interrupted; stopping the nodes", file=sys.stderr)
        return 130
    finally:
        for proc in reversed(children):
            stop_process(proc)
        spin.stop()
        collector.destroy_node()
        rclpy.try_shutdown()
    print_report(summary, out)
    return 0 if summary["frames_segmented"] > 0 else 1


def _settle(collector: Any) -> None:
    """Wait until outputs stop arriving for SETTLE_S (the node finishes its last frame)."""
    last, since = -1, time.monotonic()
    while time.monotonic() - since < SETTLE_S:
        now = collector.count("overlay")
        if now != last:
            last, since = now, time.monotonic()
        time.sleep(0.1)


def write_outputs(collector: Any, out: Path, model: Path, n_frames: int, elapsed: float) -> dict[str, Any]:
    """Overlays and palette masks as PNG, per-frame materials and timing in summary.json."""
    from ..runtime.runstats import LatencyWindow
    stamps = sorted(collector.camera)
    index = {key: i for i, key in enumerate(stamps)}
    latency = LatencyWindow(size=100_000)
    frames = []
    for key in sorted(collector.received["materials"]):
        doc, t_out = collector.received["materials"][key]
        i = index.get(key)
        if i is None:
            continue
        latency.add(t_out - collector.camera[key])
        for output in ("overlay", "colored"):
            item = collector.received[output].get(key)
            if item is not None:
                rgb = np.frombuffer(bytes(item[0].data), np.uint8).reshape(item[0].height, item[0].width, 3)
                with atomic_path(out / output / f"frame_{i:04d}.png") as tmp:
                    cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        frames.append({"frame": i, "stamp": doc["stamp"], "materials": doc["materials"],
                       **({"disinfection": doc["disinfection"]} if "disinfection" in doc else {})})
    segmented = len(frames)
    times = sorted(t for _, t in collector.received["materials"].values())
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    diag = dict(collector.diagnostics)
    summary = {
        "model": str(model),
        "backend": diag.get("backend"), "device": diag.get("device"), "providers": diag.get("providers"),
        "frames_sent": n_frames, "frames_seen_by_collector": len(stamps), "frames_segmented": segmented,
        "frames_skipped_newest_only": int(float(diag.get("frames_dropped", 0))),
        "frames_rejected": int(float(diag.get("frames_rejected", 0))),
        "segmented_per_s": round(rate, 2) if rate else None,
        "replay_seconds": round(elapsed, 2),
        "latency_ms": {"p50": round(latency.percentile(50) * 1e3, 1),
                       "p95": round(latency.percentile(95) * 1e3, 1)} if segmented else None,
        "node_latency_ms": {"p50": diag.get("latency_p50_ms"), "p95": diag.get("latency_p95_ms")},
        "depth": _depth_outputs(collector, out, index, frames) if "cloud" in collector.received else None,
        "frames": frames,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


def _depth_outputs(collector: Any, out: Path, index: dict, frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Cloud count, per-material area/distance/dwell, and the last cloud saved as PLY."""
    from .depth_report import cloud_points, material_depth_summary, write_ply
    clouds = {index[key]: item[0] for key, item in collector.received["cloud"].items() if key in index}
    saved = None
    if clouds:
        last = max(clouds)
        points = cloud_points(clouds[last])
        saved = {"file": f"cloud/frame_{last:04d}.ply", "points": len(points)}
        write_ply(out / saved["file"], points)
    return {"material_cloud_messages": len(clouds),
            "frames_with_area": sum(any(m.get("area_m2") is not None for m in f["materials"]) for f in frames),
            "depth_unpaired": int(collector.diag("depth_unpaired")), "saved_cloud": saved,
            "materials": material_depth_summary(frames)}


def print_report(summary: dict[str, Any], out: Path) -> None:
    totals: dict[str, float] = {}
    for frame in summary["frames"]:
        for m in frame["materials"]:
            totals[m["name"]] = totals.get(m["name"], 0.0) + m["fraction"]
    n = max(1, summary["frames_segmented"])
    share = ", ".join(f"{name} {100 * v / n:.0f}%" for name, v in sorted(totals.items(), key=lambda kv: -kv[1]))
    lat = summary["latency_ms"] or {"p50": float("nan"), "p95": float("nan")}
    print(f"matseg demo: {summary['frames_segmented']} of {summary['frames_sent']} frames segmented "
          f"({summary['frames_skipped_newest_only']} skipped: the node keeps only the newest frame) "
          f"on {summary['backend']} / {summary['device']} ({summary['providers']})\n"
          f"  rate {summary['segmented_per_s']} frames/s, camera->overlay latency p50 {lat['p50']} ms, "
          f"p95 {lat['p95']} ms\n"
          f"  mean image share: {share or 'none'}")
    depth = summary["depth"]
    if depth is not None:
        guidance = ", ".join(f"{m['name']} {m['mean_area_m2']} m2 at {m['mean_distance_m']} m"
                             + (f" dwell {m['median_dwell_s']} s" if m["median_dwell_s"] is not None else "")
                             for m in depth["materials"] if m["id"] != 0)
        saved = depth["saved_cloud"]
        cloud = f", last one in {out}/{saved['file']} ({saved['points']} points)" if saved else ""
        print(f"  depth: {depth['material_cloud_messages']} material clouds{cloud}; areas in "
              f"{depth['frames_with_area']} frames\n"
              f"  per material (mean area, distance, median UV-C dwell): {guidance or 'none'}")
    print(f"  wrote {out}/overlay/, {out}/colored/, {out}/summary.json (logs in {out}/logs/)")
