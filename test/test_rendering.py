"""Palette colourisation, overlays and per-material summaries against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from matseg_ros.materials import MaterialMap
from matseg_ros.runtime.rendering import colorize, overlay, summarize

# A 4×6 frame, x to the right, y down; 255 is ignore, 77 an id no material has.
IDS = np.array([[0, 0, 1, 1, 1, 255],
                [0, 2, 1, 1, 1, 255],
                [0, 2, 2, 0, 0, 0],
                [3, 3, 3, 0, 0, 77]], np.uint8)
CONF = np.array([[0.5, 0.5, 0.9, 0.8, 0.7, 0.1],
                 [0.5, 0.3, 0.6, 0.5, 0.4, 0.1],
                 [0.5, 0.6, 0.9, 0.5, 0.5, 0.5],
                 [1.0, 0.5, 0.0, 0.5, 0.5, 0.2]], np.float32)


def test_colorize_uses_the_materials_palette(materials):
    ids = np.array([[0, 1, 2, 3, 4], [5, 6, 7, 8, 255], [77, 8, 1, 0, 3]], np.uint8)
    rgb = colorize(ids, materials.palette_lut())
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint8
    for (y, x), material_id in np.ndenumerate(ids):
        expected = materials[int(material_id)].color if material_id in materials.ids else (0, 0, 0)
        assert tuple(rgb[y, x]) == expected, (y, x, material_id)
    assert tuple(rgb[0, 2]) == (49, 206, 112)  # fabric, from DESIGN.md


def test_colorize_matches_numpy_indexing(materials, rng):
    ids = rng.integers(0, 256, (37, 53), dtype=np.uint8)
    lut = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    np.testing.assert_array_equal(colorize(ids, lut), lut[ids])
    np.testing.assert_array_equal(colorize(ids[::2, 1::3], lut), lut[ids[::2, 1::3]])


@pytest.mark.parametrize("ids, lut", [
    (np.zeros((2, 2), np.int32), np.zeros((256, 3), np.uint8)),
    (np.zeros((2, 2, 1), np.uint8), np.zeros((256, 3), np.uint8)),
    (np.zeros((2, 2), np.uint8), np.zeros((9, 3), np.uint8)),
])
def test_colorize_rejects_bad_input(ids, lut):
    with pytest.raises(ValueError, match="must be"):
        colorize(ids, lut)


def test_overlay_hand_computed_pixel():
    rgb = np.array([[[100, 200, 51]]], np.uint8)
    colored = np.array([[[240, 143, 192]]], np.uint8)
    # 0.75 * 100 + 0.25 * 240 = 135; 0.75 * 200 + 0.25 * 143 = 185.75; 0.75 * 51 + 0.25 * 192 = 86.25
    assert overlay(rgb, colored, 0.25).tolist() == [[[135, 186, 86]]]
    np.testing.assert_array_equal(overlay(rgb, colored, 0.0), rgb)
    np.testing.assert_array_equal(overlay(rgb, colored, 1.0), colored)


def test_overlay_keeps_background_and_ignore(materials, rng):
    rgb = rng.integers(0, 256, IDS.shape + (3,), dtype=np.uint8)
    colored = colorize(IDS, materials.palette_lut())
    out = overlay(rgb, colored, 0.5, ids=IDS)
    blended = np.rint(0.5 * rgb.astype(float) + 0.5 * colored.astype(float))
    keep = (IDS == 0) | (IDS == 255)
    np.testing.assert_array_equal(out[keep], rgb[keep])
    assert np.abs(out[~keep] - blended[~keep]).max() <= 0.5 + 1e-9  # .5 ties may round either way
    assert not np.array_equal(out[~keep], rgb[~keep])


def test_overlay_rejects_mismatch():
    image = np.zeros((4, 6, 3), np.uint8)
    with pytest.raises(ValueError, match="one size"):
        overlay(image, np.zeros((4, 5, 3), np.uint8), 0.5)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, image, 1.5)
    with pytest.raises(ValueError, match="do not match"):
        overlay(image, image, 0.5, ids=np.zeros((3, 6), np.uint8))


def test_summary_hand_made_case(materials):
    summary = {entry["id"]: entry for entry in summarize(IDS, CONF, materials)}
    assert sorted(summary) == [0, 1, 2, 3]  # 255 (ignore) and 77 (no material) left out
    background, ceramic, fabric, glass = (summary[i] for i in range(4))
    assert (ceramic["name"], ceramic["color"]) == ("ceramic", [240, 143, 192])
    assert [e["pixels"] for e in (background, ceramic, fabric, glass)] == [9, 6, 3, 3]
    assert [e["fraction"] for e in (background, ceramic, fabric, glass)] == \
        pytest.approx([9 / 24, 6 / 24, 3 / 24, 3 / 24])
    assert background["bbox"] == [0, 0, 5, 3]
    assert ceramic["bbox"] == [2, 0, 4, 1]
    assert fabric["bbox"] == [1, 1, 2, 2]
    assert glass["bbox"] == [0, 3, 2, 3]
    assert background["centroid"] == pytest.approx([20 / 9, 15 / 9])
    assert ceramic["centroid"] == pytest.approx([3.0, 0.5])
    assert fabric["centroid"] == pytest.approx([4 / 3, 5 / 3])
    assert glass["centroid"] == pytest.approx([1.0, 3.0])
    assert ceramic["mean_confidence"] == pytest.approx((0.9 + 0.8 + 0.7 + 0.6 + 0.5 + 0.4) / 6)
    assert fabric["mean_confidence"] == pytest.approx((0.3 + 0.6 + 0.9) / 3)
    assert glass["mean_confidence"] == pytest.approx(0.5)
    assert background["mean_confidence"] == pytest.approx(0.5)
    assert all(isinstance(v, int) for e in summary.values() for v in e["bbox"] + [e["pixels"]])


def test_summary_min_fraction_and_no_confidence(materials):
    summary = summarize(IDS, None, materials, min_fraction=0.2)
    assert [(e["id"], e["pixels"]) for e in summary] == [(0, 9), (1, 6)]
    assert all(e["mean_confidence"] is None for e in summary)


def brute_force_summary(ids, confidence, materials):
    """Reference: np.nonzero per class, the obvious (slow) way."""
    out = []
    for material in materials:
        ys, xs = np.nonzero(ids == material.id)
        if len(xs):
            out.append({"id": material.id, "pixels": len(xs), "fraction": len(xs) / ids.size,
                        "bbox": [xs.min(), ys.min(), xs.max(), ys.max()],
                        "centroid": [xs.mean(), ys.mean()],
                        "mean_confidence": confidence[ys, xs].astype(np.float64).mean()})
    return out


def test_summary_matches_brute_force_on_a_large_custom_map(rng):
    classes = MaterialMap.from_entries([{"id": i, "name": f"m{i}", "color": [i, 255 - i, 7 * i % 256]}
                                        for i in range(23)])  # a MINC-style 23-class map
    blocks = rng.integers(0, 30, (12, 17), dtype=np.uint8)  # 23..29 are ids with no class
    ids = np.kron(blocks, np.ones((23, 19), np.uint8))[:270, :311]
    ids[rng.random(ids.shape) < 0.05] = 255
    confidence = rng.random(ids.shape, dtype=np.float32)
    got, want = summarize(ids, confidence, classes), brute_force_summary(ids, confidence, classes)
    assert [e["id"] for e in got] == [e["id"] for e in want]
    for g, w in zip(got, want):
        assert (g["pixels"], g["bbox"]) == (w["pixels"], w["bbox"])
        assert g["centroid"] == pytest.approx(w["centroid"], rel=1e-12)
        assert g["fraction"] == pytest.approx(w["fraction"], rel=1e-12)
        assert g["mean_confidence"] == pytest.approx(w["mean_confidence"], rel=1e-6)


def test_summary_rejects_mismatched_confidence(materials):
    with pytest.raises(ValueError, match="confidence"):
        summarize(IDS, CONF[:, :5], materials)
