"""The dose map core without ROS: cloud reading, normals, poses, the voxel map and its file,
dose accrual against a quadrature of the lamp model, occlusion, label fusion, coverage."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.integrate import quad

from matseg_ros.dosemap.cloud import CloudArrays, CloudError, area_normals, read_cloud
from matseg_ros.dosemap.coverage import coverage, dose_records
from matseg_ros.dosemap.exposure import DoseMap, LampTimer
from matseg_ros.dosemap.pose import PoseError, pose_from
from matseg_ros.dosemap.visibility import occluded
from matseg_ros.dosemap.voxels import MapFileError, VoxelMap, group, group_points, voxel_keys
from matseg_ros.runtime.depth import Intrinsics, back_project, cloud_fields, pack_cloud
from matseg_ros.runtime.disinfection import load_disinfection

METAL, WOOD = 4, 8
CLASSES = ["background", "ceramic", "fabric", "glass", "metal", "paper", "plastic", "stone", "wood"]
IDENTITY = pose_from((0, 0, 0), (0, 0, 0, 1))


def wide_camera(width=160, height=40, hfov_deg=120.0) -> Intrinsics:
    fx = (width / 2) / np.tan(np.radians(hfov_deg / 2))
    return Intrinsics(fx, fx, (width - 1) / 2, (height - 1) / 2, width, height)


def plane_cloud(intr, depth, label=METAL) -> CloudArrays:
    points = back_project(np.asarray(depth, np.float32) * np.ones((intr.height, intr.width), np.float32), intr)
    return CloudArrays(points, np.full(points.shape[:2], label, np.int64), None)


def test_read_cloud_gives_back_what_segment_node_packs_also_with_padded_rows(rng):
    points = rng.normal(size=(4, 5, 3)).astype(np.float32)
    points[1, 2] = np.nan
    labels = rng.integers(0, 9, (4, 5)).astype(np.uint8)
    confidence = rng.random((4, 5)).astype(np.float32)
    packed = pack_cloud(points, np.zeros((4, 5, 3), np.uint8), labels, confidence)
    got = read_cloud(cloud_fields(), 4, 5, packed.point_step, packed.row_step, packed.tobytes())
    np.testing.assert_array_equal(got.points, points)
    np.testing.assert_array_equal(got.labels, labels)
    np.testing.assert_array_equal(got.confidence, confidence)
    padded = np.zeros((4, packed.row_step + 8), np.uint8)  # 8 bytes of padding after every row
    padded[:, :packed.row_step] = np.frombuffer(packed.tobytes(), np.uint8).reshape(4, -1)
    again = read_cloud(cloud_fields(), 4, 5, packed.point_step, packed.row_step + 8, padded.tobytes())
    np.testing.assert_array_equal(again.points, points)


@pytest.mark.parametrize("fields, data, match", [
    ([f for f in cloud_fields() if f[0] != "label"], 24 * 20, "missing field"),
    ([(n, o, d, 3 if n == "z" else c) for n, o, d, c in cloud_fields()], 24 * 20, "datatype 7 x3"),
    ([(n, 20 if n == "x" else o, 8 if n == "x" else d, c) for n, o, d, c in cloud_fields()], 480, "does not fit"),
    ([(n, o, 7 if n == "label" else d, c) for n, o, d, c in cloud_fields()], 24 * 20, "expected one integer"),
    (cloud_fields(), 24 * 19, "the layout needs 480"),
])
def test_read_cloud_refuses_what_it_cannot_read(fields, data, match):
    with pytest.raises(CloudError, match=match):
        read_cloud(fields, 4, 5, 24, 120, bytes(data))


def test_area_normals_of_a_tilted_plane_face_the_camera_and_vanish_next_to_holes():
    intr = wide_camera(64, 48, 90)
    v, u = np.mgrid[0:48, 0:64]
    a = (u - intr.cx) / intr.fx
    depth = (2.0 / (1 - 0.5 * a)).astype(np.float32)  # the plane z = 2 + 0.5 x, normal (0.5, 0, -1) towards the camera
    depth[10, 20] = np.nan
    normals = area_normals(back_project(depth, intr))
    assert (normals[10, [19, 21]] == 0).all() and (normals[[9, 11], 20] == 0).all()  # the hole's neighbours
    normals[10, 19:22] = normals[9:12, 20] = 1.0
    unit = normals / np.linalg.norm(normals, axis=-1, keepdims=True)
    expected = np.array([0.5, 0.0, -1.0]) / np.sqrt(1.25)
    ok = np.ones((48, 64), bool)
    ok[10, 19:22] = ok[9:12, 20] = False
    np.testing.assert_allclose(unit[ok], np.broadcast_to(expected, (ok.sum(), 3)), atol=1e-4)


def test_poses_rotate_and_translate_and_refuse_nan_and_non_unit_quaternions():
    quarter = pose_from((1, 2, 3), (0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)))  # 90 degrees about z
    np.testing.assert_allclose(quarter.points(np.array([[1.0, 0, 0]], np.float32)), [[1, 3, 3]], atol=1e-6)
    np.testing.assert_allclose(quarter.point((0, 1, 0)), [0, 2, 3], atol=1e-12)
    with pytest.raises(PoseError, match="NaN"):
        pose_from((0, np.nan, 0), (0, 0, 0, 1))
    with pytest.raises(PoseError, match="norm 2.0000"):
        pose_from((0, 0, 0), (0, 0, 0, 2))


@pytest.mark.parametrize("spread", [3.0, 1e4, 6e4])  # packed in the box; too wide to pack; out of range
def test_group_points_sorts_like_voxel_keys_and_group(rng, spread):
    points = (rng.normal(size=(5000, 3)) * spread).astype(np.float32)
    points[:300] = points[300:600]  # shared voxels
    keys, ok = voxel_keys(points, 0.05)
    order, unique, starts, in_range = group_points(*points.T.copy(), 0.05)
    np.testing.assert_array_equal(in_range, ok)
    want_order, want_unique, want_starts = group(keys[ok])
    np.testing.assert_array_equal(unique, want_unique)
    np.testing.assert_array_equal(starts, want_starts)
    np.testing.assert_array_equal(np.sort(order), np.arange(ok.sum()))
    np.testing.assert_array_equal(keys[ok][order], keys[ok][want_order])  # the same runs, maybe reordered within
    assert [len(a) for a in group_points(*np.zeros((3, 0), np.float32), 0.05)] == [0, 0, 0, 0]


def test_voxel_map_finds_inserts_and_caps(caplog):
    vmap = VoxelMap(0.1, CLASSES, max_voxels=6)
    keys, ok = voxel_keys(np.array([[0.05, 0, 0], [-0.05, 0, 0], [1e6, 0, 0]], np.float32), 0.1)
    assert ok.tolist() == [True, True, False] and keys[0] != keys[1]
    first = np.array([50, 10, 30], np.int64)
    rows, dropped = vmap.rows_for(first)
    assert rows.tolist() == [0, 1, 2] and dropped == 0
    rows, dropped = vmap.rows_for(np.array([5, 10, 40, 60, 70, 80], np.int64))
    assert dropped == 2 and rows[1] == 1 and (rows >= 0).sum() == 4 and len(vmap) == 6
    assert vmap.lookup(np.array([30, 10, 99])).tolist() == [2, 1, -1]


def test_voxel_map_index_stays_right_across_merges_of_its_recent_keys(rng, monkeypatch):
    monkeypatch.setattr("matseg_ros.dosemap.voxels.RECENT", 50)
    vmap = VoxelMap(0.1, CLASSES, max_voxels=10_000)
    keys = rng.choice(10**9, 2000, replace=False).astype(np.int64)
    for batch in np.array_split(keys, 37):  # some batches merge, some stay recent
        rows, dropped = vmap.rows_for(batch)
        assert dropped == 0 and (rows >= 0).all()
    np.testing.assert_array_equal(vmap.lookup(keys), np.arange(2000))
    np.testing.assert_array_equal(vmap.column("key"), keys)
    assert (vmap.lookup(np.array([-5, 10**9 + 1])) == -1).all()
    rows, _ = vmap.rows_for(keys[::-1].copy())
    np.testing.assert_array_equal(rows, np.arange(2000)[::-1])  # nothing added twice
    assert len(vmap) == 2000


def test_map_file_round_trips_and_refuses_what_does_not_fit(tmp_path):
    intr = wide_camera(32, 24, 60)
    dmap = DoseMap(load_disinfection(), CLASSES, 0.05, 10_000)
    dmap.integrate(plane_cloud(intr, 1.0), IDENTITY, 0.0)
    dmap.integrate(plane_cloud(intr, 1.0), IDENTITY, 0.2)
    path = tmp_path / "map.npz"
    dmap.voxels.save(path)
    other = DoseMap(load_disinfection(), CLASSES, 0.05, 10_000)
    other.voxels.load(path)
    for name in ("key", "scores", "normal", "point", "count", "dose"):
        np.testing.assert_array_equal(other.voxels.column(name), dmap.voxels.column(name))
    np.testing.assert_array_equal(other.voxels.lookup(dmap.voxels.column("key")), np.arange(len(dmap.voxels)))
    with pytest.raises(MapFileError, match="voxel size 0.05 m; this map's voxel_size is 0.1 m"):
        VoxelMap(0.1, CLASSES, 10_000).load(path)
    with pytest.raises(MapFileError, match="classes"):
        VoxelMap(0.05, CLASSES[:3], 10_000).load(path)
    with np.load(path) as npz:
        arrays = dict(npz)
    np.savez(tmp_path / "bad.npz", **{**arrays, "dose": arrays["dose"].astype(np.float32)})
    with pytest.raises(MapFileError, match="dose is float32"):
        other.voxels.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(MapFileError, match="cannot read"):
        other.voxels.load(tmp_path / "junk.npz")
    assert len(other.voxels) == len(dmap.voxels)  # a refused load leaves the map as it was


def test_dose_of_a_wall_swept_at_known_speed_equals_the_quadrature_of_the_lamp_model():
    """Camera and lamp pass a wall 1.0125 m away at 0.5 m/s, 10 clouds/s, 120 degree view."""
    config = load_disinfection()
    intr, d, v, dt = wide_camera(), 1.0125, 0.5, 0.1
    dmap = DoseMap(config, CLASSES, 0.05, 100_000)
    cloud = plane_cloud(intr, d)
    for i, t in enumerate(np.arange(0, 10 + 1e-9, dt)):
        dmap.integrate(cloud, pose_from((-2.5 + v * t, 0, 0), (0, 0, 0, 1)), dt if i else 0.0)
    records = dose_records(dmap)
    half_width = (intr.width - 0.5 - intr.cx) / intr.fx * d  # the view's half width on the wall
    checked = 0
    for i in np.flatnonzero((np.abs(records["y"]) < 0.05) & (np.abs(records["x"]) < 0.8)):
        x, y, z = records["x"][i], records["y"][i], records["z"][i]
        e = lambda t: config.irradiance_at_1m_mw_cm2 * z / ((x + 2.5 - v * t) ** 2 + y * y + z * z) ** 1.5
        expected, _ = quad(e, (x - half_width + 2.5) / v, (x + half_width + 2.5) / v)
        assert records["dose_mj_cm2"][i] == pytest.approx(expected, rel=0.02)
        checked += 1
    assert checked >= 40


def scene_with_board(intr):
    """A wall at z = 2 and a board at z = 1 over x 0.8..1.2, y -0.2..0.2 (camera frame)."""
    v, u = np.mgrid[0:intr.height, 0:intr.width]
    a, b = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    board = (a > 0.8) & (a < 1.2) & (np.abs(b) < 0.2)
    depth = np.where(board, 1.0, 2.0).astype(np.float32)
    labels = np.where(board, WOOD, METAL)
    return CloudArrays(back_project(depth, intr), labels, None)


@pytest.mark.parametrize("offset", [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0)])
def test_the_lamp_doses_only_what_it_sees(offset):
    """Lamp at the camera: the wall behind the board is not in the cloud and gets nothing.
    Lamp 1 m to the right: the board also shades the wall around x = 1 from the lamp."""
    config = dataclasses.replace(load_disinfection(), lamp_offset_m=offset)
    intr = wide_camera(200, 100, 110)
    dmap = DoseMap(config, CLASSES, 0.05, 100_000)
    wall_only = plane_cloud(intr, 2.0)
    dmap.integrate(wall_only, IDENTITY, 0.0)  # mapped earlier, lamp off
    cloud = scene_with_board(intr)
    dmap.integrate(cloud, IDENTITY, 0.0)
    dmap.integrate(cloud, IDENTITY, 1.0)
    r = dose_records(dmap)
    wall = (np.abs(r["z"] - 2.0) < 0.05) & (np.abs(r["y"]) < 0.1)
    behind_board = wall & (np.abs(r["x"] - 2.0) < 0.3)  # camera rays to it cross the board
    assert behind_board.sum() > 5 and (r["dose_mj_cm2"][behind_board] == 0).all()
    shaded = wall & (np.abs(r["x"] - 1.0) < 0.3)
    lit = wall & (r["x"] > -1.0) & (r["x"] < 0.0)
    lamp = np.array(offset)
    assert lit.sum() > 5
    for i in np.flatnonzero(lit):  # E = E1 cos / r^2, normal -z, for 1 s
        r2 = (lamp[0] - r["x"][i]) ** 2 + r["y"][i] ** 2 + r["z"][i] ** 2
        assert r["dose_mj_cm2"][i] == pytest.approx(0.2 * r["z"][i] / r2 ** 1.5, rel=1e-3)
    if offset[0]:
        assert shaded.sum() > 5 and (r["dose_mj_cm2"][shaded] == 0).all()
    else:
        assert (r["dose_mj_cm2"][shaded] > 0).all()


def test_occlusion_ignores_the_target_voxel_and_is_blocked_by_one_in_between():
    vmap = VoxelMap(0.1, CLASSES, 100)
    target, blocker = np.array([[0.05, 0.05, 2.05]]), np.array([[0.05, 0.05, 1.05]])
    vmap.rows_for(voxel_keys(target.astype(np.float32), 0.1)[0])
    lamp = np.array([0.05, 0.05, 0.05])
    assert not occluded(vmap, lamp, target)[0]
    vmap.rows_for(voxel_keys(blocker.astype(np.float32), 0.1)[0])
    assert occluded(vmap, lamp, target)[0]


def test_labels_fuse_to_the_majority_over_noisy_views_and_one_bad_view_does_not_flip_them(rng):
    intr = wide_camera(120, 90, 60)
    dmap = DoseMap(load_disinfection(), CLASSES, 0.05, 10_000)
    base = plane_cloud(intr, 1.0)
    for _ in range(8):  # 60 % metal, the rest spread over the other eight classes
        noisy = np.where(rng.random(base.labels.shape) < 0.6, METAL, rng.integers(0, 9, base.labels.shape))
        dmap.integrate(CloudArrays(base.points, noisy, None), IDENTITY, 0.0)
    dmap.integrate(CloudArrays(base.points, np.full_like(base.labels, WOOD), None), IDENTITY, 0.0)
    assert (dmap.voxels.labels() == METAL).all()


def test_labels_outside_the_class_list_count_as_points_but_not_as_votes(rng):
    intr = wide_camera(120, 90, 60)
    base = plane_cloud(intr, 1.0)
    labels = np.where(rng.random(base.labels.shape) < 0.5, METAL, rng.choice([-1, len(CLASSES), 255], base.labels.shape))
    weights = rng.random(base.labels.shape).astype(np.float32)
    dmap = DoseMap(load_disinfection(), CLASSES, 0.05, 10_000)
    report = dmap.integrate(CloudArrays(base.points, labels, weights), IDENTITY, 0.0)
    scores = dmap.voxels.column("scores")
    assert report.points == labels.size and dmap.voxels.column("count").sum() == labels.size
    np.testing.assert_allclose(scores.sum(), weights[labels == METAL].sum(), rtol=1e-5)
    assert (scores[:, np.arange(len(CLASSES)) != METAL] == 0).all()


def test_coverage_areas_and_the_dwell_still_needed_at_this_pose():
    """A fronto-parallel wall, 1 m away: area = voxels x 25 cm^2; after dose the share is 1."""
    config = load_disinfection()
    intr = wide_camera(60, 60, 60)
    dmap = DoseMap(config, CLASSES, 0.05, 10_000)
    dmap.integrate(plane_cloud(intr, 1.0125), IDENTITY, 0.0)
    (entry,) = coverage(dmap)
    assert entry["material"] == "metal" and entry["area_seen_m2"] == pytest.approx(len(dmap.voxels) * 0.0025)
    r = dose_records(dmap)
    e = np.sort(0.2 * r["z"] / (r["x"] ** 2 + r["y"] ** 2 + r["z"] ** 2) ** 1.5)  # equal areas: the 10th percentile
    e_cov = e[len(e) - int(np.ceil(0.9 * len(e)))]
    assert entry["dwell_needed_s"] == pytest.approx(32 / e_cov, rel=1e-4) and entry["share"] == 0
    dmap.integrate(plane_cloud(intr, 1.0125), IDENTITY, 1.0001 * entry["dwell_needed_s"])  # half + half
    (entry,) = coverage(dmap)
    assert 0.9 <= entry["share"] < 0.92 and entry["area_at_target_m2"] == pytest.approx(entry["share"] * entry["area_seen_m2"])
    assert entry["dwell_needed_s"] == 0.0
    dmap.forget_view()
    assert coverage(dmap)[0]["reason"] == "not in view"


def test_lamp_timer_counts_on_seconds_on_its_clock():
    now = [10.0]
    timer = LampTimer(clock=lambda: now[0])
    assert timer.on is None and timer.on_seconds() == (10.0, 0.0)
    timer.set(True)
    now[0] = 12.0
    timer.set(False)
    now[0] = 15.0
    assert timer.on_seconds() == (15.0, 2.0)
