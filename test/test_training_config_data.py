"""Config parsing and its error messages; the HRIM dataset, transforms and balancing."""
from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from matseg_ros.io.dataset_layout import DatasetError, write_split
from matseg_ros.io.masks import write_mask
from matseg_ros.training import balance, builders
from matseg_ros.training.config import (ConfigError, add_override_arguments, apply_overrides,
                                        load_config, parse_monitor, read_raw_config, resolve_config)
from matseg_ros.training.dataset import HRIM, pad_collate
from matseg_ros.training.transforms import train_transform, val_transform

REPO = Path(__file__).resolve().parents[1]
SEED_CONFIG = REPO / "config" / "train" / "deeplab_resnet101.json"
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def seed_raw() -> dict:
    return read_raw_config(SEED_CONFIG)


def test_seed_config_read_verbatim_every_key(caplog):
    with caplog.at_level(logging.WARNING):
        cfg = load_config(SEED_CONFIG)
    assert not caplog.records  # every key of the original is known
    assert cfg["arch"] == {"type": "DeepLab", "args": {"backbone": "resnet101", "freeze_bn": False,
                                                       "freeze_backbone": False, "pretrained": None}}
    t, v = cfg["train_loader"]["args"], cfg["val_loader"]["args"]
    assert (t["batch_size"], t["base_size"], t["crop_size"], t["num_workers"]) == (8, 400, 513, 8)
    assert (t["augment"], t["shuffle"], t["scale"], t["flip"], t["rotate"], t["blur"]) == \
        (True, True, True, False, False, False)
    assert (v["val"], v["split"], v["crop_size"], v["num_workers"]) == (True, "val", 513, 4)
    assert cfg["optimizer"] == {"type": "SGD", "differential_lr": True,
                                "args": {"lr": 0.01, "weight_decay": 1e-4, "momentum": 0.9}}
    assert (cfg["loss"], cfg["ignore_index"], cfg["lr_scheduler"]) == \
        ("CrossEntropyLoss2d", -1, {"type": "Poly", "args": {}})
    tr = cfg["trainer"]
    assert (tr["epochs"], tr["save_period"], tr["monitor"], tr["early_stop"], tr["log_per_iter"],
            tr["val_per_epochs"], tr["tensorboard"], tr["log_dir"]) == \
        (100, 20, "max Mean_IoU", 80, 20, 10, True, "saved/runs")
    assert builders.ignore_class(cfg) is None  # -1: no class label is ignored


def test_unknown_keys_are_warned_by_name(caplog):
    raw = seed_raw()
    raw["trainer"]["epoch"] = 5
    raw["colour"] = "red"
    with caplog.at_level(logging.WARNING):
        resolve_config(raw, "my.json")
    text = caplog.text
    assert "my.json: unknown config key 'trainer.epoch'" in text
    assert "unknown config key 'colour'" in text


