"""`matseg data composite` and copy_paste on tiny fixture sets written here: masks follow the
paste exactly, only the named split is read, output bytes do not depend on --workers."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from matseg_ros.data import cli as data_cli
from matseg_ros.data import copy_paste
from matseg_ros.data.composite import Settings, compose_dataset
from matseg_ros.io.dataset_layout import read_split, write_split
from matseg_ros.io.masks import read_mask, write_mask
from matseg_ros.materials import load_materials
from matseg_ros.training.collapse import truth_materials

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
H, W = 48, 64
METAL, PLASTIC, GLASS, PAPER, STONE, WOOD = 4, 6, 3, 5, 7, 8


@pytest.fixture(scope="module")
def materials():
    return load_materials()


def object_photo(material: int, hole: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A white board (ignore) with a 20×20 square of `material` at rows 10-29, columns 20-39;
    with `hole`, its centre 10×10 (rows 15-24, columns 25-34) is ignore."""
    rgb = np.full((H, W, 3), 235, np.uint8)
    ids = np.full((H, W), 255, np.uint8)
    colour = np.random.default_rng(seed).integers(0, 200, 3)
    rgb[10:30, 20:40] = colour
    ids[10:30, 20:40] = material
    if hole:
        ids[15:25, 25:35] = 255
    return rgb, ids


