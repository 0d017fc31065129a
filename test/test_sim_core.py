"""ROS-free simulation logic: stamp pairing, labels maps, live metrics, reports, recording."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from matseg_ros.io import dataset_layout as layout
from matseg_ros.io.masks import read_mask
from matseg_ros.io.stamp_pairing import StampPairer
from matseg_ros.sim.evaluation import EvalSession, LabelMapError, labels_to_ids
from matseg_ros.sim.recording import ChangeGate, DatasetWriter

S = 1_000_000_000


# --- pairing -----------------------------------------------------------------
def test_pairs_by_exact_stamp_in_either_order():
    pairer = StampPairer(("a", "b"))
    assert pairer.add("a", 1 * S, "a1") is None
    assert pairer.add("b", 1 * S, "b1") == (1 * S, "a1", "b1")
    assert pairer.add("b", 2 * S, "b2") is None
    assert pairer.add("a", 2 * S, "a2") == (2 * S, "a2", "b2")   # first side's item first
    assert pairer.paired == 2 and pairer.unpaired == {"a": 0, "b": 0}


def test_skipped_frames_are_counted_unpaired_when_a_later_pair_matches():
    """segment_node skips frames under load: ground truth at 1 s and 2 s never gets a partner."""
    pairer = StampPairer(("prediction", "ground_truth"))
    for t in (1, 2, 3):
        pairer.add("ground_truth", t * S, f"gt{t}")
    assert pairer.add("prediction", 3 * S, "p3") == (3 * S, "p3", "gt3")
    assert pairer.unpaired == {"prediction": 0, "ground_truth": 2}
    assert pairer.pending("ground_truth") == 0
    pairer.add("prediction", 4 * S, "p4")
    pairer.flush()
    assert pairer.unpaired == {"prediction": 1, "ground_truth": 2}


def test_pending_buffer_is_bounded_and_tolerance_matches_near_stamps():
    pairer = StampPairer(("a", "b"), max_pending=3)
    for t in range(5):
        pairer.add("a", t * S, t)
    assert pairer.pending("a") == 3 and pairer.unpaired["a"] == 2
    near = StampPairer(("a", "b"), tolerance_ns=2_000_000)
    near.add("a", S, "a")
    assert near.add("b", S + 1_500_000, "b") == (S, "a", "b")
    assert near.add("b", 2 * S + 3_000_000, "x") is None
    with pytest.raises(KeyError, match="unknown side"):
        near.add("c", 0, None)
    with pytest.raises(ValueError):
        StampPairer(("a", "a"))


# --- labels maps ------------------------------------------------------------------
def test_labels_map_rgb_with_id_in_every_channel(materials):
    ids = np.array([[0, 1, 8], [3, 255, 9]], np.uint8)
    out, unknown = labels_to_ids(np.repeat(ids[..., None], 3, axis=2), materials)
    np.testing.assert_array_equal(out, [[0, 1, 8], [3, 255, 255]])   # 9 is no class: ignored
    assert unknown == 1
    mono, _ = labels_to_ids(ids, materials)
    np.testing.assert_array_equal(mono, out)


def test_colored_map_is_rejected_with_a_hint(materials):
    colored = np.zeros((2, 2, 3), np.uint8)
    colored[0, 0] = (240, 143, 192)
    with pytest.raises(LabelMapError, match="labels_map"):
        labels_to_ids(colored, materials)
    with pytest.raises(LabelMapError, match="8-bit"):
        labels_to_ids(np.zeros((2, 2), np.uint16), materials)


# --- metrics -------------------------------------------------------------------
def split_frame(boundary: int, left: int, right: int, h: int = 48, w: int = 64) -> np.ndarray:
    ids = np.full((h, w), right, np.uint8)
    ids[:, :boundary] = left
    return ids


def test_identical_frames_score_one_and_absent_classes_have_no_iou(materials):
    session = EvalSession(materials)
    gt = split_frame(32, 8, 3)
    frame = session.add(5 * S, gt.copy(), np.repeat(gt[..., None], 3, axis=2))
    assert frame["mIoU"] == 1.0 and frame["pixel_accuracy"] == 1.0
    assert frame["per_class_iou"][8] == 1.0 and frame["per_class_iou"][3] == 1.0
    assert math.isnan(frame["per_class_iou"][1])
    doc = session.document(frame)
    assert doc["mIoU"] == 1.0 and doc["per_class_iou"]["ceramic"] is None   # NaN -> null in JSON
    json.dumps(doc, allow_nan=False)


def test_partial_overlap_has_its_hand_computed_iou(materials):
    """GT: wood | glass split at column 32 of 64; prediction splits at 40.
    wood IoU 32/40, glass 24/32, mIoU 0.775, accuracy 56/64; after an identical frame the
    running values are wood 64/72, glass 56/64, mIoU 127/144."""
    session = EvalSession(materials)
    gt = split_frame(32, 8, 3)
    session.add(1 * S, gt.copy(), gt)
    frame = session.add(2 * S, split_frame(40, 8, 3), gt)
    assert frame["per_class_iou"][8] == pytest.approx(32 / 40)
    assert frame["per_class_iou"][3] == pytest.approx(24 / 32)
    assert frame["mIoU"] == pytest.approx(0.775)
    assert frame["pixel_accuracy"] == pytest.approx(56 / 64)
    run = session.running_metrics()
    assert run["per_class_iou"][8] == pytest.approx(64 / 72)
    assert run["per_class_iou"][3] == pytest.approx(56 / 64)
    assert run["mIoU"] == pytest.approx(127 / 144)
    assert run["pixel_accuracy"] == pytest.approx(120 / 128)


def test_ignored_ground_truth_pixels_do_not_count(materials):
    session = EvalSession(materials)
    gt = split_frame(32, 8, 3)
    gt[:, 60:] = 200                         # not a class of the map -> ignore
    pred = split_frame(32, 8, 3)
    pred[:, 60:] = 1                         # wrong, but where the truth is unknown
    frame = session.add(S, pred, gt)
    assert frame["mIoU"] == 1.0 and session.ignored_pixels == 48 * 4


def test_mismatched_pairs_raise_clear_errors(materials):
    session = EvalSession(materials)
    with pytest.raises(ValueError, match="cameras must match"):
        session.add(S, np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        session.add(S, np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8))


def test_report_files(tmp_path, materials):
    session = EvalSession(materials)
    gt = split_frame(32, 8, 3)
    session.add(1 * S, gt.copy(), gt)
    session.add(2 * S, split_frame(40, 8, 3), gt)
    session.skip("mismatch")
    paths = session.write_report(tmp_path / "r", unpaired={"prediction": 1, "ground_truth": 2})
    report = json.loads(paths[0].read_text())
    assert report["frames"] == 2 and report["mIoU"] == pytest.approx(127 / 144)
    assert report["unpaired"] == {"prediction": 1, "ground_truth": 2} and report["skipped"] == {"mismatch": 1}
    wood = [c for c in report["per_class"] if c["name"] == "wood"][0]
    assert wood["gt_pixels"] == 2 * 32 * 48 and wood["predicted_pixels"] == (32 + 40) * 48
    assert [c["iou"] for c in report["per_class"] if c["name"] == "paper"] == [None]
    rows = list(csv.DictReader(paths[2].open()))
    assert len(rows) == 2 and float(rows[1]["mIoU"]) == pytest.approx(0.775, abs=1e-6)
    assert rows[1]["iou_paper"] == "" and float(rows[0]["stamp"]) == 1.0
    per_class = list(csv.DictReader(paths[1].open()))
    assert [r["name"] for r in per_class] == list(materials.names)


# --- recording -------------------------------------------------------------------
def test_change_gate_interval_and_change(rng):
    gate = ChangeGate(min_interval=1.0, min_change=0.04, min_label_change=0.02)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    ids = split_frame(32, 8, 3)
    assert gate.check(0.0, rgb, ids) == (True, "kept")
    assert gate.check(0.5, 255 - rgb, ids) == (False, "interval")
    assert gate.check(2.0, rgb, ids) == (False, "unchanged")
    assert gate.check(2.0, 255 - rgb, ids) == (True, "kept")          # the view changed
    assert gate.check(3.5, 255 - rgb, split_frame(20, 8, 3)) == (True, "kept")  # labels changed
    assert gate.check(0.1, 255 - rgb, split_frame(20, 8, 3)) == (True, "kept")  # sim reset


def test_dataset_writer_appends_hrim2021_samples(tmp_path, rng, materials):
    root = tmp_path / "ds"
    writer = DatasetWriter(root, materials, "run1_", val_every=3, block_size=1)
    samples = {}
    for k in range(4):
        rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        ids = split_frame(10 + 10 * k, 8, 3)
        samples[writer.write(rgb, ids)] = ids
    writer.flush()
    assert layout.read_split(root, "val") == ["run1_000003"]
    assert layout.read_split(root, "train") == ["run1_000001", "run1_000002", "run1_000004"]
    assert sorted(layout.read_split(root, "trainval")) == sorted(samples)
    for sample_id, ids in samples.items():
        assert layout.read_rgb(layout.find_image(root, sample_id)).shape == (48, 64, 3)
        decoded, ignored = read_mask(layout.mask_path(root, sample_id), materials)
        np.testing.assert_array_equal(decoded, ids)
        assert ignored == 0
    again = DatasetWriter(root, materials, "run2_", val_every=0)     # a second drive appends
    again.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), split_frame(5, 8, 3))
    again.flush()
    assert layout.read_split(root, "train")[-1] == "run2_000001" and len(layout.read_split(root, "trainval")) == 5
    with pytest.raises(ValueError, match="mask is"):
        again.write(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8))


def test_writer_sends_whole_blocks_of_a_drive_to_val(tmp_path, materials):
    writer = DatasetWriter(tmp_path, materials, "d_", val_every=3, block_size=2)
    frame, ids = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)
    for _ in range(12):
        writer.write(frame, ids)
    writer.flush()
    assert layout.read_split(tmp_path, "val") == ["d_000005", "d_000006", "d_000011", "d_000012"]
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        DatasetWriter(tmp_path, materials, "d_", block_size=0)
