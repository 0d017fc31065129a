"""CPU training precision (trainer.cpu_precision) and the decoded-sample cache."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch

from matseg_ros.training import precision as precisions
from matseg_ros.training.config import ConfigError, read_raw_config, resolve_config
from matseg_ros.training.dataset import HRIM
from matseg_ros.training.transforms import train_transform

from training_helpers import make_dataset, write_config

REPO = __import__("pathlib").Path(__file__).resolve().parent.parent
ENET_CONFIG = REPO / "config" / "train" / "enet_cpu.json"


def test_choose_names_what_it_picked_and_why():
    cpu = torch.device("cpu")
    fp32 = precisions.choose("fp32", cpu, cuda_amp=True)
    assert fp32.dtype is None and not fp32.channels_last and fp32.label == "fp32"
    bf16 = precisions.choose("bf16", cpu, cuda_amp=True)
    assert bf16.dtype is torch.bfloat16 and bf16.channels_last
    assert bf16.label == "bf16 + channels_last" and "cpu_precision is bf16" in bf16.reason
    assert precisions.choose("auto", torch.device("cuda"), cuda_amp=True).dtype is torch.float16
    assert precisions.choose("bf16", torch.device("cuda"), cuda_amp=False).dtype is None
    with pytest.raises(ValueError, match="cpu_precision must be one of auto, fp32, bf16, not 'fp8'"):
        precisions.choose("fp8", cpu, cuda_amp=True)


def test_auto_times_both_or_explains_missing_hardware(monkeypatch):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(8, 4, 1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    batch = (torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32)))
    criterion = torch.nn.CrossEntropyLoss()
    cpu = torch.device("cpu")
    supported, _ = precisions.cpu_bf16_support()
    chosen = precisions.choose("auto", cpu, True, net, criterion, batch)
    if supported:
        assert "bf16+channels_last vs" in chosen.reason and "per step on 2×3×32×32" in chosen.reason
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # timed on a copy
    monkeypatch.setattr(precisions, "cpu_features", lambda: {"avx512_bf16": False, "amx_bf16": False})
    plain = precisions.choose("auto", cpu, True, net, criterion, batch)
    assert plain.dtype is None and plain.reason == "auto: the CPU has neither AMX-BF16 nor AVX-512 BF16"


def test_config_rejects_an_unknown_precision(tmp_path):
    raw = read_raw_config(ENET_CONFIG)
    raw["trainer"]["cpu_precision"] = "half"
    with pytest.raises(ConfigError, match=r"'trainer.cpu_precision' must be one of auto, fp32, bf16, got 'half'"):
        resolve_config(raw, "cfg.json")


def test_bf16_training_learns_as_well_as_fp32(tmp_path, materials):
    """The same short run in both precisions: validation mIoU within 0.05 of each other and
    above chance (background everywhere scores ~0.15 on this data; see test_training_e2e):
    bf16 rounding changes the trajectory, so the figures are close, not equal."""
    from matseg_ros import cli

    data = make_dataset(tmp_path / "data", materials, n_train=16, n_val=6, seed=3)
    scores = {}
    for setting in ("fp32", "bf16"):
        cfg = write_config(tmp_path / f"{setting}.json", ENET_CONFIG, **{
            "train_loader.args.data_dir": str(data), "val_loader.args.data_dir": str(data),
            "trainer.epochs": 8, "trainer.tensorboard": False, "trainer.cpu_precision": setting,
            "trainer.save_dir": str(tmp_path / setting)})
        assert cli.main(["train", "--config", str(cfg), "--no-progress", "--threads", "2"]) == 0
        run = next((tmp_path / setting).glob("*/*/last.pt"))
        ckpt = torch.load(run, weights_only=True)
        assert ckpt["precision"]["precision"] == ("fp32" if setting == "fp32" else "bf16 + channels_last")
        assert all(t.is_contiguous() for t in ckpt["model"].values())
        scores[setting] = ckpt["metrics"]["mIoU"]
    assert min(scores.values()) > 0.22, scores
    assert abs(scores["bf16"] - scores["fp32"]) < 0.05, scores


def _dataset(root, materials, cache, base_size):
    transform = train_transform(48, base_size, (0.5,) * 3, (0.25,) * 3, augment=True, scale=True,
                                rotate=True, flip=True, seed=7)
    return HRIM(root, "train", materials, transform, cache_dir=cache, cache_longest=base_size)


@pytest.mark.parametrize("base_size", [40, 96, None])
def test_cached_samples_are_bitwise_the_uncached_ones(tmp_path, materials, base_size):
    data = make_dataset(tmp_path / "data", materials, n_train=5, n_val=1, size=64)
    plain = _dataset(data, materials, None, base_size)
    cached = _dataset(data, materials, tmp_path / "cache", base_size)
    for epoch in (1, 2):  # the first epoch fills the cache, the second reads it
        plain.set_epoch(epoch)
        cached.set_epoch(epoch)
        for i in range(len(plain)):
            a, b = plain[i], cached[i]
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    assert (cached.cache.misses, cached.cache.hits) == (5, 5)
    entries = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(entries) == 5
    with np.load(entries[0]) as entry:
        assert max(entry["rgb"].shape[:2]) == (base_size or 64)


def test_cache_never_serves_a_stale_or_broken_entry(tmp_path, materials):
    from matseg_ros.io.masks import write_mask

    data = make_dataset(tmp_path / "data", materials, n_train=2, n_val=1, size=64)
    cached = _dataset(data, materials, tmp_path / "cache", None)
    first = cached[0][1]
    _, _, mask = cached.samples[0]
    write_mask(mask, np.full((64, 64), 3, np.uint8), materials)  # the mask is edited
    later = time.time() + 5
    os.utime(mask, (later, later))
    edited = cached[0][1]
    assert not torch.equal(first, edited)
    assert set(np.unique(edited.numpy())) <= {3, 255}  # class 3, or rotation borders
    for entry in (tmp_path / "cache").rglob("*.npz"):
        entry.write_bytes(b"truncated")
    assert torch.equal(cached[0][1], edited)  # a broken entry is rebuilt, not trusted
