"""UV-C dwell guidance against hand-computed doses, plus the config file's validation."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from matseg_ros.paths import share_path
from matseg_ros.runtime.depth import Intrinsics, area_vectors, back_project, point_areas
from matseg_ros.runtime.disinfection import (NOT_REACHABLE, DisinfectionConfigError, dwell_times,
                                             irradiance, load_disinfection, parse_disinfection,
                                             surface_normals)

INTR = Intrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
NAMES = {0: "background", 4: "metal", 9: "unobtainium"}


def config(**changes):
    """E1m 0.2 mW/cm^2, metal 10 mJ/cm^2, background no guidance, 90 % coverage."""
    data = {"pathogen": "test virus", "target_log_reduction": 3, "coverage_fraction": 0.9,
            "lamp": {"irradiance_at_1m_mw_cm2": 0.2, "min_distance_m": 0.3, "offset_m": [0, 0, 0]},
            "materials": {"metal": {"dose_mj_cm2": 10, "source": "test"},
                          "background": {"dose_mj_cm2": None, "source": "no guidance"}}}
    for key, value in changes.items():
        if key in data["lamp"]:
            data["lamp"][key] = value
        else:
            data[key] = value
    return parse_disinfection(data, "test.yaml")


def patch(distances, areas, tilt_degrees=0.0, rows=1):
    """Points straight ahead of the lamp at the given distances (one column each), with normals
    tilted by `tilt_degrees` away from the lamp direction, and the given per-pixel areas."""
    distances = np.asarray(distances, np.float32)
    points = np.zeros((rows, len(distances), 3), np.float32)
    points[..., 2] = distances
    s, c = np.sin(np.radians(tilt_degrees)), np.cos(np.radians(tilt_degrees))
    normals = np.broadcast_to(np.array([s, 0.0, -c], np.float32), points.shape).copy()
    area = np.broadcast_to(np.asarray(areas, np.float32), points.shape[:2]).copy()
    ids = np.full(points.shape[:2], 4, np.uint8)
    return ids, points, normals, area


def metal_dwell(distances, areas, tilt_degrees=0.0, cfg=None, rows=1):
    ids, points, normals, area = patch(distances, areas, tilt_degrees, rows)
    return dwell_times(ids, points, normals, area, cfg or config(), NAMES)[4]


# --- hand-computed dwell times -------------------------------------------------------------
def test_facing_plane_at_1_m_needs_dose_over_irradiance():
    result = metal_dwell([1.0] * 6, 0.01)
    assert result["dwell_s"] == pytest.approx(10 / 0.2, rel=1e-6)  # 50 s
    assert result["irradiance_mw_cm2"] == pytest.approx(0.2, rel=1e-6)
    assert result["dose_mj_cm2"] == 10 and result["reason"] is None
    assert result["area_m2"] == pytest.approx(0.06, rel=1e-6)


def test_inverse_square_and_cosine():
    assert metal_dwell([2.0] * 4, 0.01)["dwell_s"] == pytest.approx(200.0, rel=1e-6)  # E = 0.2 / 4
    assert metal_dwell([1.0] * 4, 0.01, tilt_degrees=60)["dwell_s"] == pytest.approx(100.0, rel=1e-5)
    assert metal_dwell([0.1] * 4, 0.01)["dwell_s"] == pytest.approx(10 * 0.3 ** 2 / 0.2, rel=1e-5)  # 4.5 s


def test_ninety_percent_of_the_area_sets_the_dwell():
    # half the area at 1 m (0.2 mW/cm^2), half at 2 m (0.05): 90 % needs the 2 m irradiance
    assert metal_dwell([1.0, 1.0, 2.0, 2.0], 0.01)["dwell_s"] == pytest.approx(200.0, rel=1e-6)
    # 50 % at 1 m, 45 % at 1.5 m, 5 % at 2 m: 95 % gets >= 0.2 / 1.5^2, so 10 * 2.25 / 0.2
    result = metal_dwell([1.0, 1.5, 2.0], [0.50, 0.45, 0.05])
    assert result["dwell_s"] == pytest.approx(112.5, rel=1e-5)
    assert result["irradiance_mw_cm2"] == pytest.approx(0.2 / 2.25, rel=1e-5)


def test_the_rule_weighs_area_not_pixels():
    # as many pixels at 2 m as at 1 m, but only 5 % of the area: the 1 m irradiance covers 95 %
    pixels = [1.0] * 10 + [2.0] * 10
    areas = [0.095] * 10 + [0.005] * 10
    assert metal_dwell(pixels, areas)["dwell_s"] == pytest.approx(50.0, rel=1e-6)
    areas = [0.085] * 10 + [0.015] * 10  # 15 % of the area at 2 m: now the 2 m irradiance
    assert metal_dwell(pixels, areas)["dwell_s"] == pytest.approx(200.0, rel=1e-6)


def test_coverage_fraction_is_at_least_that_fraction():
    half = config(coverage_fraction=0.5)
    assert metal_dwell([1.0, 2.0], 0.01, cfg=half)["dwell_s"] == pytest.approx(50.0, rel=1e-6)
    everything = config(coverage_fraction=1.0)
    assert metal_dwell([1.0, 1.0, 1.0, 2.0], 0.01, cfg=everything)["dwell_s"] == pytest.approx(200.0)


def test_lamp_offset_moves_the_source():
    behind = config(offset_m=[0.0, 0.0, -1.0])  # 1 m behind the camera: the patch is 2 m away
    assert metal_dwell([1.0] * 3, 0.01, cfg=behind)["dwell_s"] == pytest.approx(200.0, rel=1e-6)


def test_surfaces_facing_away_are_not_reachable():
    result = metal_dwell([1.0] * 4, 0.01, tilt_degrees=180)
    assert result["dwell_s"] is None and result["reason"] == NOT_REACHABLE
    assert result["irradiance_mw_cm2"] == 0
    ids, points, normals, area = patch([1.0] * 20, 0.01)
    normals[0, :3] *= -1  # 15 % faces away: 90 % coverage cannot be had from here
    assert dwell_times(ids, points, normals, area, config(), NAMES)[4]["reason"] == NOT_REACHABLE
    normals[0, 2] *= -1  # 10 % faces away: the rest is 90 %
    assert dwell_times(ids, points, normals, area, config(), NAMES)[4]["dwell_s"] == pytest.approx(50.0)


def test_no_dose_no_depth_and_unknown_materials_give_reasons_not_numbers():
    ids, points, normals, area = patch([1.0] * 8, 0.01)
    ids[0, :2] = 0  # background: null dose
    ids[0, 2:4] = 9  # a material the config does not know
    points[0, 4] = np.nan
    ids[0, 4] = 7  # in view, no name given: not reported
    result = dwell_times(ids, points, normals, area, config(), NAMES)
    assert set(result) == {0, 4, 9}
    assert result[0]["dwell_s"] is None and result[0]["dose_mj_cm2"] is None
    assert "no dose for 'background' in test.yaml: no guidance" == result[0]["reason"]
    assert result[9]["dwell_s"] is None and "'unobtainium' has no entry in test.yaml" in result[9]["reason"]
    assert result[4]["dwell_s"] == pytest.approx(50.0)
    points[0, 5:] = np.nan  # metal now has no valid depth at all
    result = dwell_times(ids, points, normals, area, config(), NAMES)
    assert result[4] == {"material": "metal", "area_m2": 0.0, "dose_mj_cm2": 10.0, "irradiance_mw_cm2": None,
                         "dwell_s": None, "reason": "no valid depth on this material"}


def test_dwell_times_refuses_mismatched_grids():
    ids, points, normals, area = patch([1.0] * 4, 0.01)
    with pytest.raises(ValueError, match=r"areas is \(1, 3\) but the points are \(1, 4, 3\)"):
        dwell_times(ids, points, normals, area[:, :3], config(), NAMES)


# --- from a depth image --------------------------------------------------------------------
def test_normals_from_depth_face_the_camera():
    wall = back_project(np.full((480, 640), 1.0, np.float32), INTR)
    normals = surface_normals(wall, INTR)
    np.testing.assert_allclose(normals[::37, ::41], np.broadcast_to([0, 0, -1], normals[::37, ::41].shape),
                               atol=1e-5)
    v, u = np.mgrid[0:480, 0:640].astype(float)
    a = (u - 319.5) / 525
    depth = (np.sqrt(2) / (np.sqrt(0.5) - np.sqrt(0.5) * a)).astype(np.float32)  # 45 degrees about y
    depth[depth > 10] = np.nan
    points = back_project(depth, INTR)
    normals = surface_normals(points, INTR, vectors=area_vectors(points, INTR))
    expected = np.array([np.sqrt(0.5), 0, -np.sqrt(0.5)])  # z = x + 2: (1, 0, -1)/sqrt 2 faces the camera
    np.testing.assert_allclose(normals[240, 100:500], np.broadcast_to(expected, (400, 3)), atol=1e-4)


def test_wall_seen_through_the_camera_matches_a_hand_computed_percentile():
    """A wall 1 m ahead: E = 0.2 cos / r^2 = 0.2 / r^3 per pixel, all pixels the same area,
    so 90 % coverage is the irradiance at the distance that 90 % of the pixels are within."""
    depth = np.full((480, 640), 1.0, np.float32)
    points = back_project(depth, INTR)
    areas = point_areas(points, INTR)
    ids = np.full((480, 640), 4, np.uint8)
    result = dwell_times(ids, points, surface_normals(points, INTR), areas, config(), NAMES)[4]
    v, u = np.mgrid[0:480, 0:640]
    r = np.sort(np.sqrt(1 + ((u - 319.5) / 525) ** 2 + ((v - 239.5) / 525) ** 2).ravel())
    r90 = r[int(0.9 * r.size) - 1]
    assert result["dwell_s"] == pytest.approx(10 / (0.2 / r90 ** 3), rel=1e-4)
    assert result["area_m2"] == pytest.approx((640 / 525) * (480 / 525), rel=1e-5)
    e = irradiance(points, surface_normals(points, INTR), config())
    assert e[240, 320] == pytest.approx(0.2, rel=1e-5)


# --- the config file -----------------------------------------------------------------------
def test_shipped_config_covers_every_material_with_a_source(materials):
    cfg = load_disinfection()
    assert set(materials.names) <= set(cfg.materials)
    assert cfg.materials["background"].dose_mj_cm2 is None
    for name, entry in cfg.materials.items():
        assert len(entry.source) > 20, name
    porous = min(cfg.materials[n].dose_mj_cm2 for n in ("fabric", "paper", "wood"))
    smooth = max(cfg.materials[n].dose_mj_cm2 for n in ("ceramic", "glass", "metal", "plastic"))
    assert porous >= 2 * smooth
    assert cfg.coverage_fraction == 0.9 and cfg.target_log_reduction == 3
    assert 0.05 <= cfg.irradiance_at_1m_mw_cm2 <= 1.0 and cfg.lamp_offset_m == (0.0, 0.0, 0.0)


def shipped() -> dict:
    return yaml.safe_load(share_path("config", "disinfection.yaml").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["materials"]["fabric"].update(dose_mj_cm2=-3),
     "materials.fabric.dose_mj_cm2: expected a positive number, got -3"),
    (lambda d: d["materials"]["glass"].update(dose_mj_cm2="ten"),
     "materials.glass.dose_mj_cm2: expected a positive number, got 'ten'"),
    (lambda d: d["materials"]["wood"].update(source=""),
     "materials.wood.source: expected a non-empty string, got ''"),
    (lambda d: d["materials"]["metal"].pop("source"), r"materials.metal: missing key\(s\) \['source'\]"),
    (lambda d: d["lamp"].pop("irradiance_at_1m_mw_cm2"),
     r"lamp: missing key\(s\) \['irradiance_at_1m_mw_cm2'\]"),
    (lambda d: d["lamp"].update(irradiance_at_1m_mw_cm2=0), "lamp.irradiance_at_1m_mw_cm2: expected a positive number, got 0"),
    (lambda d: d["lamp"].update(min_distance_m=float("nan")), "lamp.min_distance_m: expected a positive number, got nan"),
    (lambda d: d["lamp"].update(offset_m=[0, 0]), r"lamp.offset_m: expected \[x, y, z\] in metres"),
    (lambda d: d.update(coverage_fraction=1.5), r"coverage_fraction: expected a number in \(0, 1\], got 1.5"),
    (lambda d: d.update(target_log_reduction=True), "target_log_reduction: expected a positive number, got True"),
    (lambda d: d.update(lamps=d.pop("lamp")), r"unknown key\(s\) \['lamps'\]"),
    (lambda d: d.update(materials=[]), "materials: expected a mapping of material name"),
])
def test_config_errors_name_file_key_and_expectation(tmp_path, edit, message):
    data = shipped()
    edit(data)
    path = tmp_path / "disinfection.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DisinfectionConfigError, match="^" + str(path).replace(".", r"\.") + ": " + message):
        load_disinfection(path)


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(DisinfectionConfigError, match="cannot read disinfection file"):
        load_disinfection(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lamp: [unclosed")
    with pytest.raises(DisinfectionConfigError, match="not valid YAML"):
        load_disinfection(bad)
    bad.write_text("- just a list")
    with pytest.raises(DisinfectionConfigError, match="expected a mapping with keys"):
        load_disinfection(bad)


def test_coverage_irradiance_matches_its_definition_on_random_surfaces(rng):
    """The highest irradiance e such that the area getting >= e is >= 90 % of the material's,
    found by brute force per class, against dwell_times' single packed sort."""
    shape = (12, 17)
    ids = rng.integers(0, 3, shape).astype(np.uint8) * 2  # materials 0, 2, 4
    points = rng.uniform(-1, 1, shape + (3,)).astype(np.float32)
    points[..., 2] = rng.uniform(0.2, 3.0, shape)
    towards = -points / np.linalg.norm(points, axis=-1, keepdims=True)
    normals = (towards + 0.6 * rng.normal(size=shape + (3,))).astype(np.float32)  # some face away
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    areas = rng.uniform(0.001, 0.01, shape).astype(np.float32)
    names = {0: "metal", 2: "glass", 4: "wood"}
    cfg = parse_disinfection({
        "pathogen": "x", "target_log_reduction": 3, "coverage_fraction": 0.9,
        "lamp": {"irradiance_at_1m_mw_cm2": 0.3, "min_distance_m": 0.5},
        "materials": {n: {"dose_mj_cm2": 10 + i, "source": "t"} for i, n in enumerate(names.values())}})
    result = dwell_times(ids, points, normals, areas, cfg, names)
    e = irradiance(points, normals, cfg)
    for cid, name in names.items():
        mask = ids == cid
        e_c, a_c = e[mask].astype(float), areas[mask].astype(float)
        total = a_c.sum()
        best = max(v for v in e_c if a_c[e_c >= v].sum() >= 0.9 * total * (1 - 1e-9))
        assert result[cid]["irradiance_mw_cm2"] == pytest.approx(best, rel=1e-6), name
        assert result[cid]["area_m2"] == pytest.approx(total, rel=1e-6)
        assert 0 < best < e_c.max() and (e_c == 0).any()  # a real percentile, with some dark points
        assert result[cid]["dwell_s"] == pytest.approx(cfg.materials[name].dose_mj_cm2 / best, rel=1e-6)