@pytest.mark.parametrize("path, value, expected", [
    ("train_loader.args.batch_size", "8", "'train_loader.args.batch_size' must be an integer"),
    ("train_loader.args.flip", 1, "'train_loader.args.flip' must be true/false"),
    ("trainer.epochs", 2.5, "'trainer.epochs' must be an integer"),
    ("use_synch_bn", "no", "'use_synch_bn' must be true/false"),
    ("optimizer", [], "'optimizer' must be an object"),
    ("n_gpu", True, "'n_gpu' must be an integer"),
    ("trainer.monitor", "maximum mIoU", "'trainer.monitor' must be 'off' or 'max|min METRIC'"),
    ("trainer.monitor", "max Mean_IOU", "metric 'Mean_IOU' is unknown"),
    ("train_loader.args.crop_size", 0, "'train_loader.args.crop_size' must be a positive integer"),
    ("train_loader.type", "VOC", "'train_loader.type' 'VOC' is unknown; expected one of ['HRIM']"),
    ("lr_scheduler.type", "Cosine", "'lr_scheduler.type' 'Cosine' is unknown"),
    ("ignore_index", 300, "'ignore_index' must be -1 (no class ignored), 255 or a class id"),
    ("balance.class_weights", "inverse", "'balance.class_weights' must be null, 'median_frequency'"),
])
def test_config_errors_name_key_and_expectation(path, value, expected):
    raw = seed_raw()
    node = raw
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    with pytest.raises(ConfigError) as info:
        resolve_config(raw, "cfg.json")
    assert str(info.value).startswith("cfg.json: ") and expected in str(info.value)


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing.json: cannot read config"):
        load_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{ nope")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        load_config(tmp_path / "bad.json")


def test_monitor_names_map_to_metrics():
    assert parse_monitor("max Mean_IoU") == ("max", "mIoU")
    assert parse_monitor("max Pixel_Accuracy") == ("max", "pixel_accuracy")
    assert parse_monitor("min val_loss") == ("min", "loss")
    assert parse_monitor("off") == ("off", None)


def test_command_line_overrides():
    parser = argparse.ArgumentParser()
    add_override_arguments(parser)
    args = parser.parse_args(["--data-dir", "D", "--epochs", "3", "--crop-size", "32",
                              "--base-size", "40", "--batch-size", "2", "--lr", "0.5",
                              "--num-workers", "0", "--save-dir", "S", "--seed", "7"])
    raw = seed_raw()
    before = copy.deepcopy(raw)
    cfg = resolve_config(apply_overrides(raw, args))
    assert raw == before
    t, v = cfg["train_loader"]["args"], cfg["val_loader"]["args"]
    assert (t["data_dir"], v["data_dir"], t["crop_size"], v["crop_size"], t["base_size"]) == \
        ("D", "D", 32, 32, 40)
    assert (t["batch_size"], v["batch_size"], t["num_workers"], v["num_workers"]) == (2, 8, 0, 0)
    assert (cfg["trainer"]["epochs"], cfg["optimizer"]["args"]["lr"], cfg["seed"]) == (3, 0.5, 7)
    assert (cfg["trainer"]["save_dir"], cfg["trainer"]["log_dir"]) == ("S", str(Path("S") / "runs"))
    assert cfg["balance"]["class_weights"] is None  # the seed config's own value, untouched
    for choice, expected in (("none", None), ("median_frequency", "median_frequency")):
        raw["balance"] = {"class_weights": [1.0] * 9}
        cfg = resolve_config(apply_overrides(raw, parser.parse_args(["--class-weights", choice])))
        assert cfg["balance"]["class_weights"] == expected


def test_builder_errors_name_the_key():
    cfg = resolve_config(seed_raw())
    model = torch.nn.Conv2d(3, 2, 1)
    bad = copy.deepcopy(cfg)
    bad["optimizer"]["type"] = "Adamm"
    with pytest.raises(ConfigError, match="'optimizer.type' 'Adamm' is not a torch.optim optimizer.*AdamW"):
        builders.build_optimizer(bad, model)
    bad = copy.deepcopy(cfg)
    bad["optimizer"]["differential_lr"] = False
    bad["optimizer"]["args"]["betas"] = 3
    with pytest.raises(ConfigError, match="'optimizer.args'.*do not suit SGD"):
        builders.build_optimizer(bad, model)
    bad = copy.deepcopy(cfg)
    bad["loss"] = "Dice"
    with pytest.raises(ConfigError, match="'loss': unknown loss 'Dice'"):
        builders.build_criterion(bad, None)
    bad = copy.deepcopy(cfg)
    bad["arch"]["args"]["backbone"] = "resnet99"
    with pytest.raises(ConfigError, match="'arch': cannot build 'DeepLab'.*resnet99"):
        builders.build_network(bad, 9)



def test_differential_lr_groups_survive_the_ddp_wrapper(tmp_path):
    """Under torchrun the optimizer is built on the DDP-wrapped model: the encoder must still
    get lr/10 (a one-process gloo group is enough to wrap it)."""
    import torch.distributed as dist
    cfg = resolve_config(seed_raw())
    cfg["arch"]["args"]["backbone"] = "resnet18"
    model = builders.build_network(cfg, 9)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0,
                            world_size=1)
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        groups = builders.build_optimizer(cfg, wrapped).param_groups
    finally:
        dist.destroy_process_group()
    lr = cfg["optimizer"]["args"]["lr"]
    assert [g["lr"] for g in groups] == [pytest.approx(lr / 10), lr]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.encoder.parameters()}


