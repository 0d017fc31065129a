"""Depth geometry against hand-computed pinhole values: points, tilted areas, distances, clouds."""
from __future__ import annotations

import struct
from types import SimpleNamespace

import numpy as np
import pytest

from matseg_ros.runtime.depth import (FLOAT32, UINT32, DepthError, Intrinsics, back_project,
                                      cloud_fields, depth_to_metres, material_geometry, pack_cloud,
                                      pixel_areas, valid_points)

FX = FY = 525.0
CX, CY = 319.5, 239.5
W, H = 640, 480
INTR = Intrinsics(FX, FY, CX, CY, W, H)


def ray(u: float, v: float) -> np.ndarray:
    return np.array([(u - CX) / FX, (v - CY) / FY, 1.0])


def plane_depth(normal, point) -> np.ndarray:
    """Depth of the plane n.P = n.P0 at every pixel by ray-plane intersection (NaN: missed)."""
    normal, point = np.asarray(normal, float), np.asarray(point, float)
    v, u = np.mgrid[0:H, 0:W].astype(float)
    rays = np.stack([(u - CX) / FX, (v - CY) / FY, np.ones_like(u)], axis=-1)
    t = normal @ point / (rays @ normal)  # ray z is 1, so t is the depth
    return np.where((t > 0) & (t < 20), t, np.nan).astype(np.float32)


def hit(u: float, v: float, normal, point) -> np.ndarray:
    r = ray(u, v)
    return r * (np.dot(normal, point) / np.dot(normal, r))


def quad_area(corners: list[np.ndarray]) -> float:
    """Area of a planar quadrilateral: half the cross product of its diagonals."""
    return 0.5 * float(np.linalg.norm(np.cross(corners[2] - corners[0], corners[3] - corners[1])))


def tilted(degrees: float, axis: str) -> np.ndarray:
    s, c = np.sin(np.radians(degrees)), np.cos(np.radians(degrees))
    return np.array([s, 0.0, -c]) if axis == "y" else np.array([0.0, s, -c])


# --- back-projection -----------------------------------------------------------------------
def test_back_projection_matches_the_pinhole_model():
    depth = np.full((H, W), 2.0, np.float32)
    points = back_project(depth, INTR)
    assert points.shape == (H, W, 3) and points.dtype == np.float32
    for u, v in [(0, 0), (639, 479), (319, 239), (320, 240), (100, 400), (600, 20)]:
        expected = ((u - 319.5) * 2.0 / 525.0, (v - 239.5) * 2.0 / 525.0, 2.0)
        np.testing.assert_allclose(points[v, u], expected, atol=1e-3, err_msg=f"pixel {(u, v)}")
    assert abs(points[0, 0, 0] - (-1.217142857)) < 1e-6  # (0 - 319.5) * 2 / 525 by hand
    strided = back_project(depth, INTR, stride=4)
    assert strided.shape == (120, 160, 3)
    for row, col in [(0, 0), (10, 20), (119, 159), (60, 80)]:
        u, v = 4 * col, 4 * row
        expected = ((u - 319.5) * 2.0 / 525.0, (v - 239.5) * 2.0 / 525.0, 2.0)
        np.testing.assert_allclose(strided[row, col], expected, atol=1e-3)
    assert len(valid_points(points)) == W * H


def test_invalid_depth_gives_nan_points_and_no_valid_point():
    depth = np.full((H, W), 1.5, np.float32)
    depth[10, 20] = np.nan
    points = back_project(depth, INTR)
    assert np.isnan(points[10, 20]).all()
    assert len(valid_points(points)) == W * H - 1


