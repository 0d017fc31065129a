"""Static int8 quantisation of an fp32 ONNX model for ONNX Runtime's CPU provider.

`matseg export --int8` runs `quant_pre_process` (ONNX shape inference and ORT's graph
optimisations: BatchNorm folded into Conv), then `quantize_static` calibrated on whole images
of a dataset split, resized to the model's input size and normalised with its metadata, as
the engines feed frames. The settings follow ONNX Runtime's advice for x86 CPUs with VNNI
(its `quantize_static` docstring): QDQ format, uint8 activations and int8 weights (U8S8),
per-channel weights, no reduced range, MinMax ranges. Measured on a 2-core AMD EPYC with
AVX-512 VNNI: U8S8 ran PPLiteSeg/ResNet-18 2.6-3.2x faster than fp32, S8S8 (int8
activations) no faster than fp32 (docs/runtime.md). Symbolic shape inference is skipped: it
stops on ENet ("Incomplete symbolic shape inference"), and ONNX's own inference is enough for
these networks. `CalibMaxIntermediateOutputs` is left unset: in onnxruntime 1.31 the MinMax
calibrator drops each full chunk without merging its ranges (microsoft/onnxruntime#18893).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from ..io import dataset_layout as layout
from ..runtime.engine import load_engine, preprocess
from ..runtime.modelmeta import INPUT_NAME, ModelMetadata
from .bn_calibration import calibration_ids

ACTIVATION_TYPE, WEIGHT_TYPE = "QUInt8", "QInt8"
CALIBRATION_METHOD = "MinMax"
AGREEMENT_IMAGES = 8  # images `matseg export --int8` compares fp32 and int8 ids on


class FrameCalibrationReader:
    """Dataset images as the engines feed them, one at a time: ONNX Runtime's
    `CalibrationDataReader` protocol (its ABC accepts any class with `get_next`)."""

    def __init__(self, data_dir: str | Path, ids: list[str], meta: ModelMetadata):
        self.data_dir, self.ids, self.meta = Path(data_dir), ids, meta
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= len(self.ids):
            return None
        image = layout.read_rgb(layout.find_image(self.data_dir, self.ids[self.position]))
        self.position += 1
        return {INPUT_NAME: preprocess(image, self.meta)}


def read_metadata(path: Path) -> ModelMetadata:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return ModelMetadata.from_props({p.key: p.value for p in model.metadata_props}, str(path))


def quantize_int8(source: str | Path, output: str | Path, data_dir: str | Path,
                  split: str = "train", count: int = 300,
                  input_size: tuple[int, int] | None = None) -> ModelMetadata:
    """Write the int8 version of the fp32 ONNX model `source` to `output` (atomically), its
    ranges calibrated on `count` images of `split`; every `matseg.*` key is carried over, with
    `matseg.precision` "int8" and `matseg.calibration` added. Returns the new metadata.
    Raises ModelMetadataError (the source) or DatasetError/ValueError (the data)."""
    import onnx
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, output = Path(source), Path(output)
    meta = read_metadata(source)
    if meta.precision != "fp32":
        raise ValueError(f"{source}: a {meta.precision} model; quantise the fp32 model instead")
    if input_size:
        meta = dataclasses.replace(meta, input_size=tuple(input_size))
    ids = calibration_ids(data_dir, count, split)
    with tempfile.TemporaryDirectory(prefix="matseg-int8-") as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(prepared, quantized, FrameCalibrationReader(data_dir, ids, meta),
                        quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=False,
                        activation_type=getattr(QuantType, ACTIVATION_TYPE),
                        weight_type=getattr(QuantType, WEIGHT_TYPE),
                        calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD))
        model = onnx.load(str(quantized))
    calibration = {"data": str(Path(data_dir).resolve()), "split": split, "count": len(ids),
                   "method": CALIBRATION_METHOD, "format": "QDQ", "activations": ACTIVATION_TYPE,
                   "weights": f"{WEIGHT_TYPE} per-channel"}
    meta = dataclasses.replace(meta, precision="int8", calibration=calibration)
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, meta.to_props())
    with atomic_path(output) as tmp_out:
        onnx.save(model, str(tmp_out))
    return meta


def held_out_ids(data_dir: str | Path, split: str, calibrated: int, count: int) -> list[str]:
    """Up to `count` images of `split` that calibration did not see (the split's validation
    images where it has none to spare)."""
    seen = set(calibration_ids(data_dir, calibrated, split))
    spare = [i for i in layout.read_split(data_dir, split) if i not in seen]
    if not spare and layout.split_file(data_dir, "val").is_file():
        spare = layout.read_split(data_dir, "val")
    return spare[:count]


def id_agreement(fp32_path: str | Path, int8_path: str | Path, data_dir: str | Path,
                 ids: list[str]) -> list[float]:
    """Per image, the share of pixels where the int8 model's class ids equal the fp32 model's
    (both through the engine, as the node runs them)."""
    fp32 = load_engine(fp32_path, device="cpu", precision="fp32", warmup=0)
    int8 = load_engine(int8_path, device="cpu", warmup=0)  # this very file, not an int8 sibling
    shares = []
    for image_id in ids:
        rgb = layout.read_rgb(layout.find_image(data_dir, image_id))
        shares.append(float((fp32.predict(rgb)[0] == int8.predict(rgb)[0]).mean()))
    return shares
