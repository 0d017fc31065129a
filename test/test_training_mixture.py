"""Training on several datasets at once, per-dataset validation, object accuracy in eval."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from matseg_ros import cli
from matseg_ros.io.dataset_layout import OBJECTS_FILE
from matseg_ros.training import balance
from matseg_ros.training.config import ConfigError, parse_monitor, resolve_config
from matseg_ros.training.mixture import MixedDataset, mixture_weights
from matseg_ros.training.object_accuracy import ObjectTally, vote
from matseg_ros.training.train import monitored
from training_helpers import make_dataset, only_run, write_config

REPO = Path(__file__).resolve().parents[1]
ENET_CONFIG = REPO / "config" / "train" / "enet_cpu.json"


def test_vote_is_the_commonest_material_in_the_box_without_background():
    pred = np.zeros((10, 10), np.uint8)
    pred[2:6, 2:6] = 3      # 16 px of glass
    pred[6:8, 2:8] = 5      # 12 px of paper
    assert vote(pred, (2, 2, 8, 8), 9) == 3          # background (20 px) does not vote
    assert vote(pred, (0.4, 5.6, 10, 10), 9) == 5    # box edges rounded outwards: rows 5..9
    assert vote(pred, (8, 8, 10, 10), 9) is None      # background only: no answer
    tally = ObjectTally(9)
    tally.add(pred, [{"box": [2, 2, 8, 8], "material": 3}, {"box": [2, 6, 8, 8], "material": 3},
                     {"box": [8, 8, 10, 10], "material": 4}])
    result = tally.compute()
    assert result["object_accuracy"] == pytest.approx(1 / 3) and result["objects"] == 3
    assert result["per_class_object_recall"][3] == 0.5 and result["per_class_object_recall"][4] == 0
    assert np.isnan(result["per_class_object_recall"][1])


class Numbers(torch.utils.data.Dataset):
    """Stands in for HRIM: item i + k·n is (i, k), as HRIM maps repeats."""

    def __init__(self, n: int, tag: int):
        self.n, self.tag, self.samples = n, tag, [(f"{tag}-{i}", None, None) for i in range(n)]

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return (self.tag, index % self.n, index // self.n)

    def set_epoch(self, epoch):
        pass


def test_mixed_dataset_maps_indices_and_repeats_to_its_parts():
    mixed = MixedDataset([("a", Numbers(3, 0)), ("b", Numbers(5, 1))])
    assert len(mixed) == 8 and mixed.names == ["a", "b"]
    assert [mixed[i] for i in (0, 2, 3, 7)] == [(0, 0, 0), (0, 2, 0), (1, 0, 0), (1, 4, 0)]
    assert mixed[8 + 4] == (1, 1, 1)  # the 2nd draw of sample 4 is b's sample 1, repeat 1


def test_mixture_weights_give_each_dataset_its_share_of_the_draws():
    sizes, shares = [10, 1000, 50], [0.5, 0.3, 0.2]
    weights = mixture_weights(sizes, shares)
    sampler = balance.RepeatFactorSampler(weights, seed=3, total=20000)
    sampler.set_epoch(1)
    drawn = np.array(list(sampler)) % sum(sizes)
    owner = np.searchsorted(np.cumsum(sizes), drawn, side="right")
    assert len(drawn) == 20000
    assert np.bincount(owner, minlength=3) / 20000 == pytest.approx(shares, abs=0.015)
    # class-balanced within a dataset: an image with a rare class is drawn more often
    counts = np.zeros((60, 3), np.int64)
    counts[:, 0] = 100
    counts[0, 2] = 5  # only image 0 holds class 2
    balanced = mixture_weights([10, 50], [1, 1], counts, threshold=0.5)
    assert balanced[0] > balanced[1] and balanced[:10].sum() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="one positive share per dataset"):
        mixture_weights([10, 20], [1.0])


def raw_config(**changes):
    cfg = json.loads(ENET_CONFIG.read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return cfg


@pytest.mark.parametrize("changes, message", [
    ({"train_loader.args.datasets": []}, "'train_loader.args.datasets' is empty"),
    ({"train_loader.args.datasets": [{"data_dir": "a", "weight": 0}]},
     r"'train_loader.args.datasets\[0\].weight' must be a positive number, got 0"),
    ({"train_loader.args.datasets": [{"data_dir": "x/a"}, {"data_dir": "y/a"}]},
     r"'train_loader.args.datasets\[1\].name' 'a' is used twice"),
    ({"train_loader.args.datasets": [{"data_dir": "a", "weigth": 2}]}, r"unknown key\(s\) \['weigth'\]"),
    ({"train_loader.args.samples_per_epoch": 100}, "'train_loader.args.samples_per_epoch' needs 'datasets'"),
    ({"trainer.monitor": "max smdra/mIoU"}, "'trainer.monitor' names dataset 'smdra'"),
])
def test_dataset_list_errors_name_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config(raw_config(**changes), "cfg.json")


def test_monitor_may_name_a_validation_dataset():
    assert parse_monitor("max trashnet/object_accuracy") == ("max", "trashnet/object_accuracy")
    assert parse_monitor("max Mean_IoU") == ("max", "mIoU")
    metrics = {"mIoU": 0.5, "datasets": {"trashnet": {"object_accuracy": 0.75, "mIoU": 0.2}}}
    assert monitored(metrics, "trashnet/object_accuracy") == 0.75 and monitored(metrics, "mIoU") == 0.5


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory, materials):
    root = tmp_path_factory.mktemp("mix")
    a = make_dataset(root / "rooms", materials, n_train=8, n_val=3, seed=1)
    b = make_dataset(root / "photos", materials, n_train=4, n_val=3, seed=2)
    objects = {name: [{"box": [0, 0, 64, 64], "material": 2, "category": "rug"}]
               for name in (b / "ImageSets" / "Segmentation" / "val.txt").read_text().split()}
    (b / OBJECTS_FILE).write_text(json.dumps(objects))
    return a, b


def test_training_on_two_datasets_validates_each_and_selects_on_one(tmp_path, two_sets):
    a, b = two_sets
    cfg = write_config(
        tmp_path / "cfg.json", ENET_CONFIG,
        **{"train_loader.args.datasets": [{"data_dir": str(a), "weight": 1}, {"data_dir": str(b), "weight": 3}],
           "train_loader.args.samples_per_epoch": 8, "train_loader.args.photometric": True,
           "val_loader.args.datasets": [{"data_dir": str(a), "split": "val"},
                                        {"data_dir": str(b), "split": "val", "name": "real"}],
           "trainer.monitor": "max real/object_accuracy", "trainer.val_per_epochs": 1})
    save = tmp_path / "save"
    assert cli.main(["train", "--config", str(cfg), "--save-dir", str(save), "--epochs", "2",
                     "--batch-size", "2", "--threads", "1", "--no-progress"]) == 0
    run = only_run(save)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    metrics = ckpt["metrics"]
    assert set(metrics["datasets"]) == {"rooms", "real"}
    assert "object_accuracy" in metrics["datasets"]["real"] and "object_accuracy" not in metrics["datasets"]["rooms"]
    assert metrics["mIoU"] == pytest.approx(np.mean([m["mIoU"] for m in metrics["datasets"].values()]))
    best = torch.load(run / "best.pt", weights_only=True)
    assert ckpt["best_metric"] == best["metrics"]["datasets"]["real"]["object_accuracy"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    logs = list((save / "runs").rglob("events.out.tfevents.*"))
    acc = EventAccumulator(str(logs[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"val/rooms/mIoU", "val/real/mIoU", "val/real/object_accuracy", "val/mean_mIoU"} <= tags


def test_eval_reports_object_accuracy_and_node_mode(tmp_path, two_sets, materials, capsys):
    """matseg eval on a boxed set: object accuracy and collapse rate equal to what is computed
    here from the same predictions; --mode node runs at the model's input size."""
    from conftest import export_tiny_onnx
    from matseg_ros.io.dataset_layout import read_split, find_image, mask_path, read_rgb
    from matseg_ros.io.masks import read_mask
    from matseg_ros.training.collapse import CollapseTally
    from matseg_ros.training.predict import image_tensor, load_model, predict_logits

    _, b = two_sets
    model, _ = export_tiny_onnx(tmp_path / "tiny.onnx", materials, input_size=(48, 64))
    out = tmp_path / "eval"
    assert cli.main(["eval", "--model", str(model), "--data", str(b), "--split", "val",
                     "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    forward, meta, _, _ = load_model(model)
    tally = ObjectTally(9)
    collapse = CollapseTally()
    objects = json.loads((b / OBJECTS_FILE).read_text())
    for image_id in read_split(b, "val"):
        rgb = read_rgb(find_image(b, image_id))
        pred = predict_logits(forward, image_tensor(rgb, meta)).argmax(1)[0].numpy()
        tally.add(pred, objects[image_id])
        collapse.add(pred, read_mask(mask_path(b, image_id), materials)[0])
    assert metrics["object_accuracy"] == pytest.approx(tally.compute()["object_accuracy"])
    expected = collapse.compute()
    assert (metrics["collapsed_images"], metrics["multi_material_images"]) == \
        (expected["collapsed_images"], expected["multi_material_images"])
    assert expected["multi_material_images"] == 3
    printed = capsys.readouterr().out
    assert "object accuracy" in printed and "collapse rate" in printed
    assert cli.main(["eval", "--model", str(model), "--data", str(b), "--split", "val",
                     "--mode", "node", "--output", str(tmp_path / "node")]) == 0
    node = json.loads((tmp_path / "node" / "metrics.json").read_text())
    assert node["mode"] == "node" and node["pixels"] == metrics["pixels"]
