"""int8 models: `matseg export --int8`, their metadata, and how the engine opens (or refuses) them."""
import contextlib
import io
import json
import logging

import numpy as np
import onnx
import pytest
import torch

from conftest import export_tiny_onnx
from matseg_ros import cli
from matseg_ros.io import dataset_layout as layout
from matseg_ros.runtime.engine import EngineError, load_engine
from training_helpers import make_dataset

# The tiny network trained for 50 steps against its int8 version on the 6 held-out images:
# 99.88-99.93 % of ids equal (onnxruntime 1.31, AMD EPYC with VNNI). Untrained, its near-tied
# logits gave 95.4-98.0 %: 99 % leaves ten times the measured error and still catches that.
AGREEMENT = 0.99
TRAINING_STEPS = 50


def trained_tiny_onnx(path, dataset, materials):
    """make_tiny_net fitted to the dataset's train split (full batch, Adam), exported with metadata:
    a network that has learnt the classes, as a deployed one has."""
    from conftest import make_tiny_net
    from matseg_ros.io.masks import read_mask
    from matseg_ros.runtime.engine import preprocess
    from matseg_ros.runtime.modelmeta import ModelMetadata
    from matseg_ros.training.onnx_export import export_onnx

    meta = ModelMetadata(materials, input_size=(64, 64), architecture="TinyNet")
    ids = layout.read_split(dataset, "train")
    x = torch.from_numpy(np.concatenate(
        [preprocess(layout.read_rgb(layout.find_image(dataset, i)), meta) for i in ids]))
    y = torch.from_numpy(np.stack([read_mask(layout.mask_path(dataset, i), materials)[0] for i in ids]))
    net = make_tiny_net(materials.num_classes).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as fast for this tiny network, and 10x faster on a busy machine
    try:
        for _ in range(TRAINING_STEPS):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(x), y.long(), ignore_index=255).backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return export_onnx(net.eval(), path, example_size=(64, 64), metadata=meta.to_props())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, materials):
    return make_dataset(tmp_path_factory.mktemp("hrim") / "data", materials, n_train=16, n_val=6)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory, materials, dataset):
    """(fp32 ONNX, its int8 sibling made through the CLI, the CLI's output)."""
    folder = tmp_path_factory.mktemp("int8")
    fp32 = trained_tiny_onnx(folder / "tiny.onnx", dataset, materials)
    int8 = folder / "tiny.int8.onnx"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["export", "--model", str(fp32), "--output", str(int8), "--int8",
                         "--calibrate-data", str(dataset), "--calibrate-count", "12"])
    assert code == 0, out.getvalue()
    return fp32, int8, out.getvalue()


def test_int8_export_agrees_with_fp32_on_held_out_images(tiny_pair, dataset):
    fp32_path, int8_path, printed = tiny_pair
    assert "calibrated on 12 images" in printed and "calibration did not see" in printed
    fp32 = load_engine(fp32_path)
    int8 = load_engine(int8_path)
    assert (int8.precision, int8.device, int8.providers) == ("int8", "cpu", ["CPUExecutionProvider"])
    assert {n.op_type for n in onnx.load(str(int8_path)).graph.node} >= {"QuantizeLinear", "DequantizeLinear"}
    frames = [layout.read_rgb(layout.find_image(dataset, i)) for i in layout.read_split(dataset, "val")]
    for rgb in frames:
        ids, conf = int8.predict(rgb)
        ref_ids, _ = fp32.predict(rgb)
        assert len(np.unique(ref_ids)) > 1  # the fp32 network really separates classes here
        assert ids.dtype == np.uint8 and conf.dtype == np.float32 and ids.shape == rgb.shape[:2]
        assert ((conf > 0) & (conf <= 1)).all()
        assert (ids == ref_ids).mean() >= AGREEMENT
    batch = int8.predict_batch(frames[:3])  # the post-processing nodes work on a batch of int8 frames
    for rgb, (ids, conf) in zip(frames, batch):
        np.testing.assert_array_equal(ids, int8.predict(rgb)[0])
        np.testing.assert_allclose(conf, int8.predict(rgb)[1], atol=1e-5)


def test_int8_file_keeps_every_matseg_key_and_says_how_it_was_calibrated(tiny_pair, dataset):
    fp32_path, int8_path, _ = tiny_pair
    source = {p.key: p.value for p in onnx.load(str(fp32_path)).metadata_props}
    props = {p.key: p.value for p in onnx.load(str(int8_path)).metadata_props}
    for key, value in source.items():
        if key.startswith("matseg.") and key != "matseg.precision":
            assert props[key] == value, key
    assert props["matseg.precision"] == "int8"
    calibration = json.loads(props["matseg.calibration"])
    assert calibration["data"] == str(dataset.resolve())
    assert (calibration["split"], calibration["count"]) == ("train", 12)
    assert (calibration["activations"], calibration["format"]) == ("QUInt8", "QDQ")
    meta = load_engine(int8_path).metadata
    assert meta.precision == "int8" and meta.calibration == calibration


