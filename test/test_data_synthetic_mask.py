"""`matseg data synthetic-mask`: IoU against known masks of generated single-material photos."""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

from matseg_ros.data.cli import add_arguments, run
from matseg_ros.data.synthetic_mask import segment_folder
from matseg_ros.data.textures import make_texture
from matseg_ros.io.masks import read_mask


def photo(material: str, seed: int, size=(240, 320)) -> tuple[np.ndarray, np.ndarray]:
    """A textured blob on a noisy white backdrop with a soft shadow, and its true mask."""
    rng = np.random.default_rng(seed)
    h, w = size
    image = np.clip(rng.normal(248, 3, (h, w, 3)), 0, 255).astype(np.uint8)
    centre = (int(w * rng.uniform(0.4, 0.6)), int(h * rng.uniform(0.4, 0.6)))
    axes = (int(w * rng.uniform(0.2, 0.35)), int(h * rng.uniform(0.2, 0.35)))
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 1, -1)
    shadow = cv2.GaussianBlur(np.roll(mask, (4, 4), (0, 1)).astype(np.float32), (0, 0), 3)
    image = (image * (1 - 0.06 * shadow[..., None])).astype(np.uint8)
    texture = make_texture(material, (h, w), rng)
    image[mask > 0] = texture[mask > 0]
    if seed % 2:  # a specular highlight inside the object, as white as the backdrop
        cv2.circle(image, centre, max(3, axes[1] // 4), (252, 252, 252), -1)
    return image, mask.astype(bool)


def test_iou_at_least_095_on_known_masks(tmp_path, materials):
    images = tmp_path / "img"
    images.mkdir()
    truth = {}
    for seed, material in enumerate(["fabric", "wood", "metal", "stone", "plastic", "glass", "fabric", "wood"]):
        image, mask = photo(material, seed)
        cv2.imwrite(str(images / f"p{seed}.jpg"), image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        truth[f"p{seed}"] = mask
    written, failed = segment_folder(images, tmp_path / "out", 2, materials)
    assert not failed and sorted(written) == sorted(truth)  # every file, not every second one
    for stem, mask in truth.items():
        ids, ignored = read_mask(tmp_path / "out" / f"{stem}.png", materials)
        assert ignored == 0 and set(np.unique(ids)) <= {0, 2}
        got = ids == 2
        iou = (got & mask).sum() / (got | mask).sum()
        assert iou >= 0.95, (stem, iou)


def test_unsegmentable_and_unreadable_images_are_reported(tmp_path, materials, capsys):
    images = tmp_path / "img"
    images.mkdir()
    cv2.imwrite(str(images / "blank.png"), np.full((60, 80, 3), 250, np.uint8))
    (images / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    image, _ = photo("wood", 0, (60, 80))
    cv2.imwrite(str(images / "good.png"), image[..., ::-1])
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["synthetic-mask", "--segClass", "Wood", "--images", str(images),
                              "--output", str(tmp_path / "out")])
    assert run(args) == 0
    err = capsys.readouterr().err
    assert "2 image(s) could not be segmented" in err
    assert "blank.png: foreground covers 0.0%" in err and "broken.jpg: cannot decode image" in err
    ids, _ = read_mask(tmp_path / "out" / "good.png", materials)
    assert set(np.unique(ids)) == {0, 8}


@pytest.mark.parametrize("argv, message", [
    (["--segClass", "velvet"], "--segClass 'velvet' is not a class; classes: background, ceramic"),
    (["--segClass", "wood", "--images", "/nonexistent/x"], "/nonexistent/x: --images folder not found"),
])
def test_bad_arguments(tmp_path, capsys, argv, message):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = {"--images": str(tmp_path), "--output": str(tmp_path / "o")}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    assert run(parser.parse_args(["synthetic-mask", *[x for kv in base.items() for x in kv]])) == 2
    assert message in capsys.readouterr().err