# --- areas and per-material geometry -------------------------------------------------------
def test_fronto_parallel_rectangle_has_its_metric_area_and_distances():
    depth = np.full((H, W), 2.0, np.float32)
    ids = np.zeros((H, W), np.uint8)
    ids[50:150, 100:300] = 3  # 200 px wide, 100 px high
    true_area = (200 * 2.0 / 525.0) * (100 * 2.0 / 525.0)
    geometry = material_geometry(ids, depth, INTR, [0, 3, 5])
    assert set(geometry) == {0, 3}  # 5 is not in view
    assert geometry[3]["valid_pixels"] == 20000
    assert abs(geometry[3]["area_m2"] / true_area - 1) < 0.02
    assert abs(geometry[0]["area_m2"] + geometry[3]["area_m2"] - (640 * 2 / 525) * (480 * 2 / 525)) < 1e-4
    # the block's pixel nearest to the optical axis is (299, 149)
    a, b = (299 - 319.5) / 525, (149 - 239.5) / 525
    assert geometry[3]["nearest_distance_m"] == pytest.approx(2 * np.sqrt(1 + a * a + b * b), rel=1e-6)
    v, u = np.mgrid[50:150, 100:300]
    mean = np.mean(2 * np.sqrt(1 + ((u - 319.5) / 525) ** 2 + ((v - 239.5) / 525) ** 2))
    assert geometry[3]["mean_distance_m"] == pytest.approx(mean, rel=1e-5)
    coarse = material_geometry(ids, depth, INTR, [3], stride=4)
    assert abs(coarse[3]["area_m2"] / true_area - 1) < 0.02


@pytest.mark.parametrize("degrees, axis", [(45, "y"), (60, "y"), (50, "x")])
def test_tilted_plane_area_and_distances_match_the_analytic_region(degrees, axis):
    normal, anchor = tilted(degrees, axis), np.array([0.0, 0.0, 2.0])
    depth = plane_depth(normal, anchor)
    u0, u1, v0, v1 = 200, 360, 180, 300  # the class covers u0..u1-1, v0..v1-1
    ids = np.zeros((H, W), np.uint8)
    ids[v0:v1, u0:u1] = 6
    corners = [hit(u, v, normal, anchor) for u, v in
               [(u0 - 0.5, v0 - 0.5), (u1 - 0.5, v0 - 0.5), (u1 - 0.5, v1 - 0.5), (u0 - 0.5, v1 - 0.5)]]
    true_area = quad_area(corners)
    footprints = float(np.sum(depth[v0:v1, u0:u1].astype(float) ** 2)) / (FX * FY)
    assert true_area > 1.3 * footprints  # the tilt matters: footprint-only areas would fail
    geometry = material_geometry(ids, depth, INTR, [6])[6]
    assert abs(geometry["area_m2"] / true_area - 1) < 0.02
    distances = [np.linalg.norm(hit(u, v, normal, anchor)) for v in range(v0, v1) for u in range(u0, u1)]
    assert geometry["mean_distance_m"] == pytest.approx(np.mean(distances), rel=1e-4)
    assert geometry["nearest_distance_m"] == pytest.approx(min(distances), rel=1e-4)
    assert geometry["valid_pixels"] == (u1 - u0) * (v1 - v0)


def test_depth_edges_fall_back_to_the_footprint_instead_of_bridging_the_gap():
    depth = np.full((H, W), 1.0, np.float32)
    depth[:, 320:] = 3.0  # a wall 2 m behind a board: no surface joins them
    ids = np.zeros((H, W), np.uint8)
    ids[:, 320:] = 7
    areas = pixel_areas(depth, INTR)
    assert areas[100, 319] == pytest.approx(1 / FX / FY, rel=1e-4)
    assert areas[100, 320] == pytest.approx(9 / FX / FY, rel=1e-4)
    geometry = material_geometry(ids, depth, INTR, [0, 7])
    assert geometry[0]["area_m2"] == pytest.approx((320 / FX) * (480 / FY), rel=1e-4)
    assert geometry[7]["area_m2"] == pytest.approx((320 * 3 / FX) * (480 * 3 / FY), rel=1e-4)


def test_sensor_noise_does_not_read_as_tilt(rng):
    """2 mm of depth noise at 2 m over +-1 pixel would add ~13 % of area; the slopes' reach
    of SLOPE_REACH_PX keeps it near 1 %."""
    depth = np.full((H, W), 2.0, np.float32)
    noisy = np.round((depth + rng.normal(0, 0.002, depth.shape)) * 1000).astype(np.uint16)
    ids = np.zeros((H, W), np.uint8)
    ids[100:400, 100:500] = 1
    area = material_geometry(ids, depth_to_metres(noisy, "16UC1"), INTR, [1])[1]["area_m2"]
    assert abs(area / ((400 * 2 / FX) * (300 * 2 / FY)) - 1) < 0.02


