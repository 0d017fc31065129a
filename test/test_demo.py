"""`matseg demo` end to end: two node processes over DDS, outputs collected, children gone."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.ros


def test_demo_runs_end_to_end_and_leaves_no_process_behind(tmp_path, tiny_onnx_model):
    out = tmp_path / "demo_out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "matseg_ros.cli", "demo", "--output", str(out), "--model", str(tiny_onnx_model),
         "--frames", "6", "--size", "96x128", "--rate", "4", "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=dict(os.environ))
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    assert proc.returncode == 0, stdout + stderr
    with pytest.raises(ProcessLookupError):  # segment_node and camera_replay were stopped
        os.killpg(proc.pid, 0)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_sent"] == 6 and summary["frames_seen_by_collector"] == 6
    assert 1 <= summary["frames_segmented"] <= 6
    assert summary["frames_segmented"] + summary["frames_skipped_newest_only"] >= 5
    assert summary["backend"] == "onnxruntime" and summary["device"] == "cpu"
    assert summary["latency_ms"]["p50"] > 0
    for frame in summary["frames"]:
        assert (out / "overlay" / f"frame_{frame['frame']:04d}.png").is_file()
        assert (out / "colored" / f"frame_{frame['frame']:04d}.png").is_file()
        assert abs(sum(m["fraction"] for m in frame["materials"]) - 1.0) < 1e-6
    assert f"{summary['frames_segmented']} of 6 frames segmented" in stdout
    assert len(list((out / "input").glob("frame_*.png"))) == 6
    # the two synthetic rooms' frames carry depth: segment_node ran with use_depth
    assert sorted(p.name for p in (out / "depth").glob("*.png")) == ["frame_0004.png", "frame_0005.png"]
    depth = summary["depth"]
    assert 1 <= depth["material_cloud_messages"] <= 2 and depth["frames_with_area"] >= 1, depth
    assert depth["materials"] and all(m["mean_area_m2"] > 0 for m in depth["materials"]), depth
    ply = (out / depth["saved_cloud"]["file"]).read_bytes()
    head, _, body = ply.partition(b"end_header\n")
    assert f"element vertex {depth['saved_cloud']['points']}".encode() in head
    assert len(body) == depth["saved_cloud"]["points"] * 20 and depth["saved_cloud"]["points"] > 0
    assert "material clouds" in stdout and "median UV-C dwell" in stdout


def test_demo_without_the_model_says_which_file_and_how_to_get_it(tmp_path, capsys, monkeypatch):
    from matseg_ros.demo import run as demo
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    missing = tmp_path / "models" / "default.onnx"
    monkeypatch.setattr("matseg_ros.paths.default_model_path", lambda: missing)
    assert demo.run(parser.parse_args(["--output", str(tmp_path / "o")])) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "matseg export" in err and "--model" in err
    assert demo.run(parser.parse_args(["--output", str(tmp_path / "o"), "--model", "nope.onnx"])) == 1
    assert "model file not found: nope.onnx" in capsys.readouterr().err
