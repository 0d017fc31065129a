"""`matseg data import`: COCO, LabelMe, VOC boxes and class folders on fixtures written here,
bad input named by file and object, atomic output, and the shared real sets when present."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as coco_mask
import pytest

from matseg_ros.data import cli as data_cli
from matseg_ros.data.importing.command import import_dataset
from matseg_ros.data.importing.formats import AnnotationError
from matseg_ros.data.importing.mapping import MappingError
from matseg_ros.data.importing.masks import box_foreground
from matseg_ros.io.dataset_layout import read_objects, read_split
from matseg_ros.io.masks import read_mask

REAL = Path(__file__).resolve().parents[2] / "shared" / "realdata"
CERAMIC, FABRIC, GLASS, METAL, PAPER, PLASTIC = 1, 2, 3, 4, 5, 6


def run_cli(*argv: str) -> int:
    import argparse
    parser = argparse.ArgumentParser()
    data_cli.add_arguments(parser)
    return data_cli.run(parser.parse_args(["import", *argv]))


def write_image(path: Path, size=(60, 80), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    cv2.imwrite(str(path), rgb)
    return path


def object_photo(path: Path, color=(30, 90, 200), size=(120, 160), centre=(80, 60), radius=30) -> np.ndarray:
    """A saturated disc on a white, slightly noisy board; returns the true object mask."""
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal(235, 6, (*size, 3)), 0, 255).astype(np.uint8)
    truth = np.zeros(size, np.uint8)
    cv2.circle(truth, centre, radius, 1, -1)
    img[truth.astype(bool)] = np.clip(rng.normal(color, 8, (int(truth.sum()), 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cv2.imencode(path.suffix, img[..., ::-1])[1].tobytes())  # any file name bytes
    return truth.astype(bool)


def write_yaml(path: Path, mapping: dict) -> Path:
    path.write_text("".join(f"{k}: {v}\n" for k, v in mapping.items()))
    return path


def coco_doc(images: list[dict], annotations: list[dict], categories: dict[int, str]) -> dict:
    return {"images": images, "annotations": annotations,
            "categories": [{"id": k, "name": v} for k, v in categories.items()]}


@pytest.fixture
def coco(tmp_path):
    """Two images: polygons drawn in order (a sample on its dish), an RLE region (compressed
    and uncompressed), a crowd region and a category mapped to ignore."""
    images = tmp_path / "images"
    write_image(images / "a.jpg")
    write_image(images / "b.png", seed=1)
    dish = [[5, 5, 75, 5, 75, 55, 5, 55]]             # pixels x 5..74, y 5..54
    sample = [[20, 10, 40, 10, 40, 30, 20, 30]]        # x 20..39, y 10..29, on top of the dish
    grass = [[50, 40, 60, 40, 60, 50, 50, 50]]         # ignore, on top of the dish
    region = np.zeros((60, 80), np.uint8, order="F")
    region[30:40, 10:30] = 1
    compressed = coco_mask.encode(region)
    compressed["counts"] = compressed["counts"].decode("ascii")
    crowd = np.zeros((60, 80), np.uint8, order="F")
    crowd[45:55, 60:70] = 1
    flat = crowd.flatten(order="F")  # uncompressed RLE: run lengths, starting with zeros
    changes = np.flatnonzero(np.diff(np.r_[0, flat, 0]))
    counts = np.diff(np.r_[0, changes]).tolist()
    doc = coco_doc(
        [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60},
         {"id": 2, "file_name": "b.png", "width": 80, "height": 60}],
        [{"id": 1, "image_id": 1, "category_id": 14, "segmentation": dish, "iscrowd": 0},
         {"id": 2, "image_id": 1, "category_id": 11, "segmentation": sample, "iscrowd": 0},
         {"id": 3, "image_id": 1, "category_id": 12, "segmentation": grass, "iscrowd": 0},
         {"id": 4, "image_id": 2, "category_id": 18, "segmentation": compressed, "iscrowd": 0},
         {"id": 5, "image_id": 2, "category_id": 11, "segmentation": {"counts": counts, "size": [60, 80]},
          "iscrowd": 1}],
        {11: "carpet", 12: "grass", 14: "petri_dish", 18: "stainless_steel"})
    annotations = tmp_path / "ann.json"
    annotations.write_text(json.dumps(doc))
    mapping = write_yaml(tmp_path / "map.yaml", {"carpet": "fabric", "grass": "ignore",
                                                 "petri_dish": "plastic", "stainless_steel": "metal"})
    return annotations, images, mapping


def test_coco_polygons_rle_crowd_and_ignore_give_the_hand_computed_masks(coco, tmp_path, materials):
    annotations, images, mapping = coco
    out = tmp_path / "out"
    doc = import_dataset("coco", annotations, images, mapping, out, materials, val=0, test=0, workers=1)
    a, unknown = read_mask(out / "SegmentationClass" / "a.png", materials)
    expected = np.full((60, 80), 255, np.uint8)
    expected[5:55, 5:75] = PLASTIC
    expected[10:30, 20:40] = FABRIC
    expected[40:50, 50:60] = 255
    assert unknown == 0 and np.array_equal(a, expected)
    b, _ = read_mask(out / "SegmentationClass" / "b.png", materials)
    expected = np.full((60, 80), 255, np.uint8)
    expected[30:40, 10:30] = METAL  # the crowd region stays ignore by default
    assert np.array_equal(b, expected)
    # images are copied byte for byte, with their own format
    assert (out / "JPEGImages" / "a.jpg").read_bytes() == (images / "a.jpg").read_bytes()
    assert (out / "JPEGImages" / "b.png").read_bytes() == (images / "b.png").read_bytes()
    assert doc["pixels_per_class"]["fabric"] == 400 and doc["pixels_per_class"]["metal"] == 200
    assert doc["mapping"]["grass"] == "ignore" and doc["imported"] == 2
    assert sorted(read_split(out, "train")) == ["a", "b"]
    assert json.loads((out / "provenance.json").read_text())["format"] == "coco"
    assert not (out / "objects.json").exists()  # exact regions: no boxes to score


def test_crowd_label_option_and_rasterisation_matches_opencv(coco, tmp_path, materials):
    annotations, images, mapping = coco
    out = tmp_path / "out"
    assert run_cli("--format", "coco", "--annotations", str(annotations), "--images", str(images),
                   "--mapping", str(mapping), "--output", str(out), "--crowd", "label",
                   "--val", "0", "--test", "0", "--workers", "2") == 0
    b, _ = read_mask(out / "SegmentationClass" / "b.png", materials)
    assert (b[45:55, 60:70] == FABRIC).all()
    # an irregular polygon: COCO's rasteriser and OpenCV's agree inside (edges may differ by a pixel)
    poly = np.array([[3.0, 4.0], [70.5, 9.0], [52.0, 50.0], [12.0, 41.5]])
    coco_region = coco_mask.decode(coco_mask.frPyObjects([poly.ravel().tolist()], 60, 80)).squeeze().astype(bool)
    cv_region = np.zeros((60, 80), np.uint8)
    cv2.fillPoly(cv_region, [np.round(poly).astype(np.int32)], 1)
    inner = cv2.erode(cv_region, np.ones((3, 3), np.uint8)).astype(bool)
    assert coco_region[inner].all() and coco_region.sum() == pytest.approx(cv_region.sum(), rel=0.06)


def test_labelme_polygon_rectangle_circle_and_skipped_lines(tmp_path, materials):
    folder = tmp_path / "labelme"
    write_image(folder / "shot.jpg")
    (folder / "shot.json").write_text(json.dumps({
        "imagePath": "shot.jpg", "imageWidth": 80, "imageHeight": 60, "imageData": None,
        "shapes": [
            {"label": "tiles", "shape_type": "rectangle", "points": [[0, 0], [40, 30]]},
            {"label": "rug", "shape_type": "polygon", "points": [[50, 10], [70, 10], [70, 20], [50, 20]]},
            {"label": "cup", "shape_type": "circle", "points": [[20, 45], [25, 45]]},
            {"label": "cable", "shape_type": "line", "points": [[0, 59], [79, 59]]},
        ]}))
    mapping = write_yaml(tmp_path / "m.yaml", {"tiles": "ceramic", "rug": "fabric", "cup": "ceramic",
                                               "cable": "metal"})
    out = tmp_path / "out"
    import_dataset("labelme", folder, folder, mapping, out, materials, val=0, test=0)
    ids, _ = read_mask(out / "SegmentationClass" / "shot.png", materials)
    assert (ids[0:30, 0:40] == CERAMIC).all() and (ids[10:20, 50:70] == FABRIC).all()
    disc = np.zeros((60, 80), np.uint8)
    cv2.circle(disc, (20, 45), 5, 1, -1)
    assert (ids[disc.astype(bool)] == CERAMIC).all()
    assert (ids[59] == 255).all()  # a line labels no area
    assert int((ids == 255).sum()) == 60 * 80 - 1200 - 200 - int(disc[30:].sum())


def test_voc_boxes_become_grabcut_masks_inside_the_object(tmp_path, materials):
    images, annotations = tmp_path / "images", tmp_path / "xml"
    truth = object_photo(images / "glass" / "bottle1.jpg")
    annotations.mkdir()
    (annotations / "bottle1.xml").write_text(
        "<annotation><folder>glass</folder><filename>bottle1.jpg</filename>"
        "<size><width>160</width><height>120</height><depth>3</depth></size>"
        "<object><name>glass</name><bndbox><xmin>46</xmin><ymin>26</ymin><xmax>115</xmax>"
        "<ymax>95</ymax></bndbox></object></annotation>")
    mapping = write_yaml(tmp_path / "m.yaml", {"glass": "glass"})
    out = tmp_path / "out"
    doc = import_dataset("voc", annotations, images, mapping, out, materials, val=0, test=0)
    ids, _ = read_mask(out / "SegmentationClass" / "bottle1.png", materials)
    labelled = ids == GLASS
    assert set(np.unique(ids)) == {GLASS, 255}
    assert truth[labelled].mean() >= 0.99          # what is labelled is the object
    assert labelled[truth].mean() >= 0.7           # most of the object, an ignore band at its edge
    assert not labelled[:, :45].any() and not labelled[:, 115:].any()  # nothing outside the box
    assert read_objects(out) == {"bottle1": [{"box": [45.0, 25.0, 115.0, 95.0], "category": "glass",
                                              "material": GLASS}]}
    assert doc["boxes_without_a_confident_mask"] == 0


def test_class_folders_label_the_object_of_each_photo(tmp_path, materials):
    images = tmp_path / "photos"
    truth = object_photo(images / "metal" / "can.jpg", color=(150, 150, 160))
    object_photo(images / "paper" / "sheet.png", color=(200, 170, 90))
    mapping = write_yaml(tmp_path / "m.yaml", {"metal": "metal", "paper": "paper"})
    out = tmp_path / "out"
    import_dataset("folders", None, images, mapping, out, materials, val=0, test=0)
    ids, _ = read_mask(out / "SegmentationClass" / "can.png", materials)
    assert truth[ids == METAL].mean() >= 0.98 and (ids == METAL)[truth].mean() >= 0.6
    objects = read_objects(out)
    assert objects["can"][0]["box"] == [0.0, 0.0, 160.0, 120.0] and objects["sheet"][0]["material"] == PAPER


def test_grabcut_that_finds_nothing_leaves_the_box_ignored():
    flat = np.full((60, 80, 3), 128, np.uint8)  # nothing in the box differs from outside it
    region, found = box_foreground(flat, (20.0, 10.0, 60.0, 50.0))
    assert not region.any() and not found


# --- bad input -------------------------------------------------------------------------------
def bad_coco(tmp_path, images=None, annotations=None, categories=None, write_images=True):
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    if write_images:
        write_image(folder / "a.jpg")
    images = images or [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60}]
    annotations = annotations if annotations is not None else [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 20, 1, 20, 20]]}]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(coco_doc(images, annotations, categories or {1: "rug"})))
    return path, folder


@pytest.mark.parametrize("case, pattern", [
    ("outside", r"ann\.json: annotations\[0\] \(id 1\): extends outside the 80x60 image"),
    ("degenerate", r"ann\.json: annotations\[0\] \(id 1\): degenerate polygon"),
    ("unknown_category", r"annotations\[0\] \(id 1\): category_id 7 is not in 'categories'"),
    ("duplicate_annotation", r"annotations\[1\] \(id 1\): duplicate annotation id"),
    ("duplicate_image", r"images\[1\] \(a\.jpg\): duplicate image id 1"),
    ("missing_image", r"ann\.json image id 1: cannot read image .*a\.jpg"),
    ("corrupt_image", r"ann\.json image id 1: cannot decode image .*a\.jpg"),
])
def test_bad_coco_input_names_the_file_and_the_object(tmp_path, materials, case, pattern):
    seg_ok = [[1, 1, 20, 1, 20, 20]]
    kwargs = {
        "outside": {"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 95, 1, 20, 20]]}]},
        "degenerate": {"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 5, 9, 9]]}]},
        "unknown_category": {"annotations": [{"id": 1, "image_id": 1, "category_id": 7, "segmentation": seg_ok}]},
        "duplicate_annotation": {"annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg_ok}] * 2},
        "duplicate_image": {"images": [{"id": 1, "file_name": "a.jpg", "width": 80, "height": 60}] * 2},
        "missing_image": {"write_images": False},
        "corrupt_image": {},
    }[case]
    annotations, images = bad_coco(tmp_path, **kwargs)
    if case == "corrupt_image":
        (images / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    mapping = write_yaml(tmp_path / "m.yaml", {"rug": "fabric"})
    out = tmp_path / "out"
    with pytest.raises(AnnotationError, match=pattern):
        import_dataset("coco", annotations, images, mapping, out, materials)
    assert not out.exists() and not list(tmp_path.glob(".out.importing-*"))  # nothing half-written


def test_skip_bad_imports_the_rest_and_lists_what_it_skipped(tmp_path, materials):
    folder = tmp_path / "images"
    for name in ("good.jpg", "outside.jpg", "corrupt.jpg"):
        write_image(folder / name)
    (folder / "corrupt.jpg").write_bytes(b"garbage")
    seg = [[1, 1, 20, 1, 20, 20]]
    annotations = tmp_path / "ann.json"
    annotations.write_text(json.dumps(coco_doc(
        [{"id": i, "file_name": n, "width": 80, "height": 60}
         for i, n in enumerate(("good.jpg", "outside.jpg", "corrupt.jpg", "gone.jpg"), 1)],
        [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": seg},
         {"id": 2, "image_id": 2, "category_id": 1, "segmentation": [[1, 1, 300, 1, 20, 20]]},
         {"id": 3, "image_id": 3, "category_id": 1, "segmentation": seg},
         {"id": 4, "image_id": 4, "category_id": 1, "segmentation": seg}],
        {1: "rug"})))
    mapping = write_yaml(tmp_path / "m.yaml", {"rug": "fabric"})
    out = tmp_path / "out"
    assert run_cli("--format", "coco", "--annotations", str(annotations), "--images", str(folder),
                   "--mapping", str(mapping), "--output", str(out), "--skip-bad", "--val", "0",
                   "--test", "0") == 0
    doc = json.loads((out / "provenance.json").read_text())
    assert doc["imported"] == 1 and len(doc["skipped"]) == 3
    assert any("outside" in s and "annotations[1]" in s for s in doc["skipped"])
    assert any("corrupt.jpg" in s for s in doc["skipped"]) and any("gone.jpg" in s for s in doc["skipped"])
    assert read_split(out, "train") == ["good"]


def test_unmapped_categories_are_listed_together(tmp_path, materials, capsys):
    annotations, images = bad_coco(tmp_path, categories={1: "rug", 2: "moss", 3: "lino"}, annotations=[
        {"id": k, "image_id": 1, "category_id": k, "segmentation": [[1, 1, 20, 1, 20, 20]]} for k in (1, 2, 3)])
    mapping = write_yaml(tmp_path / "m.yaml", {"rug": "fabric"})
    assert run_cli("--format", "coco", "--annotations", str(annotations), "--images", str(images),
                   "--mapping", str(mapping), "--output", str(tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "m.yaml: 2 categories have no mapping: lino, moss" in err and err.count("\n") == 1
    bad_target = write_yaml(tmp_path / "bad.yaml", {"rug": "velvet"})
    with pytest.raises(MappingError, match=r"bad\.yaml: key 'rug': expected one of .*'ignore', got 'velvet'"):
        import_dataset("coco", annotations, images, bad_target, tmp_path / "out", materials)


def test_malformed_files_and_names(tmp_path, materials):
    mapping = write_yaml(tmp_path / "m.yaml", {"glass": "glass"})
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(AnnotationError, match=r"broken\.json: malformed JSON"):
        import_dataset("coco", tmp_path / "broken.json", tmp_path, mapping, tmp_path / "o", materials)
    xml_dir = tmp_path / "xml"
    xml_dir.mkdir()
    (xml_dir / "x.xml").write_text("<annotation><filename>x.jpg</filename><object>")
    with pytest.raises(AnnotationError, match=r"x\.xml: malformed XML"):
        import_dataset("voc", xml_dir, tmp_path, mapping, tmp_path / "o", materials)
    (xml_dir / "x.xml").write_text(
        "<annotation><filename>x.jpg</filename><size><width>80</width><height>60</height></size>"
        "<object><name>glass</name><bndbox><xmin>10</xmin><ymin>10</ymin><xmax>90</xmax><ymax>20</ymax>"
        "</bndbox></object></annotation>")
    with pytest.raises(AnnotationError, match=r"x\.xml: object 0 \(glass\): extends outside the 80x60 image"):
        import_dataset("voc", xml_dir, tmp_path, mapping, tmp_path / "o", materials)


@pytest.mark.skipif(os.name != "posix", reason="needs a file system that stores raw bytes")
def test_non_utf8_file_name_is_named_not_crashed_on(tmp_path, materials):
    folder = tmp_path / "photos"
    (folder / "glass").mkdir(parents=True)
    raw = os.fsencode(str(folder / "glass")) + b"/caf\xe9.jpg"  # Latin-1 bytes, not UTF-8
    object_photo(Path(os.fsdecode(raw)))
    mapping = write_yaml(tmp_path / "m.yaml", {"glass": "glass"})
    with pytest.raises(AnnotationError, match=r"file name .*caf\\xe9\.jpg.* is not valid UTF-8"):
        import_dataset("folders", None, folder, mapping, tmp_path / "out", materials)
    object_photo(folder / "glass" / "fine.jpg")
    doc = import_dataset("folders", None, folder, mapping, tmp_path / "out", materials, skip_bad=True)
    assert doc["imported"] == 1 and len(doc["skipped"]) == 1 and "caf\\xe9.jpg" in doc["skipped"][0]


def test_existing_output_needs_force_and_is_replaced_whole(coco, tmp_path, materials, capsys):
    annotations, images, mapping = coco
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["--format", "coco", "--annotations", str(annotations), "--images", str(images),
            "--mapping", str(mapping), "--output", str(out), "--val", "0", "--test", "0"]
    assert run_cli(*args) == 2 and "already exists; pass --force" in capsys.readouterr().err
    assert (out / "keep.txt").exists()
    assert run_cli(*args, "--force") == 0
    assert not (out / "keep.txt").exists() and (out / "SegmentationClass" / "a.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_split_as_lists_everything_in_one_split(coco, tmp_path, materials):
    annotations, images, mapping = coco
    import_dataset("coco", annotations, images, mapping, tmp_path / "out", materials, split_as="test")
    assert sorted(read_split(tmp_path / "out", "test")) == ["a", "b"]
    assert not (tmp_path / "out" / "ImageSets" / "Segmentation" / "train.txt").exists()


# --- the shared real sets ----------------------------------------------------------------------
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present (the shared real data)")

SMDRA_MAP = {"carpet": "fabric", "wood": "wood", "concrete": "stone", "sand": "stone",
             "stainless_steel": "metal", "cardboard": "paper", "petri_dish": "plastic",
             "grass": "ignore", "rubber": "ignore"}
TRASHNET_MAP = {"glass": "glass", "paper": "paper", "cardboard": "paper", "plastic": "plastic",
                "metal": "metal", "trash": "ignore"}


@needs_real
def test_smdra_coco_import_and_validate(tmp_path, materials):
    from matseg_ros.data.validate import validate

    mapping = write_yaml(tmp_path / "smdra.yaml", SMDRA_MAP)
    out = tmp_path / "smdra"
    doc = import_dataset("coco", REAL / "smdra" / "annotations.json", REAL / "smdra" / "images", mapping,
                         out, materials, workers=2, licence=REAL / "smdra" / "LICENSE")
    assert doc["imported"] == len(list((REAL / "smdra" / "images").glob("*.jpg"))) and not doc["skipped"]
    assert set(doc["pixels_per_class"]) == {"fabric", "wood", "stone", "metal", "paper", "plastic", "ignore"}
    assert sum(doc["splits"][s] for s in ("train", "val", "test")) == doc["imported"]
    assert (out / "LICENSE").read_bytes() == (REAL / "smdra" / "LICENSE").read_bytes()
    report = validate(out, materials)
    assert not report["errors"], report["errors"]


@needs_real
def test_trashnet_voc_import_on_a_sample(tmp_path, materials):
    annotations = tmp_path / "xml"
    annotations.mkdir()
    for name in sorted(os.listdir(REAL / "trashnet" / "annotations"))[::40]:  # links, not copies
        (annotations / name).symlink_to(REAL / "trashnet" / "annotations" / name)
    mapping = write_yaml(tmp_path / "trashnet.yaml", TRASHNET_MAP)
    doc = import_dataset("voc", annotations, REAL / "trashnet" / "images", mapping, tmp_path / "tn",
                         materials, workers=2)
    count = len(list(annotations.iterdir()))
    assert doc["imported"] == count and not doc["skipped"]
    objects = read_objects(tmp_path / "tn")
    assert 0.8 * count <= sum(map(len, objects.values())) <= count  # trash boxes are not scored
    assert doc["boxes_without_a_confident_mask"] <= 0.1 * count