def test_holes_are_excluded_and_their_neighbours_use_one_sided_differences():
    normal, anchor = tilted(45, "y"), np.array([0.0, 0.0, 2.0])
    depth = plane_depth(normal, anchor)
    ids = np.zeros((H, W), np.uint8)
    ids[200:260, 300:340] = 2
    full = material_geometry(ids, depth, INTR, [2])[2]
    holed = depth.copy()
    holed[230, 320] = holed[210, 301] = np.nan
    areas_full, areas_holed = pixel_areas(depth, INTR), pixel_areas(holed, INTR)
    assert areas_holed[230, 320] == 0
    for v, u in [(230, 319), (230, 321), (229, 320), (231, 320), (210, 302)]:  # one-sided: still the tilt
        assert areas_holed[v, u] == pytest.approx(areas_full[v, u], rel=0.01)
    geometry = material_geometry(ids, holed, INTR, [2])[2]
    assert geometry["valid_pixels"] == full["valid_pixels"] - 2
    missing = areas_full[230, 320] + areas_full[210, 301]
    assert geometry["area_m2"] == pytest.approx(full["area_m2"] - missing, rel=1e-3)


# --- encodings -----------------------------------------------------------------------------
def test_millimetres_and_metres_give_the_same_geometry_and_invalid_readings_drop_out():
    depth = plane_depth(tilted(45, "y"), [0.0, 0.0, 2.0])
    millimetres = np.where(np.isfinite(depth), np.round(depth * 1000), 0).astype(np.uint16)
    metres = np.where(millimetres > 0, millimetres / 1000.0, np.nan).astype(np.float32)
    holes = [(220, 310), (221, 330), (240, 340), (250, 360), (260, 370)]
    for (v, u), bad in zip(holes, [np.nan, np.inf, -1.0, 0.0, -np.inf]):
        millimetres[v, u] = 0
        metres[v, u] = bad
    ids = np.zeros((H, W), np.uint8)
    ids[200:280, 300:380] = 4
    from_mm = depth_to_metres(millimetres, "16UC1")
    from_m = depth_to_metres(metres, "32FC1")
    np.testing.assert_array_equal(np.isnan(from_mm), np.isnan(from_m))
    np.testing.assert_allclose(from_mm, from_m, rtol=1e-6)
    a = material_geometry(ids, from_mm, INTR, [4])[4]
    b = material_geometry(ids, from_m, INTR, [4])[4]
    assert a["valid_pixels"] == b["valid_pixels"] == 80 * 80 - 5
    for key in ("area_m2", "mean_distance_m", "nearest_distance_m"):
        assert a[key] == pytest.approx(b[key], rel=1e-5)
    assert depth_to_metres(np.array([[0, 1500]], np.uint16), "mono16")[0, 1] == 1.5


def test_depth_to_metres_marks_every_kind_of_invalid_reading():
    metres = depth_to_metres(np.array([[np.nan, np.inf, -np.inf, -1.0, 0.0, 2.5]], np.float32), "32FC1")
    assert np.isnan(metres[0, :5]).all() and metres[0, 5] == 2.5
    millimetres = depth_to_metres(np.array([[0, 1, 65535]], np.uint16), "16UC1")
    assert np.isnan(millimetres[0, 0]) and millimetres[0, 1] == pytest.approx(0.001)
    assert millimetres.dtype == np.float32


def test_wrong_encodings_and_dtypes_are_refused_by_name():
    with pytest.raises(DepthError, match=r"'rgb8' is not supported; expected one of \['16UC1', 'mono16', '32FC1'\]"):
        depth_to_metres(np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(DepthError, match="16UC1 depth must be uint16 millimetres, got float32"):
        depth_to_metres(np.zeros((2, 2), np.float32), "16UC1")
    with pytest.raises(DepthError, match="32FC1 depth must be floating-point metres, got uint16"):
        depth_to_metres(np.zeros((2, 2), np.uint16), "32FC1")
    with pytest.raises(DepthError, match=r"H x W, got shape \(2, 2, 3\)"):
        depth_to_metres(np.zeros((2, 2, 3), np.uint16), "16UC1")


# --- intrinsics ----------------------------------------------------------------------------
def camera_info(k, width=640, height=480, upper=False):
    return SimpleNamespace(**{"K" if upper else "k": k, "width": width, "height": height})


GOOD_K = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]


