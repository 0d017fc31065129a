"""End to end on a tiny generated dataset, on the CPU: train, resume, DDP, eval, infer, export."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from matseg_ros import cli
from matseg_ros.runtime.checkpoint import load_checkpoint, model_from_checkpoint
from matseg_ros.io.masks import read_mask
from matseg_ros.training import export as export_module, predict, train as train_module
from training_helpers import make_dataset, only_run, write_config

REPO = Path(__file__).resolve().parents[1]
ENET_CONFIG = REPO / "config" / "train" / "enet_cpu.json"
FAST = ["--threads", "1", "--no-progress"]


@pytest.fixture(autouse=True)
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, materials):
    return make_dataset(tmp_path_factory.mktemp("hrim"), materials, n_train=16, n_val=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset):
    """A 12-epoch ENet run: the run folder (checkpoints, TensorBoard logs beside it)."""
    save = tmp_path_factory.mktemp("trained")
    cfg = write_config(save / "cfg.json", ENET_CONFIG, **{"trainer.save_period": 1})
    rc = cli.main(["train", "--config", str(cfg), "--data-dir", str(dataset), "--save-dir",
                   str(save), "--epochs", "12", "--batch-size", "2", *FAST])
    assert rc == 0
    return only_run(save)


def background_only_miou(dataset: Path, materials) -> float:
    """mIoU of predicting background everywhere, from the val masks (the trivial baseline)."""
    ids = np.concatenate([read_mask(p, materials)[0].ravel()
                          for p in sorted((dataset / "SegmentationClass").glob("*.png"))[-4:]])
    return float((ids == 0).mean()) / len(np.unique(ids))


def test_training_lowers_the_loss_and_beats_chance(trained, dataset, materials):
    first = load_checkpoint(trained / "epoch_1.pt")
    last = load_checkpoint(trained / "last.pt")
    best = load_checkpoint(trained / "best.pt")
    assert last["epoch"] == 12 and first["epoch"] == 1
    assert last["train_loss"] < 0.6 * first["train_loss"]
    baseline = background_only_miou(dataset, materials)
    assert 0.1 < baseline < 0.2
    assert best["metrics"]["mIoU"] > max(0.25, 2 * baseline)
    assert best["metrics"]["mIoU"] == best["best_metric"] == max(
        load_checkpoint(trained / f"epoch_{e}.pt")["metrics"]["mIoU"] for e in range(1, 13))
    assert best["metrics"]["pixels"] == 4 * 64 * 64  # whole validation images, no centre crop


def test_checkpoint_contents(trained, materials):
    ckpt = torch.load(trained / "last.pt", weights_only=True)
    assert ckpt["format"] == "matseg-checkpoint/1"
    assert not any(k.startswith("module.") for k in ckpt["model"])
    assert ckpt["classes"] == materials.entries() and ckpt["arch"] == "ENet"
    assert ckpt["input_size"] == [64, 64] and ckpt["config"]["trainer"]["epochs"] == 12
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python"}
    for key in ("optimizer", "scheduler", "scaler", "metrics", "best_metric", "seed"):
        assert key in ckpt
    assert ckpt["precision"] == {"precision": "fp32", "reason": "trainer.cpu_precision is fp32"}
    epochs = [load_checkpoint(trained / f"epoch_{e}.pt")["elapsed_s"] for e in range(1, 13)]
    assert 0 < epochs[0] and all(a < b for a, b in zip(epochs, epochs[1:]))  # summed per epoch
    model, meta = model_from_checkpoint(ckpt, "last.pt")
    assert meta.classes == materials and not model.training
    assert json.loads((trained / "config.json").read_text())["arch"]["type"] == "ENet"


def test_default_model_script_reports_where_a_run_is(trained, tmp_path):
    """scripts/train_default_model.sh --status reads the state folder a run leaves."""
    script = REPO / "scripts" / "train_default_model.sh"
    env = {**os.environ, "STATE_DIR": str(tmp_path / "state"), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}

    def status() -> str:
        done = subprocess.run(["bash", str(script), "--status"], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
        return done.stdout

    assert "training not started" in status()
    run = tmp_path / "state" / "run" / "default" / "20261207-000000"
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes((trained / "last.pt").read_bytes())
    hours = load_checkpoint(trained / "last.pt")["elapsed_s"] / 3600
    assert f"last.pt: epoch 12 of 12, {hours:.2f} h of completed epochs" in status()


def test_tensorboard_has_losses_metrics_and_panels(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logs = list((trained.parents[1] / "runs").glob(f"*/{trained.name}/events.out.tfevents.*"))
    assert len(logs) == 1
    events = EventAccumulator(str(logs[0]), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "val/mIoU", "val/loss", "val_iou/background"} <= set(tags["scalars"])
    assert len(events.Scalars("val/mIoU")) == 12
    assert len(events.Scalars("train/loss_iter")) == 12 * 8  # log_per_iter 1, 8 iterations/epoch
    assert "val/example_0" in tags["images"]
    panel = events.Images("val/example_0")[-1]
    assert (panel.width, panel.height) == (3 * 64, 64)


def test_resumed_run_reproduces_the_uninterrupted_one(tmp_path, dataset, monkeypatch):
    cfg = write_config(tmp_path / "cfg.json", ENET_CONFIG, **{"trainer.epochs": 3,
                                                              "trainer.tensorboard": False})
    common = ["--data-dir", str(dataset), "--batch-size", "4", *FAST]
    assert cli.main(["train", "--config", str(cfg), "--save-dir", str(tmp_path / "a"), *common]) == 0
    uninterrupted = load_checkpoint(only_run(tmp_path / "a") / "last.pt")

    real = train_module.train_one_epoch
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", interrupted)
    assert cli.main(["train", "--config", str(cfg), "--save-dir", str(tmp_path / "b"), *common]) == 130
    monkeypatch.setattr(train_module, "train_one_epoch", real)
    run_b = only_run(tmp_path / "b")
    assert load_checkpoint(run_b / "last.pt")["epoch"] == 2
    assert cli.main(["train", "--resume", str(run_b / "last.pt"), *FAST]) == 0
    resumed = load_checkpoint(run_b / "last.pt")

    assert resumed["epoch"] == 3
    for key, value in uninterrupted["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    state_a, state_b = uninterrupted["optimizer"]["state"], resumed["optimizer"]["state"]
    assert all(torch.equal(state_a[i]["exp_avg"], state_b[i]["exp_avg"]) for i in state_a)
    # json: NaN (absent classes) compares equal to NaN
    assert json.dumps(resumed["metrics"]) == json.dumps(uninterrupted["metrics"])
    assert resumed["scheduler"]["last_epoch"] == uninterrupted["scheduler"]["last_epoch"]
    assert resumed["train_loss"] == uninterrupted["train_loss"]


def test_init_weights_fine_tunes_from_a_checkpoint(tmp_path, trained, dataset, caplog):
    caplog.set_level(logging.INFO, logger="matseg.train")
    source = load_checkpoint(trained / "best.pt")
    cfg = write_config(tmp_path / "cfg.json", ENET_CONFIG, **{"trainer.epochs": 1,
                                                              "trainer.tensorboard": False})
    # a vanishing learning rate: the weights stay the source's, the optimizer starts afresh
    assert cli.main(["train", "--config", str(cfg), "--init-weights", str(trained / "best.pt"),
                     "--data-dir", str(dataset), "--save-dir", str(tmp_path / "ft"),
                     "--batch-size", "4", "--lr", "1e-12", *FAST]) == 0
    assert f"initial weights: {trained / 'best.pt'} (ENet, epoch {source['epoch']}" in caplog.text
    tuned = load_checkpoint(only_run(tmp_path / "ft") / "last.pt")
    assert tuned["epoch"] == 1 and tuned["init_weights"] == str(trained / "best.pt")
    assert tuned["scheduler"]["last_epoch"] == 4  # one epoch of 16 images in batches of 4
    params = dict(model_from_checkpoint(source, "best")[0].named_parameters())
    assert params and all(torch.allclose(value, tuned["model"][name], atol=1e-6)
                          for name, value in params.items())
    assert tuned["metrics"]["mIoU"] > 0.8 * source["metrics"]["mIoU"]  # far above a fresh model

    fresh = only_run(tmp_path / "ft") / "last.pt"
    assert cli.main(["train", "--resume", str(fresh), "--epochs", "2", *FAST]) == 0
    assert load_checkpoint(fresh)["init_weights"] == str(trained / "best.pt")  # kept on resume


def test_init_weights_errors_name_the_file_and_the_mismatch(tmp_path, trained, dataset, capsys):
    best = str(trained / "best.pt")
    common = ["--data-dir", str(dataset), "--save-dir", str(tmp_path), *FAST]
    unet = write_config(tmp_path / "unet.json", ENET_CONFIG, **{"arch.type": "UNet"})
    assert cli.main(["train", "--config", str(unet), "--init-weights", best, *common]) == 2
    assert f"{best}: weights do not fit UNet/None" in capsys.readouterr().err

    palette = yaml.safe_load((REPO / "config" / "materials.yaml").read_text())
    palette["classes"] = palette["classes"][:3]
    (tmp_path / "three.yaml").write_text(yaml.safe_dump(palette))
    three = write_config(tmp_path / "three.json", ENET_CONFIG, materials=str(tmp_path / "three.yaml"))
    assert cli.main(["train", "--config", str(three), "--init-weights", best, *common]) == 2
    assert ("its class map (background, ceramic, fabric, glass, metal, paper, plastic, stone, "
            "wood) differs from the config's materials (background, ceramic, fabric)"
            in capsys.readouterr().err)

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert cli.main(["train", "--config", str(ENET_CONFIG), "--init-weights", str(junk), *common]) == 2
    assert str(junk) in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--resume", best, "--init-weights", best])
    assert "not allowed with argument" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args: list[str]) -> subprocess.CompletedProcess:
    """`matseg train ARGS` as two gloo processes under torchrun."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "matseg_ros.cli",
           "train", *args, *FAST]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_ddp_two_gloo_processes_and_a_bit_exact_resume(tmp_path, dataset, materials):
    cfg = write_config(tmp_path / "cfg.json", ENET_CONFIG, **{
        "trainer.epochs": 3, "trainer.save_period": 1, "trainer.tensorboard": False, "n_gpu": 2,
        "use_synch_bn": True, "val_loader.args.batch_size": 1, "seed": None})
    proc = torchrun(["--config", str(cfg), "--data-dir", str(dataset), "--save-dir",
                     str(tmp_path / "out"), "--batch-size", "2"])
    assert "on cpu (2 process(es)" in proc.stderr
    assert "SyncBatchNorm needs CUDA" in proc.stderr
    assert proc.stderr.count("epoch 3: train loss") == 1  # only rank 0 reports
    assert proc.stdout.count("done: run folder") == 1  # flushed before the workers' os._exit
    run = only_run(tmp_path / "out")
    ckpt = load_checkpoint(run / "last.pt")
    assert ckpt["epoch"] == 3 and not any(k.startswith("module.") for k in ckpt["model"])
    # each rank's dropout draws from its own RNG stream; both are kept
    ranks = ckpt["rng_ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])

    # validation was sharded over the two ranks and all-reduced: it must equal a
    # single-process evaluation of the saved weights over the whole split
    model, meta = model_from_checkpoint(ckpt, "ddp")
    from matseg_ros.training.dataset import HRIM
    from matseg_ros.training.metrics import ConfusionMatrix
    from matseg_ros.training.transforms import val_transform
    val = HRIM(dataset, "val", materials, val_transform(meta.mean, meta.std))
    cm = ConfusionMatrix(9)
    with torch.inference_mode():
        for image, target, _ in val:
            cm.update(model(image[None]).argmax(1), target[None])
    assert ckpt["metrics"]["confusion_matrix"] == cm.compute()["confusion_matrix"]

    # resuming epoch 2's checkpoint under torchrun repeats epoch 3 bit for bit; with "seed"
    # null this holds only if both processes' samplers shuffled with the one seed saved
    torchrun(["--resume", str(run / "epoch_2.pt"), "--save-dir", str(tmp_path / "resumed")])
    resumed = load_checkpoint(only_run(tmp_path / "resumed") / "last.pt")
    assert resumed["epoch"] == 3
    for key, value in ckpt["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert resumed["train_loss"] == ckpt["train_loss"]


def test_n_gpu_without_torchrun_explains_the_launch(tmp_path, dataset, capsys):
    cfg = write_config(tmp_path / "cfg.json", ENET_CONFIG, n_gpu=4)
    assert cli.main(["train", "--config", str(cfg), "--data-dir", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert "n_gpu is 4" in err
    assert f"torchrun --standalone --nproc_per_node=4 -m matseg_ros.cli train --config {cfg}" in err


def test_train_errors_are_clear(tmp_path, dataset, capsys):
    assert cli.main(["train"]) == 2
    assert "give --config" in capsys.readouterr().err
    cfg = write_config(tmp_path / "cfg.json", ENET_CONFIG, **{"train_loader.args.split": "nope"})
    assert cli.main(["train", "--config", str(cfg), "--data-dir", str(dataset)]) == 2
    assert "nope.txt: split file not found" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(ENET_CONFIG), "--data-dir", str(dataset),
                     "--batch-size", "64"]) == 2
    assert "has 16 images: fewer than train_loader.args.batch_size (64)" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # the config's 8 workers
def test_seed_example_config_runs_with_sizes_overridden(tmp_path, dataset):
    """The original DeepLab/ResNet-101 config, verbatim but for data_dir, epochs and sizes."""
    rc = cli.main(["train", "--config", str(REPO / "config/train/deeplab_resnet101.json"),
                   "--data-dir", str(dataset), "--epochs", "1", "--crop-size", "32",
                   "--base-size", "32", "--save-dir", str(tmp_path), *FAST])
    assert rc == 0
    ckpt = load_checkpoint(only_run(tmp_path) / "last.pt")
    assert (ckpt["arch"], ckpt["backbone"], ckpt["epoch"]) == ("DeepLab", "resnet101", 1)
    lrs = [g["lr"] for g in ckpt["optimizer"]["param_groups"]]
    assert lrs[0] == pytest.approx(lrs[1] / 10)  # differential_lr: backbone at lr/10
    assert (only_run(tmp_path) / "best.pt").is_file()  # validated on the last epoch


# --- eval / infer / export -------------------------------------------------------------

def test_export_eval_infer_end_to_end(trained, dataset, tmp_path, materials, capsys, monkeypatch):
    best = trained / "best.pt"
    onnx_path = tmp_path / "model.onnx"
    assert cli.main(["export", "--model", str(best), "--output", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "on a 64×64 input: max |difference|" in out and onnx_path.is_file()
    assert "on a 32×32 input: max |difference|" in out  # a second size: dynamic axes checked

    # a model that fails the parity check leaves the earlier file as it was
    before = onnx_path.read_bytes()
    monkeypatch.setitem(export_module.TOLERANCE, "fp32", -1.0)
    assert cli.main(["export", "--model", str(best), "--output", str(onnx_path)]) == 1
    assert "differs from PyTorch by" in capsys.readouterr().err
    assert onnx_path.read_bytes() == before and sorted(tmp_path.iterdir()) == [onnx_path]
    monkeypatch.undo()

    from matseg_ros.runtime.engine import load_engine
    engine = load_engine(onnx_path)
    assert engine.classes == materials and engine.metadata.architecture == "ENet"
    assert engine.metadata.input_size == (64, 64)

    for model in (best, onnx_path):
        out_dir = tmp_path / f"eval_{model.suffix[1:]}"
        assert cli.main(["eval", "--model", str(model), "--data", str(dataset), "--output",
                         str(out_dir), "--threads", "1"]) == 0
        table = capsys.readouterr().out
        assert "background" in table and "mIoU" in table
        metrics = json.loads((out_dir / "metrics.json").read_text())
        assert metrics["mIoU"] == pytest.approx(load_checkpoint(best)["metrics"]["mIoU"], abs=2e-3)
        assert None in metrics["per_class_iou"]  # classes absent from val: null, not 0
        png = cv2.imread(str(out_dir / "confusion_matrix.png"))
        assert png is not None and png.shape[0] > 200
    # leaving background out: its IoU is null and its ground-truth pixels are not scored
    assert cli.main(["eval", "--model", str(onnx_path), "--data", str(dataset), "--output",
                     str(tmp_path / "no_bg"), "--ignore-class", "0", "--threads", "1"]) == 0
    no_bg = json.loads((tmp_path / "no_bg" / "metrics.json").read_text())
    assert no_bg["per_class_iou"][0] is None and no_bg["ignore_class"] == 0
    assert no_bg["pixels"] == metrics["pixels"] - sum(metrics["confusion_matrix"][0])
    # a checkpoint trained with ignore_index 0 is scored the same way without the flag
    ckpt = load_checkpoint(best)
    ckpt["config"]["ignore_index"] = 0
    ignoring = tmp_path / "ignoring.pt"
    torch.save(ckpt, ignoring)
    assert cli.main(["eval", "--model", str(ignoring), "--data", str(dataset), "--output",
                     str(tmp_path / "trained_no_bg"), "--threads", "1"]) == 0
    trained_no_bg = json.loads((tmp_path / "trained_no_bg" / "metrics.json").read_text())
    assert trained_no_bg["ignore_class"] == 0 and trained_no_bg["pixels"] == no_bg["pixels"]
    assert cli.main(["eval", "--model", str(onnx_path), "--data", str(dataset),
                     "--ignore-class", "42"]) == 2
    assert "--ignore-class 42 is not a class id" in capsys.readouterr().err

    images = dataset / "JPEGImages"
    model, meta = model_from_checkpoint(load_checkpoint(best), "best")
    assert cli.main(["infer", "--model", str(best), "--images", str(images), "--output",
                     str(tmp_path / "single"), "--mode", "single", "--save-ids", "--overlay",
                     "--threads", "1"]) == 0
    rgb = cv2.imread(str(images / "000017.jpg"))[..., ::-1].copy()
    with torch.inference_mode():
        expected = model(predict.image_tensor(rgb, meta)).argmax(1)[0].numpy()
    written, _ = read_mask(tmp_path / "single" / "000017.png", materials)
    ids = cv2.imread(str(tmp_path / "single" / "000017_ids.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(written, expected) and np.array_equal(ids, expected)
    assert (tmp_path / "single" / "000017_overlay.jpg").is_file()
    assert len(list((tmp_path / "single").glob("*_ids.png"))) == 20

    for mode in (["--mode", "multiscale", "--scales", "0.75", "1.0", "1.5"],
                 ["--mode", "sliding", "--tile-size", "40", "--overlap", "0.5"]):
        assert cli.main(["infer", "--model", str(onnx_path), "--images", str(images),
                         "--output", str(tmp_path / mode[1]), *mode, "--threads", "1"]) == 0
        got, _ = read_mask(tmp_path / mode[1] / "000017.png", materials)
        assert (got == expected).mean() > 0.7  # same model, other views: mostly the same


def test_export_to_a_slim_checkpoint(trained, tmp_path, capsys):
    best = load_checkpoint(trained / "best.pt")
    slim_path = tmp_path / "slim.pt"
    assert cli.main(["export", "--model", str(trained / "best.pt"), "--output", str(slim_path),
                     "--input-size", "48", "80"]) == 0
    assert "no optimizer state" in capsys.readouterr().out
    slim = torch.load(slim_path, weights_only=True)
    assert not {"optimizer", "scheduler", "scaler", "rng"} & set(slim)
    assert slim["input_size"] == [48, 80] and slim["classes"] == best["classes"]
    assert slim["epoch"] == best["epoch"] and json.dumps(slim["metrics"]) == json.dumps(best["metrics"])
    assert slim_path.stat().st_size < 0.6 * (trained / "best.pt").stat().st_size
    model, meta = model_from_checkpoint(slim, "slim")
    reference = model_from_checkpoint(best, "best")[0]
    x = torch.randn(1, 3, 48, 80)
    with torch.inference_mode():
        assert torch.equal(model(x), reference(x))
    assert meta.input_size == (48, 80)
    assert cli.main(["export", "--model", str(trained / "best.pt"), "--output", str(slim_path),
                     "--fp16"]) == 2
    assert "--fp16 applies to ONNX output" in capsys.readouterr().err


def test_export_recalibrates_batchnorm_at_the_input_size(trained, dataset, tmp_path, capsys):
    from matseg_ros.training.bn_calibration import (calibration_batches, calibration_ids,
                                                    recalibrate_batchnorm)

    slim_path = tmp_path / "calibrated.pt"
    assert cli.main(["export", "--model", str(trained / "best.pt"), "--output", str(slim_path),
                     "--input-size", "48", "80", "--calibrate-bn", str(dataset),
                     "--calibrate-images", "6", "--no-progress"]) == 0
    assert "re-estimated on 6 images" in capsys.readouterr().out
    calibrated = torch.load(slim_path, weights_only=True)["model"]
    # the same six training images, by the library function, on the checkpoint as trained
    model, meta = model_from_checkpoint(load_checkpoint(trained / "best.pt"), "best")
    trained_state = {k: v.clone() for k, v in model.state_dict().items()}
    meta = dataclasses.replace(meta, input_size=(48, 80))
    ids = calibration_ids(dataset, 6)
    assert len(set(ids)) == 6 and set(ids) <= set((dataset / "ImageSets/Segmentation/train.txt").read_text().split())
    recalibrate_batchnorm(model, calibration_batches(dataset, ids, meta), progress=False)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(calibrated[key], value)
        if key.endswith("running_mean"):
            assert not torch.equal(value, trained_state[key])
        elif "running" not in key and "num_batches" not in key:
            assert torch.equal(value, trained_state[key])

    (tmp_path / "nosplit").mkdir()
    assert cli.main(["export", "--model", str(trained / "best.pt"), "--output", str(slim_path),
                     "--calibrate-bn", str(tmp_path / "nosplit")]) == 2
    assert "--calibrate-bn:" in (err := capsys.readouterr().err) and "train.txt: split file not found" in err


def test_eval_infer_export_errors(tmp_path, dataset, trained, capsys):
    assert cli.main(["eval", "--model", str(tmp_path / "none.pt"), "--data", str(dataset)]) == 2
    assert "none.pt: model file not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["infer", "--model", str(trained / "best.pt"), "--images",
                     str(tmp_path / "empty"), "--output", str(tmp_path / "o")]) == 2
    assert "empty: no images" in capsys.readouterr().err
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    assert cli.main(["export", "--model", str(tmp_path / "other.pt"), "--output",
                     str(tmp_path / "x.onnx")]) == 2
    assert "other.pt: expected a matseg checkpoint dict" in capsys.readouterr().err


# --- prediction modes on a known function ---------------------------------------------

def identity(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


def test_sliding_window_stitches_exactly():
    x = torch.randn(1, 3, 37, 53)
    for tile, overlap in (((16, 16), 1 / 3), ((20, 30), 0.5), ((64, 64), 0.25), ((37, 53), 0.0)):
        assert torch.allclose(predict.sliding(identity, x, tile, overlap, batch=3), x, atol=1e-6)
    calls = []

    def counting(t):
        calls.append(t.shape[0])
        return t

    predict.sliding(counting, x, (16, 16), 0.0, batch=4)
    assert sum(calls) == 3 * 4 and max(calls) <= 4  # 37/16 -> 3 rows, 53/16 -> 4 cols


def test_multiscale_averages_logits_over_scales_and_flips():
    x = torch.randn(1, 3, 24, 32)
    assert torch.allclose(predict.multiscale(identity, x, [1.0], flip=True), x, atol=1e-6)
    down = torch.nn.functional.interpolate(x, size=(12, 16), mode="bilinear", align_corners=False)
    back = torch.nn.functional.interpolate(down, size=(24, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(predict.multiscale(identity, x, [0.5, 1.0], flip=False),
                          (back + x) / 2, atol=1e-6)
    batches = []
    predict.multiscale(lambda t: batches.append(t.shape[0]) or t, x, [0.5, 1.0], flip=True)
    assert batches == [2, 2]  # each scale runs with its flipped copy in one batch


def test_val_per_epochs_and_early_stop_in_epochs(tmp_path, dataset):
    # lr ~ 0 and frozen BatchNorm: the metric cannot improve after the first validation
    cfg = write_config(tmp_path / "cfg.json", ENET_CONFIG, **{
        "trainer.epochs": 6, "trainer.val_per_epochs": 2, "trainer.early_stop": 2,
        "trainer.save_period": 1, "trainer.tensorboard": False, "optimizer.args.lr": 1e-12,
        "arch.args.freeze_bn": True})
    assert cli.main(["train", "--config", str(cfg), "--data-dir", str(dataset), "--save-dir",
                     str(tmp_path), "--batch-size", "8", *FAST]) == 0
    run = only_run(tmp_path)
    assert load_checkpoint(run / "epoch_1.pt")["metrics"] == {}        # not validated
    assert load_checkpoint(run / "epoch_2.pt")["metrics"]["pixels"] > 0  # validated
    assert load_checkpoint(run / "best.pt")["epoch"] == 2
    assert load_checkpoint(run / "last.pt")["epoch"] == 4                # stopped 2 epochs later
    assert not (run / "epoch_5.pt").exists()


def test_balancing_options_train(tmp_path, dataset, caplog):
    cfg = write_config(tmp_path / "cfg.json", ENET_CONFIG, **{
        "trainer.epochs": 1, "trainer.tensorboard": False, "loss": "FocalLoss",
        "balance": {"class_weights": "median_frequency", "oversample": True}})
    with caplog.at_level("INFO", logger="matseg.train"):
        assert cli.main(["train", "--config", str(cfg), "--data-dir", str(dataset), "--save-dir",
                         str(tmp_path), *FAST]) == 0
    weights = [r.args for r in caplog.records if r.msg.startswith("class weights")][0]
    assert weights["background"] < 1 < weights["ceramic"]  # rarer than the median: weighted up
    assert weights["wood"] == 1.0                            # never seen: neutral
