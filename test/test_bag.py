"""`matseg bag` on bags written by rosbags: originals copied, masks added with the same stamps."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from ros_harness import scene, write_image_bag as _write_bag

TS = get_typestore(Stores.ROS2_KILTED)


def _read(path):
    with AnyReader([path], default_typestore=TS) as reader:
        return [(c.topic, t, raw, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_command_adds_masks_with_identical_stamps(tmp_path, tiny_onnx_model, rng, storage, capsys):
    from matseg_ros.io import bag
    from matseg_ros.runtime.engine import load_engine
    from matseg_ros.runtime.pipeline import FramePipeline, materials_document
    frames = [scene(rng, 48, 64) for _ in range(3)]
    src, dst = tmp_path / "in", tmp_path / "out"
    _write_bag(src, frames, storage)
    parser = argparse.ArgumentParser()
    bag.add_arguments(parser)
    args = parser.parse_args(["--input", str(src), "--output", str(dst), "--model", str(tiny_onnx_model),
                              "--device", "cpu"])
    assert bag.run(args) == 0
    assert "segmented 3 of 4 images (1 rejected)" in capsys.readouterr().out
    assert any(dst.glob("*.mcap" if storage == "mcap" else "*.db3"))

    before, after = _read(src), _read(dst)
    copied = [(topic, t, bytes(raw)) for topic, t, raw, _ in after
              if not topic.startswith("/matseg/")]
    assert copied == [(topic, t, bytes(raw)) for topic, t, raw, _ in before]
    pipeline = FramePipeline(load_engine(tiny_onnx_model, device="cpu"))
    added = {}
    for topic, t, _, msg in after:
        if topic.startswith("/matseg/"):
            added.setdefault(topic, []).append((t, msg))
    assert sorted(added) == ["/matseg/classes", "/matseg/colored_segmentation_mask", "/matseg/confidence",
                             "/matseg/materials", "/matseg/overlay", "/matseg/raw_segmentation_mask"]
    assert json.loads(added["/matseg/classes"][0][1].data)["classes"] == pipeline.materials.entries()
    for i, rgb in enumerate(frames):
        expected = pipeline.run(rgb)
        t = 1_000_000_000 + i * 100_000_000
        raw_t, raw = added["/matseg/raw_segmentation_mask"][i]
        assert raw_t == t and (raw.header.stamp.sec, raw.header.stamp.nanosec) == (50 + i, 7)
        assert raw.header.frame_id == "cam" and raw.encoding == "mono8"
        np.testing.assert_array_equal(np.asarray(raw.data).reshape(48, 64), expected.ids)
        ov_t, ov = added["/matseg/overlay"][i]
        assert ov_t == t
        np.testing.assert_array_equal(np.asarray(ov.data).reshape(48, 64, 3), expected.overlay)
        conf_t, conf = added["/matseg/confidence"][i]
        assert conf_t == t and conf.encoding == "mono8"
        np.testing.assert_array_equal(np.asarray(conf.data).reshape(48, 64),
                                      np.round(expected.confidence * 255).astype(np.uint8))
        mat_t, mat = added["/matseg/materials"][i]
        assert mat_t == t
        assert json.loads(mat.data) == json.loads(json.dumps(
            materials_document(expected.materials, 50 + i, 7, "cam", 48, 64)))


def test_bag_command_errors_name_the_problem(tmp_path, tiny_onnx_model, rng, capsys):
    from matseg_ros.io import bag
    src = tmp_path / "in"
    _write_bag(src, [scene(rng)], "mcap")
    parser = argparse.ArgumentParser()
    bag.add_arguments(parser)
    base = ["--input", str(src), "--model", str(tiny_onnx_model), "--device", "cpu"]
    assert bag.run(parser.parse_args(base + ["--output", str(tmp_path / "o"), "--topic", "/nope"])) == 1
    assert "no image topic '/nope'; image topics: /cam/image_raw" in capsys.readouterr().err
    assert bag.run(parser.parse_args(base + ["--output", str(src)])) == 1
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and [p.name for p in tmp_path.iterdir()] == ["in"]