def test_intrinsics_from_camera_info_lowercase_uppercase_and_rosbags():
    assert Intrinsics.from_camera_info(camera_info(GOOD_K)) == INTR
    assert Intrinsics.from_camera_info(camera_info(tuple(GOOD_K), upper=True)) == INTR
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_HUMBLE)
    msg = store.types["sensor_msgs/msg/CameraInfo"](
        header=store.types["std_msgs/msg/Header"](stamp=store.types["builtin_interfaces/msg/Time"](0, 0),
                                                  frame_id="camera"),
        height=480, width=640, distortion_model="plumb_bob", d=np.zeros(5), k=np.array(GOOD_K),
        r=np.eye(3).ravel(), p=np.zeros(12), binning_x=0, binning_y=0,
        roi=store.types["sensor_msgs/msg/RegionOfInterest"](0, 0, 0, 0, False))
    assert Intrinsics.from_camera_info(msg) == INTR


@pytest.mark.parametrize("info, message", [
    (SimpleNamespace(width=640, height=480), "no intrinsic matrix; expected a 'k'"),
    (camera_info([0.0] * 9), "K is all zeros: the camera is not calibrated"),
    (camera_info([0.0, 0, 319.5, 0, 525, 239.5, 0, 0, 1]), "fx must be a positive finite number, got 0.0"),
    (camera_info([525.0, 0, 319.5, 0, -525, 239.5, 0, 0, 1]), "fy must be a positive finite number, got -525.0"),
    (camera_info([np.nan, 0, 319.5, 0, 525, 239.5, 0, 0, 1]), "fx must be a positive finite number, got nan"),
    (camera_info(GOOD_K, width=0), "width must be a positive finite number, got 0"),
    (camera_info(GOOD_K, height=None), "height must be a number, got None"),
    (camera_info(GOOD_K[:6]), "K must have 9 values"),
])
def test_bad_calibration_is_refused_with_a_clear_message(info, message):
    with pytest.raises(DepthError, match="^camera_info: " + message.replace("(", r"\(")):
        Intrinsics.from_camera_info(info)


def test_scaled_intrinsics_keep_pixel_centres():
    half = INTR.scaled(320, 240)
    assert (half.fx, half.fy, half.width, half.height) == (262.5, 262.5, 320, 240)
    assert (half.cx, half.cy) == (159.5, 119.5)  # (319.5 + 0.5) / 2 - 0.5
    depth = np.full((240, 320), 2.0, np.float32)
    assert back_project(depth, half)[0, 0, 0] == pytest.approx((0 - 159.5) * 2 / 262.5)


def test_shape_mismatches_name_both_shapes():
    depth = np.full((H, W), 2.0, np.float32)
    with pytest.raises(DepthError, match=r"class ids are \(240, 320\) but the depth image is \(480, 640\)"):
        material_geometry(np.zeros((240, 320), np.uint8), depth, INTR, [0])
    with pytest.raises(DepthError, match=r"depth image is \(320, 240\) \(W, H\) but the intrinsics are "
                                         r"for \(640, 480\); use Intrinsics.scaled"):
        back_project(np.ones((240, 320), np.float32), INTR)
    with pytest.raises(DepthError, match="stride must be a whole number >= 1, got 0"):
        back_project(depth, INTR, stride=0)


# --- PointCloud2 packing -------------------------------------------------------------------
def small_cloud():
    rng = np.random.default_rng(7)
    points = rng.normal(size=(3, 4, 3)).astype(np.float32)
    points[0, 1] = np.nan
    points[2, 3] = np.nan
    rgb = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 9, (3, 4)).astype(np.uint8)
    confidence = rng.random((3, 4), dtype=np.float32)
    return points, rgb, labels, confidence


