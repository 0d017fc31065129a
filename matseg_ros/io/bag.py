"""`matseg bag`: segment every image of a recorded rosbag2 into a new bag.

The new bag holds every original topic unchanged plus the node's outputs
(`<namespace>/raw_segmentation_mask`, `colored_segmentation_mask`, `overlay`,
`materials`, `confidence` (mono8), and `classes` once), each message with the source image's header and
recording time — exactly what `segment_node` would have published live.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..runtime.encodings import ImageDecodeError, numpy_to_image
from ..runtime.engine import PRECISIONS
from ..runtime.pipeline import (COLORED, CONFIDENCE, MATERIALS, OVERLAY, RAW, FramePipeline, decode_frame,
                                materials_document, resolve_materials)
from .framesource import SourceError, bag_image_topics, choose_topic, open_bag_reader

SUBTOPICS = {RAW: "raw_segmentation_mask", COLORED: "colored_segmentation_mask",
             OVERLAY: "overlay", MATERIALS: "materials", CONFIDENCE: "confidence"}
OUTPUTS = tuple(SUBTOPICS)  # the node's outputs that need no depth image
IMAGE_TYPE, STRING_TYPE = "sensor_msgs/msg/Image", "std_msgs/msg/String"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, type=Path, help="rosbag2 folder (mcap or sqlite3)")
    parser.add_argument("--topic", default=None,
                        help="image topic to segment (Image or CompressedImage); optional if there is one")
    parser.add_argument("--output", required=True, type=Path, help="new rosbag2 folder (must not exist)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped models/default.onnx)")
    parser.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "torch"))
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="int8: the model's int8 sibling <stem>.int8.onnx (matseg export --int8)")
    parser.add_argument("--materials-file", default=None, help="class map to render with (default: the model's)")
    parser.add_argument("--namespace", default="/matseg", help="prefix of the added topics (default /matseg)")
    parser.add_argument("--outputs", default=",".join(OUTPUTS),
                        help=f"comma-separated subset of {','.join(OUTPUTS)} (default: all)")
    parser.add_argument("--overlay-alpha", type=float, default=0.5)
    parser.add_argument("--min-material-fraction", type=float, default=0.0)
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default=None,
                        help="output storage (default: the input's)")


def _storage_of(bag: Path) -> str:
    return "mcap" if any(bag.glob("*.mcap")) or bag.suffix == ".mcap" else "sqlite3"


class _BagOutputs:
    """Serialises pipeline results into rosbags messages on the added connections."""

    def __init__(self, writer: Any, typestore: Any, namespace: str, outputs: list[str]) -> None:
        self.writer, self.typestore = writer, typestore
        self.Image = typestore.types[IMAGE_TYPE]
        self.String = typestore.types[STRING_TYPE]
        ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.topics = {name: f"{ns}/{SUBTOPICS[name]}" for name in outputs}
        self.connections = {
            name: writer.add_connection(topic, STRING_TYPE if name == MATERIALS else IMAGE_TYPE,
                                        typestore=typestore)
            for name, topic in self.topics.items()}
        self.classes = writer.add_connection(f"{ns}/classes", STRING_TYPE, typestore=typestore)

    def write_classes(self, materials: Any, timestamp: int) -> None:
        text = json.dumps({"classes": materials.entries(), "ignore_index": materials.ignore_index})
        self.writer.write(self.classes, timestamp,
                          self.typestore.serialize_cdr(self.String(data=text), STRING_TYPE))

    def write(self, result: Any, header: Any, timestamp: int, rgb_shape: tuple[int, ...]) -> None:
        for name, array, encoding in ((RAW, result.ids, "mono8"), (COLORED, result.colored, "rgb8"),
                                      (OVERLAY, result.overlay, "rgb8"), (CONFIDENCE, result.confidence_image, "mono8")):
            if name in self.connections:
                f = numpy_to_image(array, encoding, SimpleNamespace())
                msg = self.Image(header=header, height=f.height, width=f.width, encoding=f.encoding,
                                 is_bigendian=f.is_bigendian, step=f.step,
                                 data=np.frombuffer(bytes(f.data), dtype=np.uint8))
                self.writer.write(self.connections[name], timestamp,
                                  self.typestore.serialize_cdr(msg, IMAGE_TYPE))
        if MATERIALS in self.connections:
            doc = materials_document(result.materials, header.stamp.sec, header.stamp.nanosec,
                                     header.frame_id, rgb_shape[0], rgb_shape[1])
            msg = self.String(data=json.dumps(doc, separators=(",", ":")))
            self.writer.write(self.connections[MATERIALS], timestamp,
                              self.typestore.serialize_cdr(msg, STRING_TYPE))


def segment_bag(input_bag: Path, output_bag: Path, pipeline: FramePipeline, topic: str | None = None,
                namespace: str = "/matseg", outputs: list[str] | None = None, storage: str | None = None,
                progress: bool = True) -> dict[str, int]:
    """Write `output_bag`; returns counts (images, segmented, rejected, copied)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore
    from tqdm import tqdm

    outputs = list(outputs or OUTPUTS)
    if output_bag.exists():
        raise FileExistsError(f"{output_bag}: already exists; choose a new output bag")
    typestore = get_typestore(Stores.ROS2_KILTED)
    plugin = StoragePlugin.MCAP if (storage or _storage_of(input_bag)) == "mcap" else StoragePlugin.SQLITE3
    reader = open_bag_reader(input_bag)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_bag.name}.", dir=output_bag.parent or "."))
    counts = {"images": 0, "segmented": 0, "rejected": 0, "copied": 0}
    try:
        image_topic = choose_topic(input_bag, bag_image_topics(reader), topic)
        with Writer(staging / output_bag.name, version=9, storage_plugin=plugin) as writer:
            copies = {}
            for conn in reader.connections:
                kwargs = ({"msgdef": conn.msgdef.data, "rihs01": conn.digest}
                          if conn.msgdef.data and conn.digest.startswith("RIHS01_")
                          else {"typestore": reader.typestore})
                copies[conn.id] = writer.add_connection(
                    conn.topic, conn.msgtype, serialization_format=conn.ext.serialization_format,
                    offered_qos_profiles=conn.ext.offered_qos_profiles, **kwargs)
            added = _BagOutputs(writer, typestore, namespace, outputs)
            clash = set(added.topics.values()) & {c.topic for c in reader.connections}
            if clash:
                raise SourceError(f"{input_bag}: already has topic(s) {sorted(clash)}; pick another --namespace")
            total = sum(c.msgcount for c in reader.connections if c.topic == image_topic)
            classes_written = False
            with tqdm(total=total, unit="img", desc="matseg bag", disable=not progress,
                      file=sys.stderr) as bar:
                for conn, timestamp, raw in reader.messages():
                    writer.write(copies[conn.id], timestamp, raw)
                    counts["copied"] += 1
                    if conn.topic != image_topic:
                        continue
                    if not classes_written:
                        added.write_classes(pipeline.materials, timestamp)
                        classes_written = True
                    counts["images"] += 1
                    bar.update(1)
                    msg = reader.deserialize(raw, conn.msgtype)
                    try:
                        rgb = decode_frame(msg)
                    except ImageDecodeError as exc:
                        counts["rejected"] += 1
                        bar.write(f"matseg bag: skipped image at t={timestamp} ns: {exc}")
                        continue
                    added.write(pipeline.run(rgb, outputs), msg.header, timestamp, rgb.shape)
                    counts["segmented"] += 1
        (staging / output_bag.name).rename(output_bag)
    finally:
        reader.close()
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def run(args: argparse.Namespace) -> int:
    from ..paths import default_model_path
    from ..runtime.engine import EngineError, load_engine

    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    unknown = sorted(set(outputs) - set(OUTPUTS))
    if unknown or not outputs:
        print(f"matseg bag: error: --outputs must name some of {', '.join(OUTPUTS)}, got {args.outputs!r}",
              file=sys.stderr)
        return 2
    model = args.model or default_model_path()
    try:
        engine = load_engine(model, backend=args.backend, device=args.device, precision=args.precision)
        materials = resolve_materials(engine.classes, args.materials_file)
        pipeline = FramePipeline(engine, materials, args.overlay_alpha, args.min_material_fraction)
        counts = segment_bag(args.input, args.output, pipeline, args.topic, args.namespace, outputs,
                             args.storage)
    except (EngineError, SourceError, FileExistsError, ValueError, OSError) as exc:
        print(f"matseg bag: error: {exc}", file=sys.stderr)
        return 1
    print(f"matseg bag: {args.output}: segmented {counts['segmented']} of {counts['images']} images "
          f"({counts['rejected']} rejected), copied {counts['copied']} messages")
    return 0