def test_recorded_input_size_keeps_the_data_aspect(tmp_path):
    """Longest side = the val crop_size; aspect = the most common image size; multiples of 32."""
    from types import SimpleNamespace
    samples = []
    for i, (h, w) in enumerate(((384, 512), (384, 512), (100, 100), (384, 512), (480, 640))):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
        samples.append((str(i), tmp_path / f"{i}.png", tmp_path / "unused.png"))
    cfg = resolve_config(seed_raw())
    cfg["val_loader"]["args"]["crop_size"] = 384
    assert builders.input_size(cfg, SimpleNamespace(samples=samples)) == [288, 384]
    square = [(i, path, mask) for i, path, mask in samples if i == "2"]
    assert builders.input_size(cfg, SimpleNamespace(samples=square)) == [384, 384]
    cfg["val_loader"]["args"]["crop_size"] = None  # falls back to the training crop_size
    cfg["train_loader"]["args"]["crop_size"] = 200  # 150 × 200 -> rounded to 32s
    assert builders.input_size(cfg, SimpleNamespace(samples=samples)) == [160, 192]

# --- dataset ---------------------------------------------------------------------------

def write_pair(root: Path, name: str, rgb: np.ndarray, mask: np.ndarray | None, materials,
               palette: bool = True) -> None:
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "JPEGImages" / f"{name}.png"), rgb[..., ::-1])
    if mask is not None:
        if mask.ndim == 3:
            (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "SegmentationClass" / f"{name}.png"), mask[..., ::-1])
        else:
            write_mask(root / "SegmentationClass" / f"{name}.png", mask, materials, palette=palette)


def test_dataset_reads_pairs_and_counts_unknown_colours(tmp_path, materials):
    rgb = np.full((6, 8, 3), 100, np.uint8)
    mask = np.zeros((6, 8, 3), np.uint8)
    mask[:, :4] = materials[2].color                          # fabric
    mask[0, 0] = np.array(materials[2].color) + [5, -6, 4]    # anti-aliased: still fabric
    mask[5, 7] = (128, 255, 0)                                # no class near: ignored, counted
    write_pair(tmp_path, "a", rgb, mask, materials)
    write_pair(tmp_path, "b", rgb, np.full((6, 8), 3, np.uint8), materials, palette=False)
    write_split(tmp_path, "train", ["a", "b"])
    ds = HRIM(tmp_path, "train", materials, val_transform(MEAN, STD))
    image, target, unknown = ds[0]
    assert image.shape == (3, 6, 8) and target.dtype == torch.int64
    assert unknown == 1 and target[5, 7] == 255 and target[0, 0] == 2
    assert (target[:, :4] == 2).all() and (target[:5, 4:] == 0).all()
    assert image[0, 0, 0].item() == pytest.approx((100 / 255 - 0.5) / 0.25, rel=1e-5)
    _, target_b, unknown_b = ds[1]
    assert unknown_b == 0 and (target_b == 3).all()  # single-channel id mask
    ignoring = HRIM(tmp_path, "train", materials, val_transform(MEAN, STD), ignore_class=2)
    assert (ignoring[0][1][:, :4] == 255).all()


