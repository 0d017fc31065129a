"""Synthetic scenes: the rasteriser against hand-computed cases, render_scene, generate_dataset."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from matseg_ros.data.render3d import Camera, Raster, Surface, make_face
from matseg_ros.data.scene import TextureBank, pyramid, read_textures
from matseg_ros.data.synth import generate_dataset, render_scene
from matseg_ros.io.dataset_layout import read_split
from matseg_ros.io.masks import read_mask
from matseg_ros.materials import MaterialMap


def flat(color, emissive=True, **kw) -> Surface:
    return Surface(pyramid(np.full((16, 16, 3), color, np.float32), 4), 8.0, emissive=emissive, **kw)


def rect(x0, x1, y0, y1, z, label, surface):
    pts = [(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)]
    return make_face(pts, (0, 0, -1), (1, 0, 0), label, surface)


@pytest.fixture
def camera():
    # hfov 90° on 100 px: f = 50, principal point 49.5; world y up = image y down
    return Camera.look((0, 0, 0), 0.0, 0.0, 0.0, np.pi / 2, (100, 100))


def expected_box(x0, x1, y0, y1, z):
    """Pixels whose centres fall inside the projected rectangle, computed independently."""
    u = np.arange(100)[None, :]
    v = np.arange(100)[:, None]
    return ((u > 50 * x0 / z + 49.5) & (u < 50 * x1 / z + 49.5)
            & (v > -50 * y1 / z + 49.5) & (v < -50 * y0 / z + 49.5))


def within_a_pixel(got: np.ndarray, want: np.ndarray) -> bool:
    """`got` holds every pixel centre inside the projection and nothing beyond its 1-px rim."""
    import cv2

    rim = cv2.dilate(want.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return bool((got >= want).all() and (got <= rim).all())


def test_face_covers_its_projection_and_mask_matches_image_exactly(camera):
    raster = Raster(camera, light=(0, 0, 0), ambient=1.0, power=0.0)
    raster.draw(rect(-1.01, 1.01, -0.51, 0.51, 2.0, 3, flat((0.2, 0.4, 0.6))))
    want = expected_box(-1.01, 1.01, -0.51, 0.51, 2.0)
    assert want.sum() == 50 * 26
    labelled = raster.ids == 3
    assert within_a_pixel(labelled, want)
    # the mask is exactly where the face was painted: no anti-aliased or missed pixel
    np.testing.assert_array_equal(raster.rgb.any(axis=2), labelled)
    np.testing.assert_allclose(raster.rgb[labelled], np.tile([0.2, 0.4, 0.6], (labelled.sum(), 1)), atol=1e-6)


def test_nearer_face_wins_whatever_the_drawing_order(camera):
    far = rect(-1.01, 1.01, -0.51, 0.51, 2.0, 3, flat((1, 0, 0)))
    near = rect(-0.205, 0.205, -0.205, 0.205, 1.0, 5, flat((0, 1, 0)))
    results = []
    for order in ((far, near), (near, far)):
        raster = Raster(camera, (0, 0, 0), 1.0, 0.0)
        for face in order:
            raster.draw(face)
        results.append(raster.ids.copy())
    np.testing.assert_array_equal(results[0], results[1])
    assert within_a_pixel(results[0] == 5, expected_box(-0.205, 0.205, -0.205, 0.205, 1.0))
    assert within_a_pixel((results[0] == 3) | (results[0] == 5), expected_box(-1.01, 1.01, -0.51, 0.51, 2.0))


def test_back_faces_and_faces_behind_the_camera_are_not_drawn(camera):
    raster = Raster(camera, (0, 0, 0), 1.0, 0.0)
    face = rect(-1, 1, -1, 1, 2.0, 3, flat((1, 1, 1)))
    face.e2 = -face.e2
    face.normal = -face.normal  # now facing away from the camera
    raster.draw(face)
    raster.draw(rect(-1, 1, -1, 1, -2.0, 4, flat((1, 1, 1))))
    assert not raster.ids.any()


def test_lambert_shading_matches_hand_computation(camera):
    # light at the camera, face 2 m ahead facing it: n·l = 1, falloff = power / (1 + (2/3)^2)
    raster = Raster(camera, light=(0, 0, 0), ambient=0.3, power=0.7)
    raster.draw(rect(-1, 1, -1, 1, 2.0, 1, flat((0.5, 0.5, 0.5), emissive=False)))
    expected = 0.5 * (0.3 + 0.7 / (1 + (2 / 3) ** 2))
    np.testing.assert_allclose(raster.rgb[50, 50], expected, rtol=0.02)


def test_glass_shows_what_lies_behind_tinted(camera):
    raster = Raster(camera, (0, 0, 0), 1.0, 0.0)
    raster.draw(rect(-1.5, 1.5, -1.5, 1.5, 3.0, 6, flat((0.8, 0.2, 0.2))))
    pane = flat((0.0, 0.0, 0.0), emissive=False, glass=0.5)
    pane.tint = np.array([1.0, 1.0, 0.5], np.float32)
    raster.draw(rect(-0.5, 0.5, -0.5, 0.5, 1.0, 3, pane))
    assert raster.ids[50, 50] == 3
    np.testing.assert_allclose(raster.rgb[50, 50], [0.4, 0.1, 0.05], atol=1e-5)


def test_render_room_views_carry_z_depth_and_the_pinhole_k(materials):
    """The first default view is render_scene's; a fixed field of view gives K by hand; the
    depth is z (not the ray length): a wall facing the camera square on reads the same z
    at every pixel it covers, while its ray lengths grow towards the edges."""
    from matseg_ros.data.synth import render_room
    bank = TextureBank(0, variants=2, size=64)
    first = render_room(np.random.default_rng(7), (96, 128), materials, bank)[0]
    rgb, ids = render_scene(np.random.default_rng(7), (96, 128), materials, TextureBank(0, variants=2, size=64))
    np.testing.assert_array_equal(first.rgb, rgb)
    np.testing.assert_array_equal(first.ids, ids)
    views = render_room(np.random.default_rng(3), (96, 128), materials, bank, hfov_deg=60.0,
                        yaw_offsets_deg=(-5.0, 5.0))
    f = 64 / np.tan(np.radians(30.0))
    for view in views:
        np.testing.assert_allclose(view.K, [[f, 0, 63.5], [0, f, 47.5], [0, 0, 1]])
        assert view.depth_m.shape == (96, 128) and view.depth_m.dtype == np.float32
        assert (view.depth_m > 0).all() and view.depth_m.max() < 12.0  # a closed room, at most 7 x 8 x 3.2 m
    assert not np.array_equal(views[0].rgb, views[1].rgb)
    camera = Camera.look((0, 0, 0), 0.0, 0.0, 0.0, np.radians(60.0), (40, 40))
    raster = Raster(camera, (0, 0, 0), 1.0, 0.0)
    raster.draw(rect(-3, 3, -3, 3, 2.5, 6, flat((0.5, 0.5, 0.5))))
    np.testing.assert_allclose(1.0 / raster.invz, 2.5, rtol=1e-5)


def test_render_scene_is_deterministic_and_labels_are_valid(materials):
    bank = TextureBank(0, variants=2, size=64)
    a = render_scene(np.random.default_rng(7), (96, 128), materials, bank)
    b = render_scene(np.random.default_rng(7), (96, 128), materials, TextureBank(0, variants=2, size=64))
    c = render_scene(np.random.default_rng(8), (96, 128), materials, bank)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert a[0].shape == (96, 128, 3) and a[0].dtype == np.uint8
    assert a[1].shape == (96, 128) and a[1].dtype == np.uint8
    seen = set()
    for seed in range(4):
        _, ids = render_scene(np.random.default_rng(seed), (96, 128), materials, bank)
        assert set(np.unique(ids)) <= set(materials.ids)
        seen |= set(np.unique(ids).tolist())
    assert len(seen - {0}) >= 6  # scenes mix most of the materials


def test_classes_missing_from_the_map_become_background(materials):
    only_wood = MaterialMap.from_entries([{"id": 0, "name": "background", "color": [0, 0, 0]},
                                          {"id": 1, "name": "wood", "color": [245, 169, 98]}])
    bank = TextureBank(0, variants=2, size=64)
    _, ids = render_scene(np.random.default_rng(3), (96, 128), only_wood, bank)
    _, full = render_scene(np.random.default_rng(3), (96, 128), materials, bank)
    np.testing.assert_array_equal(ids == 1, full == 8)
    assert set(np.unique(ids)) <= {0, 1}


MAGENTA = (255, 0, 255)


def magenta_wood_folder(folder):
    """A folder with one added wood texture, a colour no generated material has."""
    folder.mkdir()
    cv2.imwrite(str(folder / "wood_grain_magenta.png"), np.full((48, 80, 3), MAGENTA[::-1], np.uint8))
    (folder / "README.txt").write_text("not an image: skipped")
    return folder


def magenta_share(rgb: np.ndarray, where: np.ndarray) -> float:
    r, g, b = (rgb[..., k].astype(int)[where] for k in range(3))
    return float(((r - g > 60) & (b - g > 60)).mean()) if where.any() else 0.0


def test_added_textures_join_the_bank_and_reach_the_images(tmp_path, materials):
    extra = read_textures(magenta_wood_folder(tmp_path / "tex"), size=32)
    assert list(extra) == ["wood"] and extra["wood"][0][1] == "grain"
    np.testing.assert_allclose(extra["wood"][0][0], np.broadcast_to(np.divide(MAGENTA, 255), (32, 32, 3)))
    bank = TextureBank(0, variants=1, size=32, extra=extra)
    plain = TextureBank(0, variants=1, size=32)
    np.testing.assert_array_equal(bank.get("wood", 0)[0][0], plain.get("wood", 0)[0][0])  # index 0: generated
    assert bank.get("wood", 1)[1] == "grain" and bank.get("wood", 3)[0][0][0, 0].tolist() == [1.0, 0.0, 1.0]
    assert plain.get("wood", 1)[0][0] is plain.get("wood", 0)[0][0]  # no extras: one variant
    wood = materials.names.index("wood")  # ids are 0..8 in list order
    with_extra, without = [], []
    for seed in range(12):
        for share, b in ((with_extra, bank), (without, plain)):
            rgb, ids = render_scene(np.random.default_rng(seed), (96, 128), materials, b)
            share.append(magenta_share(rgb, ids == wood))
    assert max(without) < 0.01 and np.mean(with_extra) > 0.1


def test_add_textures_through_generate_dataset_and_errors(tmp_path):
    summary = generate_dataset(tmp_path / "ds", 2, (64, 96), seed=1, workers=1, variants=1,
                               add_textures=(magenta_wood_folder(tmp_path / "tex"),))
    assert summary["added_textures"] == {"wood": 1}
    assert summary["texture_folders"] == [str(tmp_path / "tex")]
    bad = tmp_path / "bad"
    bad.mkdir()
    cv2.imwrite(str(bad / "marble_polished.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"marble_polished.png: a texture file name must be "
                                         r"<material>_<style>.*wood_planks"):
        read_textures(bad)
    (bad / "marble_polished.png").rename(bad / "stone_marble.png")
    (bad / "wood_planks_kitchen.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="wood_planks_kitchen.jpg: not a readable image"):
        read_textures(bad)
    with pytest.raises(ValueError, match="texture folder not found"):
        read_textures(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no .jpg/.jpeg/.png texture images"):
        read_textures(tmp_path / "ds" / "ImageSets")
    with pytest.raises(ValueError, match="unknown materials"):
        TextureBank(0, extra={"velvet": []})


def test_render_scene_rejects_tiny_sizes(rng):
    with pytest.raises(ValueError, match="at least 16"):
        render_scene(rng, (8, 8))


def test_generate_dataset_same_bytes_with_any_worker_count(tmp_path, materials):
    one = generate_dataset(tmp_path / "one", 4, (96, 128), seed=3, workers=1, variants=2)
    generate_dataset(tmp_path / "two", 4, (96, 128), seed=3, workers=2, variants=2)
    generate_dataset(tmp_path / "other", 4, (96, 128), seed=4, workers=1, variants=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert len(files) == 4 + 4 + 4 + 1  # images, masks, split lists, synth.json
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    first = "JPEGImages/000000.jpg"
    assert (tmp_path / "one" / first).read_bytes() != (tmp_path / "other" / first).read_bytes()
    ids, ignored = read_mask(tmp_path / "one/SegmentationClass/000001.png", materials)
    assert ids.shape == (96, 128) and ignored == 0
    splits = {s: read_split(tmp_path / "one", s) for s in ("train", "val", "test", "trainval")}
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == [f"{i:06d}" for i in range(4)]
    assert sorted(splits["trainval"]) == sorted(splits["train"] + splits["val"])
    assert one["count"] == 4


def test_synth_command_line(tmp_path):
    env_cmd = [sys.executable, "-m", "matseg_ros.cli", "data", "synth"]
    done = subprocess.run(env_cmd + ["--output", str(tmp_path / "ds"), "--count", "2", "--size", "64x48",
                                     "--workers", "1", "--variants", "1", "--textures", str(tmp_path / "tex"),
                                     "--texture-size", "16"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ds/JPEGImages/000001.jpg").is_file() and (tmp_path / "tex/wood.png").is_file()
    bad = subprocess.run(env_cmd + ["--output", str(tmp_path / "x"), "--count", "1", "--size", "big"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "WIDTHxHEIGHT" in bad.stderr
    zero = subprocess.run(env_cmd + ["--output", str(tmp_path / "x"), "--count", "0"], capture_output=True, text=True)
    assert zero.returncode == 2 and "count must be at least 1" in zero.stderr
