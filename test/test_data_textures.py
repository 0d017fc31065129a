"""Procedural textures: shape, tileability, variation within a class, determinism, export."""
from __future__ import annotations

import numpy as np
import pytest

from matseg_ros.data.noise import fractal_noise, periodic_noise
from matseg_ros.data.textures import MATERIALS, STYLES, export_textures, make_texture


def seam_ratio(tex: np.ndarray, axis: int) -> float:
    """Jump across the wrap-around seam / largest jump between neighbouring rows (or columns).

    A tileable texture continues across the seam like anywhere else (grids with an integer
    number of cells put a cell border there, as at every other border); one that does not
    tile has a seam jump that stands out (> 1).
    """
    t = np.moveaxis(tex.astype(np.float64), axis, 0).reshape(tex.shape[axis], -1)
    inner = np.abs(np.diff(t, axis=0)).mean(axis=1)
    return float(np.abs(t[0] - t[-1]).mean() / max(inner.max(), 1e-6))


def test_periodic_noise_is_exactly_periodic_and_normalised(rng):
    n = periodic_noise((64, 96), rng, scale=4.0, aniso=3.0, angle=0.7)
    assert n.shape == (64, 96) and n.dtype == np.float32
    assert abs(n.mean()) < 1e-4 and abs(n.std() - 1) < 1e-3
    # periodic: the jump across the wrap seam is like any neighbouring jump
    assert seam_ratio(n, 0) <= 1.0 and seam_ratio(n, 1) <= 1.0
    assert seam_ratio(fractal_noise((64, 64), rng, 2.0), 1) <= 1.0
    # the measure catches what does not tile: blurred noise without wrap-around, a ramp
    import cv2
    plain = cv2.GaussianBlur(rng.standard_normal((64, 64)).astype(np.float32), (0, 0), 4)
    assert seam_ratio(plain, 1) > 1.5
    assert seam_ratio(np.tile(np.linspace(0, 1, 64), (8, 1)), 1) > 20


@pytest.mark.parametrize("material", MATERIALS)
def test_every_style_is_rgb_uint8_and_tiles(material):
    for k, style in enumerate(STYLES[material]):
        tex = make_texture(material, (96, 128), np.random.default_rng(k), style)
        assert tex.shape == (96, 128, 3) and tex.dtype == np.uint8
        assert tex.std() > 1.0, f"{material}/{style} is flat"
        for axis in (0, 1):
            assert seam_ratio(tex, axis) <= 1.3, f"{material}/{style} has a seam along axis {axis}"


def test_same_seed_same_texture_and_different_seed_differs():
    a = make_texture("wood", 64, np.random.default_rng(3))
    b = make_texture("wood", 64, np.random.default_rng(3))
    c = make_texture("wood", 64, np.random.default_rng(4))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 1


def test_within_class_variation_in_colour():
    means = np.array([make_texture("fabric", 32, np.random.default_rng(s)).reshape(-1, 3).mean(0)
                      for s in range(12)])
    assert means.std(axis=0).max() > 15  # different colours of cloth, not one pattern


def test_bad_names_and_sizes_are_clear_errors(rng):
    with pytest.raises(KeyError, match="unknown material 'velvet'"):
        make_texture("velvet", 32, rng)
    with pytest.raises(KeyError, match="known: tiles"):
        make_texture("ceramic", 32, rng, style="brick")
    with pytest.raises(ValueError, match="at least 8"):
        make_texture("paper", (4, 32), rng)


def test_export_textures_writes_each_material_deterministically(tmp_path):
    import cv2

    paths = export_textures(tmp_path / "a", size=32, seed=5)
    names = {p.name for p in paths}
    assert {f"{m}.png" for m in MATERIALS} <= names
    assert len(paths) == len(MATERIALS) + sum(len(s) for s in STYLES.values())
    image = cv2.imread(str(tmp_path / "a" / "metal.png"))
    assert image.shape == (32, 32, 3)
    again = export_textures(tmp_path / "b", size=32, seed=5)
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(paths, again))
    other = export_textures(tmp_path / "c", size=32, seed=6)
    assert paths[0].read_bytes() != other[0].read_bytes()
