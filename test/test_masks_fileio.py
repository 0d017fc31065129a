import os

import numpy as np
import pytest
from PIL import Image

from matseg_ros.fileio import atomic_write_text, sanitize_filename
from matseg_ros.io.masks import MaskError, decode_mask, read_mask, write_mask


def test_palette_round_trip(tmp_path, materials, rng):
    ids = rng.integers(0, 9, size=(31, 47), dtype=np.uint8)
    ids[0, :5] = 255  # ignore survives the palette PNG (stored as VOC void, not as black)
    write_mask(tmp_path / "m.png", ids, materials)
    back, unknown = read_mask(tmp_path / "m.png", materials)
    assert np.array_equal(back, ids) and unknown == 0  # stored ignore is not an unknown colour
    assert not list(tmp_path.glob(".*tmp*"))


def test_antialiased_edges_go_to_nearest_class_and_far_colours_to_ignore(materials):
    rgb = np.zeros((1, 5, 3), dtype=np.uint8)
    rgb[0, 0] = (236, 70, 70)      # plastic exactly
    rgb[0, 1] = (230, 80, 75)      # anti-aliased plastic: distance ~12.7
    rgb[0, 2] = (128, 128, 128)    # nearest is metal (120,122,145) at ~19.6 -> metal
    rgb[0, 3] = (255, 255, 255)    # far from everything -> ignore, counted as unknown
    rgb[0, 4] = (224, 224, 192)    # the VOC void colour: ignore on purpose, not counted
    ids, unknown = decode_mask(rgb, materials)
    assert ids.tolist() == [[6, 6, 4, 255, 255]] and unknown == 1


def test_index_png_keeps_ids_and_ignores_unknown(tmp_path, materials):
    ids = np.array([[0, 3, 8], [255, 42, 1]], dtype=np.uint8)
    Image.fromarray(ids, mode="L").save(tmp_path / "i.png")
    back, ignored = read_mask(tmp_path / "i.png", materials)
    assert back.tolist() == [[0, 3, 8], [255, 255, 1]] and ignored == 1



def test_16_and_32_bit_id_pngs(tmp_path, materials):
    """Wide id masks: values below the largest class id, above 255 and negative."""
    low = np.array([[0, 1], [2, 0]], dtype=np.uint16)  # largest value 2 < class id 8
    Image.fromarray(low).save(tmp_path / "low.png")  # PIL writes mode I;16
    back, ignored = read_mask(tmp_path / "low.png", materials)
    assert back.tolist() == [[0, 1], [2, 0]] and ignored == 0
    wide = np.array([[8, 255, 300], [-1, 5, 65535]], dtype=np.int32)
    ids, ignored = decode_mask(wide, materials)
    assert ids.tolist() == [[8, 255, 255], [255, 5, 255]] and ignored == 3

def test_unreadable_mask_names_the_file(tmp_path, materials):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(MaskError, match="bad.png: cannot read mask"):
        read_mask(tmp_path / "bad.png", materials)
    with pytest.raises(MaskError, match="gone.png: mask file not found"):
        read_mask(tmp_path / "gone.png", materials)


def test_atomic_write_and_sanitize(tmp_path):
    atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello"
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(umask)
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert sanitize_filename("../../etc/passwd") == "etc_passwd"
    assert sanitize_filename("Métal scratched?.jpg") == "Metal_scratched_.jpg"
    assert sanitize_filename("...") == "file"
    assert "/" not in sanitize_filename("a/b\\c") and len(sanitize_filename("x" * 500)) <= 120


def test_layout_split_and_images(tmp_path):
    import cv2

    from matseg_ros.io import dataset_layout as L

    L.write_split(tmp_path, "train", ["a", "b"])
    assert L.read_split(tmp_path, "train") == ["a", "b"]
    with pytest.raises(L.DatasetError, match="val.txt: split file not found .*train"):
        L.read_split(tmp_path, "val")
    L.image_dir(tmp_path).mkdir()
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 200  # red in RGB
    cv2.imwrite(str(L.image_dir(tmp_path) / "a.png"), img[..., ::-1])
    assert L.find_image(tmp_path, "a").name == "a.png"
    assert L.read_rgb(L.find_image(tmp_path, "a"))[0, 0].tolist() == [200, 0, 0]
    (L.image_dir(tmp_path) / "b.jpg").write_bytes(b"junk")
    with pytest.raises(L.DatasetError, match="b.jpg: cannot decode"):
        L.read_rgb(L.find_image(tmp_path, "b"))
    with pytest.raises(L.DatasetError, match="image not found for id 'c'"):
        L.find_image(tmp_path, "c")
    assert L.list_ids(L.image_dir(tmp_path)) == ["a", "b"]