def test_dataset_errors_name_the_file(tmp_path, materials):
    rgb = np.zeros((6, 8, 3), np.uint8)
    write_pair(tmp_path, "ok", rgb, np.zeros((6, 8), np.uint8), materials)
    write_pair(tmp_path, "nomask", rgb, None, materials)
    write_pair(tmp_path, "small", rgb, np.zeros((5, 8), np.uint8), materials)
    (tmp_path / "SegmentationClass" / "broken.png").write_bytes(b"not a png")
    write_pair(tmp_path, "broken", rgb, None, materials)
    t = val_transform(MEAN, STD)
    with pytest.raises(DatasetError, match="dataset folder not found"):
        HRIM(tmp_path / "nowhere", "train", materials, t)
    with pytest.raises(DatasetError, match=r"train.txt: split file not found"):
        HRIM(tmp_path, "train", materials, t)
    write_split(tmp_path, "train", ["ok", "nomask"])
    with pytest.raises(DatasetError, match=r"SegmentationClass/nomask.png: mask not found for image"):
        HRIM(tmp_path, "train", materials, t)
    write_split(tmp_path, "train", ["ok", "ghost"])
    with pytest.raises(DatasetError, match=r"JPEGImages/ghost.jpg: image not found"):
        HRIM(tmp_path, "train", materials, t)
    write_split(tmp_path, "train", ["small", "broken"])
    ds = HRIM(tmp_path, "train", materials, t)
    with pytest.raises(DatasetError, match=r"small.png: mask is 8×5 but its image .*small.png is 8×6"):
        ds[0]
    with pytest.raises(DatasetError, match=r"broken.png: cannot read mask"):
        ds[1]
    write_split(tmp_path, "empty", [])
    with pytest.raises(DatasetError, match="lists no images"):
        HRIM(tmp_path, "empty", materials, t)


def test_train_transform_pads_and_rotates_with_ignore_never_a_class():
    rgb = np.full((20, 24, 3), 200, np.uint8)
    ids = np.full((20, 24), 4, np.uint8)
    t = train_transform(32, None, MEAN, STD, augment=True, scale=False, rotate=True, flip=True,
                        blur=True, seed=3)
    seen_ignore = 0
    for key in range(8):
        image, target = t(rgb, ids, (0, key))
        assert image.shape == (3, 32, 32) and target.shape == (32, 32)
        values = set(torch.unique(target).tolist())
        assert values <= {4, 255}  # borders of padding and rotation are ignore, never class 0
        seen_ignore += int((target == 255).sum())
        # padded image pixels are the mean colour, i.e. 0 after normalisation
        assert torch.allclose(image[:, target == 255].mean(), torch.tensor(0.0), atol=0.15)
    assert seen_ignore > 8 * (32 * 32 - 20 * 24) * 0.9


def test_train_transform_scale_and_seeding():
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    ids = np.zeros((40, 60), np.uint8)
    t = train_transform(16, 30, MEAN, STD, augment=True, scale=True, rotate=True, flip=True, seed=1)
    a1, _ = t(rgb, ids, (1, 5))
    a2, _ = t(rgb, ids, (1, 5))
    b, _ = t(rgb, ids, (2, 5))
    assert torch.equal(a1, a2) and not torch.equal(a1, b)
    fixed = train_transform(30, 30, MEAN, STD, augment=False)
    image, target = fixed(rgb, ids, (0, 0))
    assert image.shape == (3, 30, 30)           # long side 60 -> 30, padded 20 -> 30, centre crop
    assert (target[:5] == 255).all() and (target[5:25] == 0).all()


def test_pad_collate_pads_images_with_zero_and_targets_with_ignore():
    a = (torch.ones(3, 2, 3), torch.zeros(2, 3, dtype=torch.int64), 1)
    b = (torch.ones(3, 4, 2), torch.ones(4, 2, dtype=torch.int64), 2)
    images, targets, unknown, sizes = pad_collate([a, b])
    assert images.shape == (2, 3, 4, 3) and targets.shape == (2, 4, 3)
    assert images[0, :, 2:].abs().sum() == 0 and (targets[0, 2:] == 255).all()
    assert (targets[1, :, 2] == 255).all() and unknown.tolist() == [1, 2]
    assert sizes.tolist() == [[2, 3], [4, 2]]


