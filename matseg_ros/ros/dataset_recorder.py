"""dataset_recorder: grow an HRIM2021 training set by driving the simulated robot around.

Subscribes `image` (the RGB camera) and `ground_truth` (the segmentation camera's
labels_map), pairs them by stamp and, when enough sim time has passed and the view has
changed, writes JPEGImages/<id>.jpg, SegmentationClass/<id>.png (palette) and the
ImageSets/Segmentation split files under `output_dir` (appending to a dataset there).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from sensor_msgs.msg import Image

from ..materials import MaterialsError
from ..runtime.encodings import ImageDecodeError, image_to_numpy, image_to_rgb
from ..sim.evaluation import labels_to_ids
from ..sim.recording import ChangeGate, DatasetWriter
from .paired_node import PairedImagesNode
from .runner import run_node

NODE_NAME = "dataset_recorder"
SIDES = ("image", "ground_truth")   # relative topics, remapped by sim.launch.py
SPLIT_FLUSH_EVERY = 10   # samples between split-file rewrites (and always on shutdown)


class DatasetRecorder(PairedImagesNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, SIDES, **kwargs)
        params = {"output_dir": "sim_dataset", "prefix": "", "min_interval": 1.0, "min_change": 0.04,
                  "min_label_change": 0.02, "val_every": 10, "block_size": 10,
                  "jpeg_quality": 95}
        p = {name: self.declare_parameter(name, default).value for name, default in params.items()}
        self.gate = ChangeGate(float(p["min_interval"]), float(p["min_change"]), float(p["min_label_change"]))
        prefix = p["prefix"] or time.strftime("sim_%Y%m%d_%H%M%S_")
        self.writer = DatasetWriter(os.path.expanduser(p["output_dir"]), self.materials, prefix,
                                    int(p["val_every"]), int(p["jpeg_quality"]), int(p["block_size"]))
        self.get_logger().info(
            f"recording {self.subscriptions_by_side['image'].topic_name} + "
            f"{self.subscriptions_by_side['ground_truth'].topic_name} into {self.writer.root} "
            f"(ids {prefix}NNNNNN, every >= {self.gate.min_interval:g} s of changed view)")

    def on_pair(self, stamp: int, image: Image, ground_truth: Image) -> None:
        try:
            rgb = image_to_rgb(image)
            ids, unknown = labels_to_ids(image_to_numpy(ground_truth), self.materials)
            if ids.shape != rgb.shape[:2]:
                raise ValueError(f"ground truth is {ids.shape[1]}x{ids.shape[0]}, image "
                                 f"{rgb.shape[1]}x{rgb.shape[0]}: the cameras must match")
        except (ImageDecodeError, ValueError) as exc:
            self.count("skipped_bad_pair")
            self.warn(str(exc), f"skipped the pair at stamp {stamp / 1e9:.3f}: {exc}")
            return
        keep, reason = self.gate.check(stamp / 1e9, rgb, ids)
        self.count(f"gate_{reason}")
        if not keep:
            return
        try:
            sample_id = self.writer.write(rgb, ids)
        except (OSError, ValueError) as exc:
            self.count("write_failed")
            self.warn("write failed", f"could not write a sample to {self.writer.root}: {exc}")
            return
        if unknown:
            self.count("samples_with_unknown_labels")
        if self.writer.written % SPLIT_FLUSH_EVERY == 0:
            self.writer.flush()
        self.get_logger().info(f"saved {sample_id} ({self.writer.written} this run)",
                               throttle_duration_sec=5.0)

    def status_values(self) -> dict[str, Any]:
        values = super().status_values()
        values.update(saved=self.writer.written, output_dir=str(self.writer.root))
        return values


def _finish(node: DatasetRecorder) -> None:
    node.writer.flush()
    print(f"dataset_recorder: {node.writer.written} samples written to {node.writer.root}", flush=True)


def main(args: list[str] | None = None) -> int:
    return run_node("dataset_recorder", DatasetRecorder, (MaterialsError, OSError, ValueError), args,
                    on_exit=_finish)


if __name__ == "__main__":
    sys.exit(main())