def room(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Wood above stone, no background (0) anywhere."""
    rgb = np.random.default_rng(seed).integers(60, 120, (H, W, 3)).astype(np.uint8)
    ids = np.full((H, W), WOOD, np.uint8)
    ids[H // 2:] = STONE
    return rgb, ids


def write_set(root: Path, splits: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]], materials) -> Path:
    for split, images in splits.items():
        for image_id, (rgb, ids) in images.items():
            (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.png"), rgb[..., ::-1])
            write_mask(root / "SegmentationClass" / f"{image_id}.png", ids, materials)
        write_split(root, split, sorted(images))
    return root


@pytest.fixture
def sets(tmp_path, materials):
    objects = write_set(tmp_path / "objects", {
        "train": {"tr_metal": object_photo(METAL, True, 1), "tr_plastic": object_photo(PLASTIC, seed=2),
                  "tr_glass": object_photo(GLASS, seed=3)},
        "test": {"te_paper": object_photo(PAPER, seed=4), "te_metal": object_photo(METAL, seed=5)}}, materials)
    rooms = write_set(tmp_path / "rooms", {"train": {"tr_room1": room(1), "tr_room2": room(2)},
                                           "test": {"te_room3": room(3)}}, materials)
    return objects, rooms


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    data_cli.add_arguments(parser)
    return data_cli.run(parser.parse_args(["composite", *argv]))


def test_paste_without_rotation_follows_the_object_exactly():
    """Translation only (part of the object off the right edge): the object's labels, ignore
    hole included, land where its pixels do; every other pixel keeps the background's."""
    src_rgb, src_ids = object_photo(METAL, hole=True, seed=1)
    labels, regions = copy_paste.labelled_regions(src_ids)
    assert [(r["material"], r["pixels"]) for r in regions] == [(METAL, 400 - 100)]
    piece = copy_paste.cut(src_rgb, src_ids, labels, regions[0]["label"], margin=4)
    assert piece.ids.shape == (28, 28) and piece.support.sum() == 400  # the hole joins the cut-out
    bg_rgb, bg_ids = room(7)
    tx, ty = 50, 5  # crop origin (16, 6) in the photo: the square's x 20..39 lands at 54..73
    out_rgb, out_ids = copy_paste.paste(bg_rgb, bg_ids, piece, np.float64([[1, 0, tx], [0, 1, ty]]), feather=1.0)

    expected = bg_ids.copy()
    ys, xs = np.mgrid[10:30, 20:40]
    ys, xs = ys - 6 + ty, xs - 16 + tx
    keep = xs < W
    expected[ys[keep], xs[keep]] = src_ids[10:30, 20:40][keep]
    np.testing.assert_array_equal(out_ids, expected)
    assert (out_ids == 255).sum() == 10 * 5 and (out_ids == METAL).sum() == 20 * 10 - 10 * 5  # 10 columns visible
    # the object's colour inside, feathered only at its edge; the background far from it untouched
    inner = out_rgb[ty + 7:ty + 21, tx + 7:W].astype(int) - src_rgb[13:27, 23:23 + W - tx - 7].astype(int)
    assert np.abs(inner).max() <= 1
    np.testing.assert_array_equal(out_rgb[:, :tx], bg_rgb[:, :tx])


def test_rotated_paste_matches_the_warped_object_mask():
    src_rgb, src_ids = object_photo(METAL, hole=True, seed=1)
    labels, regions = copy_paste.labelled_regions(src_ids)
    piece = copy_paste.cut(src_rgb, src_ids, labels, regions[0]["label"], margin=4)
    crop = src_ids[6:34, 16:44]  # the same window, cut independently
    matrix = cv2.getRotationMatrix2D((13.5, 13.5), 27.0, 1.3)
    matrix[:, 2] += (30 - 13.5, 22 - 13.5)
    bg_rgb, bg_ids = room(8)
    _, out_ids = copy_paste.paste(bg_rgb, bg_ids, piece, matrix, feather=1.5)

    def warped(region: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(region.astype(np.uint8), matrix, (W, H), flags=cv2.INTER_NEAREST) > 0

    np.testing.assert_array_equal(out_ids == METAL, warped(crop == METAL))
    hole = np.zeros_like(crop, bool)
    hole[9:19, 9:19] = True
    np.testing.assert_array_equal(out_ids == 255, warped(hole))
    under = ~warped((crop == METAL) | hole)
    np.testing.assert_array_equal(out_ids[under], bg_ids[under])
    assert not (out_ids == 0).any()  # the rotated crop's borders are transparent, not background


def test_a_background_hole_stays_transparent():
    rgb, ids = object_photo(PLASTIC, seed=2)
    ids[15:25, 25:35] = 0  # seen through the object: background, not part of it
    labels, regions = copy_paste.labelled_regions(ids)
    piece = copy_paste.cut(rgb, ids, labels, regions[0]["label"])
    assert piece.support.sum() == 300
    bg_rgb, bg_ids = room(9)
    _, out = copy_paste.paste(bg_rgb, bg_ids, piece, np.float64([[1, 0, 0], [0, 1, 0]]))
    np.testing.assert_array_equal(out[9:19, 9:19], bg_ids[9:19, 9:19])
    assert (out == PLASTIC).sum() == 300


def read_all(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_only_the_named_split_is_read_and_workers_do_not_change_a_byte(sets, tmp_path, materials):
    objects, rooms = sets
    settings = Settings(count=10, seed=3, size=(H, W), mosaic=0.3, min_materials=2)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"train{workers}"
        doc = compose_dataset([(objects, "train")], [(rooms, "train")], out, settings, "train", val=0.2,
                              materials=materials, workers=workers)
        outputs[workers] = read_all(out)
    assert outputs[1] == outputs[2]
    text = outputs[1]["provenance.json"].decode()
    assert "tr_metal" in text and "tr_room" in text and "te_" not in text
    assert doc["mosaics"] > 0 and doc["pastes"] > 0 and doc["sources"][0]["cutouts"] == 3
    assert sorted(read_split(tmp_path / "train1", "train") + read_split(tmp_path / "train1", "val")) == \
        sorted(read_split(tmp_path / "train1", "trainval")) == [f"{i:06d}" for i in range(10)]
    assert len(read_split(tmp_path / "train1", "val")) == 2
    for i in range(10):
        ids, unknown = read_mask(tmp_path / "train1" / "SegmentationClass" / f"{i:06d}.png", materials)
        assert ids.shape == (H, W) and unknown == 0
        assert len(truth_materials(ids)) >= 2
        assert not (ids == 0).any()  # no input has background: nothing may invent it

    doc = compose_dataset([(objects, "test")], [(rooms, "test")], tmp_path / "test", settings, "test",
                          materials=materials)
    text = (tmp_path / "test" / "provenance.json").read_text()
    assert "tr_" not in text and "te_paper" in text
    assert sorted(json.loads(text)["cutouts_per_material"]) == ["metal", "paper"]
    assert doc["splits"] == {"test": 10}


def test_min_materials_holds_for_every_image_with_one_object_each(sets, tmp_path, materials):
    objects, _ = sets  # backgrounds are then the object photos: one material each
    compose_dataset([(objects, "train")], [], tmp_path / "out", Settings(
        count=8, seed=1, size=(H, W), objects=(1, 1), min_materials=2), materials=materials)
    for i in range(8):
        ids, _ = read_mask(tmp_path / "out" / "SegmentationClass" / f"{i:06d}.png", materials)
        assert len(truth_materials(ids)) >= 2


def test_existing_output_is_refused_without_force(sets, tmp_path, capsys):
    objects, rooms = sets
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["--source", f"{objects}:train", "--background", str(rooms), "--output", str(out),
            "--count", "3", "--size", str(H), str(W), "--workers", "1"]
    assert run_cli(*args) == 2 and "already exists; pass --force" in capsys.readouterr().err
    assert (out / "keep.txt").exists()
    assert run_cli(*args, "--force") == 0 and "3 composites" in capsys.readouterr().out
    assert not (out / "keep.txt").exists() and (out / "JPEGImages" / "000002.jpg").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert json.loads((out / "provenance.json").read_text())["command"].startswith("matseg ")


def test_a_corrupt_source_mask_names_the_file(sets, tmp_path, capsys):
    objects, _ = sets
    (objects / "SegmentationClass" / "tr_glass.png").write_bytes(b"not a png")
    assert run_cli("--source", str(objects), "--output", str(tmp_path / "out"), "--count", "2",
                   "--workers", "1") == 2
    assert "tr_glass.png" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, value, pattern", [
    ("--objects-per-image", ["3", "1"], "--objects-per-image"), ("--mosaic", ["1.5"], "--mosaic"),
    ("--count", ["0"], "--count"), ("--val", ["1"], "--val")])
def test_bad_options_name_the_option(sets, tmp_path, capsys, option, value, pattern):
    objects, _ = sets
    assert run_cli("--source", str(objects), "--output", str(tmp_path / "o"), "--count", "2",
                   option, *value) == 2
    assert pattern in capsys.readouterr().err


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present (the shared real data)")
def test_trashnet_photos_composite(tmp_path, materials):
    """A handful of TrashNet photos imported in place (links, not copies), composited from
    their training split only."""
    from matseg_ros.data.importing.command import import_dataset

    annotations = tmp_path / "xml"
    annotations.mkdir()
    for name in sorted(os.listdir(REAL / "trashnet" / "annotations"))[::150]:
        (annotations / name).symlink_to(REAL / "trashnet" / "annotations" / name)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("glass: glass\npaper: paper\ncardboard: paper\nplastic: plastic\nmetal: metal\n"
                       "trash: ignore\n")
    tn = tmp_path / "tn"
    import_dataset("voc", annotations, REAL / "trashnet" / "images", mapping, tn, materials, val=0.2,
                   test=0.2, workers=2)
    doc = compose_dataset([(tn, "train")], [], tmp_path / "comp", Settings(count=6, seed=0, mosaic=0.3),
                          materials=materials, workers=1)
    refs = [r for d in doc["images"].values() for r in d.get("objects", []) + d.get("photos", [])]
    refs += [d["background"] for d in doc["images"].values() if "background" in d]
    used = {ref.split("/")[1].split("#")[0] for ref in refs}
    assert used <= set(read_split(tn, "train"))
    for i in range(6):
        ids, _ = read_mask(tmp_path / "comp" / "SegmentationClass" / f"{i:06d}.png", materials)
        assert ids.shape == (384, 512) and truth_materials(ids)