def test_validation_metrics_do_not_depend_on_the_batching():
    """Images of different sizes padded into one batch: a network with global pooling sees
    the padding, so evaluation must score each at its own size (as batch size 1 does)."""
    from matseg_ros.training.loop import evaluate

    class GlobalContext(torch.nn.Module):
        def forward(self, x):  # per-pixel logits shifted by the image mean, like ASPP pooling
            return x[:, :2] + 4 * x.mean(dim=(2, 3), keepdim=True)[:, :2]

    gen = torch.Generator().manual_seed(0)
    samples = [(torch.randn(3, h, w, generator=gen) + 0.3, torch.randint(0, 2, (h, w), generator=gen), 0)
               for h, w in ((16, 20), (9, 31), (24, 12), (16, 20))]
    results = []
    for batch_size in (1, 4, 2):
        loader = torch.utils.data.DataLoader(samples, batch_size=batch_size, collate_fn=pad_collate)
        metrics, examples = evaluate(GlobalContext(), loader, torch.device("cpu"), 2,
                                     torch.nn.CrossEntropyLoss(ignore_index=255), progress=False,
                                     keep_examples=4)
        results.append(metrics)
        assert [tuple(e[1].shape) for e in examples] == [(16, 20), (9, 31), (24, 12), (16, 20)]
    for other in results[1:]:
        assert other["confusion_matrix"] == results[0]["confusion_matrix"]
        assert other["loss"] == pytest.approx(results[0]["loss"], rel=1e-6)


def test_median_frequency_weights_and_repeat_factors_hand_computed():
    counts = np.array([[90, 10, 0], [100, 0, 0], [50, 0, 50]])
    # freq: c0 240/300, c1 10/100, c2 50/100 -> median 0.5 -> weights 0.625, 5, 1
    np.testing.assert_allclose(balance.median_frequency_weights(counts), [0.625, 5.0, 1.0])
    # share of images: c0 1, c1 1/3, c2 1/3 -> factor max(1, sqrt(0.75 / f)) = 1, 1.5, 1.5
    np.testing.assert_allclose(balance.repeat_factors(counts, 0.75), [1.5, 1.0, 1.5])
    assert balance.median_frequency_weights(np.array([[5, 0]]))[1] == 1.0  # never seen: neutral


def test_repeat_factor_sampler_is_seeded_and_sharded():
    weights = np.array([1.0, 1.0, 10.0, 1.0, 1.0])
    s0 = balance.RepeatFactorSampler(weights, num_replicas=2, rank=0, seed=4)
    s1 = balance.RepeatFactorSampler(weights, num_replicas=2, rank=1, seed=4)
    assert len(s0) == len(s1) == 3
    s0.set_epoch(1)
    first = list(s0)
    assert first == list(s0)
    draws, per_epoch = [], set()
    for epoch in range(200):
        s0.set_epoch(epoch)
        s1.set_epoch(epoch)
        per_epoch.add(tuple(s0))
        both = list(s0) + list(s1)
        assert len(set(both)) == len(both)  # a repeat of an image is a new virtual index
        draws += [i % 5 for i in both]
    assert len(per_epoch) > 20  # a new draw every epoch
    share = draws.count(2) / len(draws)
    assert share == pytest.approx(10 / 14, abs=0.05)


def test_repeats_of_an_oversampled_image_are_augmented_differently(tmp_path, materials):
    rng = np.random.default_rng(3)
    for i in range(2):
        write_pair(tmp_path, f"{i:02d}", rng.integers(0, 255, (64, 80, 3), dtype=np.uint8),
                   rng.integers(0, 9, (64, 80), dtype=np.uint8), materials)
    write_split(tmp_path, "train", ["00", "01"])
    data = HRIM(tmp_path, "train", materials, train_transform(32, 64, MEAN, STD, seed=5))
    data.set_epoch(1)
    first, again, repeat = data[1], data[1], data[1 + len(data)]
    assert torch.equal(first[0], again[0])  # one draw: reproducible
    assert not torch.equal(first[0], repeat[0])  # its repeat: another crop of the same image
    assert len(list(data)) == len(data) == 2  # iterating still gives each sample once