def test_cloud_fields_are_the_pointcloud2_layout():
    from rosbags.typesys import Stores, get_typestore
    point_field = get_typestore(Stores.ROS2_HUMBLE).types["sensor_msgs/msg/PointField"]
    assert (FLOAT32, UINT32) == (point_field.FLOAT32, point_field.UINT32) == (7, 6)
    assert cloud_fields() == [("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1),
                              ("label", 16, 6, 1), ("confidence", 20, 7, 1)]


def test_organised_cloud_bytes_read_back_with_struct():
    points, rgb, labels, confidence = small_cloud()
    cloud = pack_cloud(points, rgb, labels, confidence)
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (3, 4, 24, 96)
    assert cloud.is_dense is False
    data = cloud.tobytes()
    assert len(data) == 3 * 4 * 24
    for v in range(3):
        for u in range(4):
            offset = 24 * (v * 4 + u)
            x, y, z, _, label, conf = struct.unpack_from("<ffffIf", data, offset)
            np.testing.assert_array_equal([x, y, z], points[v, u])
            assert label == labels[v, u] and conf == confidence[v, u]
            (packed,) = struct.unpack_from("<I", data, offset + 12)
            r, g, b = (int(c) for c in rgb[v, u])
            assert packed == (r << 16) | (g << 8) | b
    assert cloud.points["rgb"].view(np.uint32)[1, 2] == (int(rgb[1, 2, 0]) << 16 | int(rgb[1, 2, 1]) << 8
                                                          | int(rgb[1, 2, 2]))


def test_unorganised_cloud_keeps_only_valid_points_in_row_order():
    points, rgb, labels, confidence = small_cloud()
    cloud = pack_cloud(points, rgb, labels, confidence, organized=False)
    assert (cloud.height, cloud.width, cloud.is_dense, cloud.row_step) == (1, 10, True, 240)
    kept = [(v, u) for v in range(3) for u in range(4) if (v, u) not in [(0, 1), (2, 3)]]
    data = cloud.tobytes()
    for index, (v, u) in enumerate(kept):
        x, y, z, _, label, conf = struct.unpack_from("<ffffIf", data, 24 * index)
        np.testing.assert_array_equal([x, y, z], points[v, u])
        assert (label, conf) == (labels[v, u], confidence[v, u])


def test_cloud_survives_a_pointcloud2_cdr_round_trip_with_rosbags():
    from rosbags.typesys import Stores, get_typestore
    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    depth = np.full((H, W), 2.0, np.float32)
    depth[::7, ::5] = np.nan
    points = back_project(depth, INTR, stride=4)
    rgb = np.full((120, 160, 3), (10, 200, 30), np.uint8)
    labels = np.full((120, 160), 8, np.uint8)
    confidence = np.full((120, 160), 0.75, np.float32)
    for organized in (True, False):
        cloud = pack_cloud(points, rgb, labels, confidence, organized=organized)
        msg = types["sensor_msgs/msg/PointCloud2"](
            header=types["std_msgs/msg/Header"](stamp=types["builtin_interfaces/msg/Time"](1, 2),
                                                frame_id="camera"),
            height=cloud.height, width=cloud.width,
            fields=[types["sensor_msgs/msg/PointField"](*f) for f in cloud_fields()],
            is_bigendian=False, point_step=cloud.point_step, row_step=cloud.row_step,
            data=np.frombuffer(cloud.tobytes(), np.uint8), is_dense=cloud.is_dense)
        back = store.deserialize_cdr(store.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
        data = bytes(back.data)
        valid = int(np.isfinite(points[..., 2]).sum())
        assert back.width * back.height == (120 * 160 if organized else valid)
        assert len(data) == back.row_step * back.height
        x, y, z, rgb_float, label, conf = struct.unpack_from("<ffffIf", data, 24 * (back.width - 1))
        assert (label, conf) == (8, 0.75)
        assert struct.unpack("<I", struct.pack("<f", rgb_float))[0] == (10 << 16) | (200 << 8) | 30
        assert z == pytest.approx(2.0)


def test_pack_cloud_refuses_mismatched_inputs():
    points, rgb, labels, confidence = small_cloud()
    with pytest.raises(DepthError, match=r"labels is \(4, 3\) but the points need \(3, 4\)"):
        pack_cloud(points, rgb, labels.T, confidence)
    with pytest.raises(DepthError, match="rgb must be H x W x 3 uint8 \(or H x W uint32 packed\), got float32"):
        pack_cloud(points, rgb.astype(np.float32), labels, confidence)
