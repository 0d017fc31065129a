"""The ROS-free pieces under the node: newest-frame slot, statistics, throttling, the frame
pipeline, frame sources and the demo's sample sequence."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from matseg_ros.runtime.latest import LatestSlots
from matseg_ros.runtime.runstats import LatencyWindow, RateMeter, WarningThrottle


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_latest_slot_keeps_only_the_newest_and_counts_overwrites():
    slot: LatestSlots[int] = LatestSlots()
    assert slot.take(timeout=0.01) is None
    for i in range(5):
        slot.put(i)
    assert slot.take(timeout=0) == ("", 4)
    assert (slot.put_count[""], slot.dropped[""]) == (5, 4)
    assert slot.take(timeout=0.01) is None
    with pytest.raises(KeyError, match="unknown key 'rear'"):
        slot.put(1, "rear")


def test_latest_slots_serve_cameras_round_robin_newest_first():
    slots: LatestSlots[int] = LatestSlots(["a", "b", "c"])
    for i in range(3):
        slots.put(i, "a")
    slots.put(10, "b")
    slots.put(20, "c")
    assert [slots.take(0) for _ in range(3)] == [("a", 2), ("b", 10), ("c", 20)]
    slots.put(3, "a")
    slots.put(21, "c")
    assert slots.take(0) == ("a", 3)  # the turn after c is a's again
    slots.put(4, "a")
    assert slots.take(0) == ("c", 21)  # b has nothing: c, then a
    assert slots.take(0) == ("a", 4)
    assert slots.dropped == {"a": 2, "b": 0, "c": 0} and slots.taken == {"a": 3, "b": 1, "c": 2}
    slots.put(5, "a")
    slots.put(11, "b")
    assert slots.take_all(0) == [("a", 5), ("b", 11)] and slots.take(0.01) is None


def test_latest_slot_wakes_a_waiting_consumer_and_close_releases_it():
    slot: LatestSlots[str] = LatestSlots()
    got = []
    consumer = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    consumer.start()
    slot.put("frame")
    consumer.join(2)
    assert got == [("", "frame")]
    waiting = threading.Thread(target=lambda: got.append(slot.take(timeout=30)))
    waiting.start()
    slot.close()
    waiting.join(2)
    assert not waiting.is_alive() and got[-1] is None and slot.closed


def test_rate_meter_over_its_window():
    clock = FakeClock()
    meter = RateMeter(window_s=2.0, clock=clock)
    assert meter.rate() == 0.0
    for _ in range(11):  # 10 intervals of 0.1 s
        meter.tick()
        clock.t += 0.1
    clock.t -= 0.1
    assert meter.rate() == pytest.approx(10.0)
    assert meter.since_last() == pytest.approx(0.0)
    clock.t += 5.0  # everything left the window
    assert meter.rate() == 0.0 and meter.count == 11
    assert meter.since_last() == pytest.approx(5.0)  # still known after the window emptied
    assert RateMeter(clock=clock).since_last() is None


def test_latency_percentiles_match_numpy_over_the_last_values():
    window = LatencyWindow(size=100)
    assert np.isnan(window.percentile(50))
    values = np.random.default_rng(0).exponential(0.02, 250)
    for v in values:
        window.add(float(v))
    assert len(window) == 100
    assert window.percentile(95) == pytest.approx(np.percentile(values[-100:], 95))


def test_warning_throttle_per_kind_with_suppressed_count():
    clock = FakeClock()
    throttle = WarningThrottle(period_s=5.0, clock=clock)
    assert throttle.check("a") == (True, 0)
    assert throttle.check("a") == (False, 0)
    assert throttle.check("b") == (True, 0)  # another kind is not hidden behind the first
    assert throttle.check("a") == (False, 0)
    clock.t += 5.0
    assert throttle.check("a") == (True, 2)


@pytest.fixture(scope="module")
def pipeline(tiny_onnx_model):
    from matseg_ros.runtime.engine import load_engine
    from matseg_ros.runtime.pipeline import FramePipeline
    return FramePipeline(load_engine(tiny_onnx_model, device="cpu"), overlay_alpha=0.3)


def test_pipeline_equals_engine_plus_rendering_and_computes_only_what_is_asked(pipeline, rng, materials):
    from matseg_ros.runtime.rendering import colorize, overlay, summarize
    rgb = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    ids, confidence = pipeline.engine.predict(rgb)
    full = pipeline.run(rgb)
    np.testing.assert_array_equal(full.ids, ids)
    colored = colorize(ids, materials.palette_lut())
    np.testing.assert_array_equal(full.colored, colored)
    np.testing.assert_array_equal(full.overlay, overlay(rgb, colored, 0.3, ids=ids))
    assert full.materials == summarize(ids, confidence, materials)
    only_raw = pipeline.run(rgb, ("raw",))
    assert only_raw.colored is None and only_raw.overlay is None and only_raw.materials is None
    with pytest.raises(ValueError, match="unknown output"):
        pipeline.run(rgb, ("depth",))


def test_materials_file_may_recolour_but_not_rename_or_renumber(tmp_path, materials):
    from matseg_ros.materials import MaterialsError
    from matseg_ros.runtime.pipeline import resolve_materials
    assert resolve_materials(materials, "") is materials
    lines = ["classes:"] + [f"  - {{id: {m.id}, name: {m.name}, color: [{m.id}, {m.id}, 9]}}" for m in materials]
    recoloured = tmp_path / "recoloured.yaml"
    recoloured.write_text("\n".join(lines))
    assert resolve_materials(materials, recoloured).palette_lut()[3].tolist() == [3, 3, 9]
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text("\n".join(lines).replace("glass", "crystal"))
    with pytest.raises(MaterialsError, match="renamed.yaml: class map does not match.*3:crystal"):
        resolve_materials(materials, renamed)


def test_frame_sources_folder_video_and_errors(tmp_path, rng, caplog):
    from matseg_ros.io.framesource import SourceError, iter_frames
    frames = [np.full((32, 48, 3), c, dtype=np.uint8) for c in ([200, 30, 40], [20, 180, 60], [10, 20, 220])]
    frames[0][:16] = [90, 90, 90]  # not uniform
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), f[..., ::-1])
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "01b.png").write_bytes(b"\x89PNG truncated")  # mid-sequence: skipped, named
    got = list(iter_frames(tmp_path))
    assert [f.name for f in got] == ["00.png", "01.png", "02.png"]
    assert "01b.png: cannot read as an image; skipped" in caplog.text
    for a, b in zip(got, frames):
        np.testing.assert_array_equal(a.rgb, b)
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (48, 32))
    for f in frames:
        writer.write(np.ascontiguousarray(f[..., ::-1]))
    writer.release()
    clip = list(iter_frames(video))
    assert len(clip) == 3 and clip[0].rgb.shape == (32, 48, 3)
    for a, b in zip(clip, frames):  # MJPG is lossy; colours and their order survive
        assert np.abs(a.rgb.astype(int) - b).mean() < 12
    with pytest.raises(SourceError, match="no such file or folder"):
        iter_frames(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        iter_frames(tmp_path / "empty")


def test_demo_sequence_is_deterministic_and_sized():
    from matseg_ros.demo.frames import sample_sequence
    a, b = sample_sequence(7, (60, 80)), sample_sequence(7, (60, 80))
    assert len(a) == 7 and all(f.shape == (60, 80, 3) and f.dtype == np.uint8 for f in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1])  # the camera moves
