"""What a model file must say about itself, so inference needs nothing else.

ONNX models carry it in `metadata_props` (string -> string), PyTorch checkpoints as
plain dict entries. The keys:

| key                  | ONNX value (string)                     | meaning                                     |
|----------------------|-----------------------------------------|---------------------------------------------|
| `matseg.format`      | `"1"`                                   | version of this schema                      |
| `matseg.classes`     | JSON `[{"id", "name", "color": [r,g,b]}]` | class map; logit channel i is class id i  |
| `matseg.mean`        | JSON `[r, g, b]`, 0..1                   | normalisation: (rgb/255 - mean) / std      |
| `matseg.std`         | JSON `[r, g, b]`, 0..1                   |                                             |
| `matseg.input_size`  | JSON `[height, width]`                   | size the network is fed (frames resized)   |
| `matseg.architecture`| e.g. `"DeepLab"`                          | `build_model` name                          |
| `matseg.backbone`    | e.g. `"resnet18"` or `""`                | `build_model` backbone                      |
| `matseg.precision`   | `"fp32"` (when absent), `"fp16"`, `"int8"` | what the graph computes in                |
| `matseg.calibration` | JSON `{"data", "split", "count", ...}`   | int8 only: the images it was calibrated on |

Tensors: input `input`, float32 N×3×H×W RGB normalised as above; output `logits`,
float32 N×C×H×W (C = number of classes). N, height and width are dynamic axes (fp16
files take and give float16). An int8 file (`matseg export --int8`) keeps float32 input
and output around a QDQ graph and must say how it was calibrated.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..materials import MaterialMap, MaterialsError

FORMAT_VERSION = "1"
PREFIX = "matseg."
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PRECISIONS = ("fp32", "fp16", "int8")
CALIBRATION_KEYS = ("data", "split", "count")  # what `matseg.calibration` must name at least


class ModelMetadataError(ValueError):
    """A model file without usable matseg metadata; the message names the file and key."""


def parse_calibration(text: str | None, precision: str, source: str) -> dict[str, Any]:
    """The `matseg.calibration` object; an int8 file without one was not made by
    `matseg export --int8` and cannot say what its ranges were measured on."""
    key = PREFIX + "calibration"
    if text is None:
        if precision == "int8":
            raise ModelMetadataError(f"{source}: int8 model lacks '{key}'; make it with "
                                     "`matseg export --int8 --calibrate-data DIR`")
        return {}
    try:
        calibration = json.loads(text)
    except ValueError:
        calibration = None
    if not isinstance(calibration, dict) or not set(CALIBRATION_KEYS) <= set(calibration):
        raise ModelMetadataError(f"{source}: '{key}' must be a JSON object with "
                                 f"{', '.join(CALIBRATION_KEYS)}, got {text!r}")
    return calibration


@dataclass(frozen=True)
class ModelMetadata:
    classes: MaterialMap
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: tuple[int, int] = (480, 640)
    architecture: str = ""
    backbone: str = ""
    precision: str = "fp32"
    calibration: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    def to_props(self) -> dict[str, str]:
        """The ONNX metadata_props dict."""
        props = {
            "format": FORMAT_VERSION,
            "classes": self.classes.to_json(),
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "input_size": json.dumps(list(self.input_size)),
            "architecture": self.architecture,
            "backbone": self.backbone,
            "precision": self.precision,
        }
        if self.calibration:
            props["calibration"] = json.dumps(self.calibration, sort_keys=True)
        props.update(self.extra)
        return {PREFIX + k: v for k, v in props.items()}

    @classmethod
    def from_props(cls, props: Mapping[str, str], source: str) -> "ModelMetadata":
        def get(key: str) -> str:
            full = PREFIX + key
            if full not in props:
                have = sorted(k for k in props if k.startswith(PREFIX)) or "none"
                raise ModelMetadataError(
                    f"{source}: model metadata lacks '{full}' (matseg keys present: {have}); "
                    "export the model with `matseg export` so it carries its class map and "
                    "normalisation")
            return props[full]

        def triple(key: str) -> tuple[float, float, float]:
            try:
                value = json.loads(get(key))
                if len(value) != 3:
                    raise ValueError
                return tuple(float(v) for v in value)  # type: ignore[return-value]
            except (ValueError, TypeError):
                raise ModelMetadataError(
                    f"{source}: '{PREFIX}{key}' must be a JSON list of 3 numbers, got {get(key)!r}"
                ) from None

        version = get("format")
        if version != FORMAT_VERSION:
            raise ModelMetadataError(
                f"{source}: '{PREFIX}format' is {version!r}, this matseg_ros reads {FORMAT_VERSION!r}")
        try:
            classes = MaterialMap.from_json(get("classes"), f"{source} ({PREFIX}classes)")
        except MaterialsError as exc:
            raise ModelMetadataError(str(exc)) from exc
        try:
            size = json.loads(get("input_size"))
            height, width = (int(v) for v in size)
            if height <= 0 or width <= 0:
                raise ValueError
        except (ValueError, TypeError):
            raise ModelMetadataError(
                f"{source}: '{PREFIX}input_size' must be a JSON [height, width] of positive "
                f"integers, got {get('input_size')!r}") from None
        precision = props.get(PREFIX + "precision", "fp32")
        if precision not in PRECISIONS:
            raise ModelMetadataError(f"{source}: '{PREFIX}precision' must be one of "
                                     f"{', '.join(PRECISIONS)}, got {precision!r}")
        calibration = parse_calibration(props.get(PREFIX + "calibration"), precision, source)
        known = {"format", "classes", "mean", "std", "input_size", "architecture", "backbone",
                 "precision", "calibration"}
        extra = {k[len(PREFIX):]: v for k, v in props.items()
                 if k.startswith(PREFIX) and k[len(PREFIX):] not in known}
        return cls(classes=classes, mean=triple("mean"), std=triple("std"),
                   input_size=(height, width), architecture=props.get(PREFIX + "architecture", ""),
                   backbone=props.get(PREFIX + "backbone", ""), precision=precision,
                   calibration=calibration, extra=extra)

    def to_checkpoint_entries(self) -> dict[str, Any]:
        """The same facts as plain checkpoint entries (weights_only-loadable types)."""
        return {"classes": self.classes.entries(), "mean": list(self.mean), "std": list(self.std),
                "input_size": list(self.input_size), "arch": self.architecture,
                "backbone": self.backbone or None}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], source: str) -> "ModelMetadata":
        missing = [k for k in ("classes", "arch") if k not in ckpt]
        if missing:
            raise ModelMetadataError(f"{source}: checkpoint lacks {missing}; is it a matseg checkpoint?")
        try:
            classes = MaterialMap.from_entries(ckpt["classes"], f"{source} (classes)")
        except MaterialsError as exc:
            raise ModelMetadataError(str(exc)) from exc
        size = ckpt.get("input_size") or (480, 640)
        return cls(classes=classes, mean=tuple(ckpt.get("mean", IMAGENET_MEAN)),
                   std=tuple(ckpt.get("std", IMAGENET_STD)), input_size=(int(size[0]), int(size[1])),
                   architecture=str(ckpt["arch"]), backbone=str(ckpt.get("backbone") or ""))