def test_precision_int8_takes_the_sibling_or_names_the_command(tiny_pair, tmp_path, materials, caplog):
    fp32_path, int8_path, _ = tiny_pair
    with caplog.at_level(logging.INFO):
        engine = load_engine(fp32_path, precision="int8")  # tiny.onnx -> tiny.int8.onnx beside it
    assert engine.precision == "int8" and f"using {int8_path}" in caplog.text
    assert load_engine(fp32_path).precision == "fp32"  # fp32 stays the default

    alone, _ = export_tiny_onnx(tmp_path / "alone.onnx", materials)
    with pytest.raises(EngineError, match=r"alone.onnx: precision int8 asked but this model is fp32, "
                       r"without int8 calibration; make one with `matseg export --model .*alone.onnx "
                       r"--output .*alone.int8.onnx --int8 --calibrate-data DATASET_DIR`"):
        load_engine(alone, precision="int8")
    (tmp_path / "alone.pt").write_bytes(b"")
    with pytest.raises(EngineError, match=r"alone.pt: precision int8 runs an int8 ONNX model .* "
                       r"alone.int8.onnx does not exist; make it with `matseg export"):
        load_engine(tmp_path / "alone.pt", precision="int8")


def test_int8_model_refuses_other_precisions_and_the_gpu(tiny_pair):
    _, int8_path, _ = tiny_pair
    with pytest.raises(EngineError, match="tiny.int8.onnx: an int8 model .* cannot run in fp32"):
        load_engine(int8_path, precision="fp32")
    with pytest.raises(EngineError, match="int8 models run on ONNX Runtime's CPU provider only"):
        load_engine(int8_path, device="cuda")
    with pytest.raises(EngineError, match="int8 models run on ONNX Runtime's CPU provider only"):
        load_engine(int8_path, require_gpu=True)
    with pytest.raises(EngineError, match="runs on ONNX Runtime, not on backend torch"):
        load_engine(int8_path, backend="torch", precision="int8")


def test_int8_metadata_without_calibration_is_an_error(tiny_pair, tmp_path):
    model = onnx.load(str(tiny_pair[1]))
    props = {p.key: p.value for p in model.metadata_props}
    del props["matseg.calibration"]
    onnx.helper.set_model_props(model, props)
    onnx.save(model, str(tmp_path / "hand.onnx"))
    with pytest.raises(EngineError, match="hand.onnx: int8 model lacks 'matseg.calibration'"):
        load_engine(tmp_path / "hand.onnx")


def test_int8_export_from_a_checkpoint(tmp_path, materials, dataset, capsys):
    """The checkpoint route: exported and parity-checked in fp32, then quantised."""
    from matseg_ros.networks import build_model
    from matseg_ros.runtime.checkpoint import save_checkpoint
    from matseg_ros.runtime.modelmeta import ModelMetadata

    torch.manual_seed(0)
    model = build_model("PPLiteSeg", "mobilenetv2", num_classes=materials.num_classes).eval()
    meta = ModelMetadata(materials, input_size=(64, 64), architecture="PPLiteSeg", backbone="mobilenetv2")
    save_checkpoint(tmp_path / "pp.pt", {"model": model.state_dict(), "arch_args": {},
                                         **meta.to_checkpoint_entries()})
    out = tmp_path / "pp.int8.onnx"
    assert cli.main(["export", "--model", str(tmp_path / "pp.pt"), "--output", str(out), "--int8",
                     "--calibrate-data", str(dataset), "--calibrate-count", "4"]) == 0
    printed = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch on a 64×64 input" in printed and "int8 for ONNX Runtime" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pp.int8.onnx", "pp.pt"]  # no fp32 left
    engine = load_engine(tmp_path / "pp.pt", precision="int8")  # pp.pt -> pp.int8.onnx
    assert engine.precision == "int8" and engine.metadata.backbone == "mobilenetv2"


@pytest.mark.parametrize("extra, message", [
    (["--int8"], "--int8 needs --calibrate-data"),
    (["--calibrate-data", "DATA"], "--calibrate-data applies to --int8"),
    (["--int8", "--calibrate-data", "DATA", "--fp16"], "--int8 writes an ONNX file"),
    ([], "an ONNX --model can only be quantised (--int8)"),
])
def test_export_option_errors(tiny_pair, tmp_path, capsys, extra, message):
    assert cli.main(["export", "--model", str(tiny_pair[0]), "--output",
                     str(tmp_path / "x.onnx"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_export_int8_names_a_missing_split(tiny_pair, tmp_path, dataset, capsys):
    assert cli.main(["export", "--model", str(tiny_pair[0]), "--output", str(tmp_path / "x.onnx"),
                     "--int8", "--calibrate-data", str(dataset), "--calibrate-split", "test"]) == 2
    assert "test.txt: split file not found" in capsys.readouterr().err
