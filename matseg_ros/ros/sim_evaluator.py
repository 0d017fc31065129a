"""sim_evaluator: score the node's masks against Gazebo's segmentation ground truth, live.

Subscribes `prediction` (segment_node's raw mask, mono8 class ids) and `ground_truth`
(the segmentation camera's labels_map: rgb8 with the id in every channel, or mono8),
pairs them by stamp, and publishes per-frame and running per-class IoU, mIoU and pixel
accuracy on `~/metrics` (std_msgs/String, JSON; the running mIoU under `mIoU`) and
/diagnostics. On shutdown it writes report.json, per_class.csv and frames.csv.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from sensor_msgs.msg import Image
from std_msgs.msg import String

from ..materials import MaterialsError
from ..runtime.encodings import ImageDecodeError, image_to_numpy
from ..sim.evaluation import EvalSession
from .paired_node import PairedImagesNode
from .runner import run_node

NODE_NAME = "sim_evaluator"
SIDES = ("prediction", "ground_truth")   # relative topics, remapped by sim.launch.py


def default_report_dir() -> Path:
    home = Path(os.environ.get("ROS_HOME", Path.home() / ".ros"))
    return home / "matseg_sim_eval" / time.strftime("%Y%m%d-%H%M%S")


class SimEvaluator(PairedImagesNode):
    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        super().__init__(node_name, SIDES, **kwargs)
        self.declare_parameter("report_dir", "")
        self.declare_parameter("write_report", True)
        self.session = EvalSession(self.materials)
        self._metrics_pub = self.create_publisher(String, "~/metrics", 10)
        self.get_logger().info(
            f"evaluating {self.subscriptions_by_side['prediction'].topic_name} against "
            f"{self.subscriptions_by_side['ground_truth'].topic_name} ({self.materials.num_classes} classes)")

    def on_pair(self, stamp: int, prediction: Image, ground_truth: Image) -> None:
        try:
            pred = image_to_numpy(prediction)
            if prediction.encoding not in ("mono8", "8UC1"):
                raise ValueError(f"prediction encoding is {prediction.encoding!r}, expected mono8 class ids")
            gt = image_to_numpy(ground_truth)
            frame = self.session.add(stamp, pred, gt)
        except (ImageDecodeError, ValueError) as exc:
            reason = "decode" if isinstance(exc, ImageDecodeError) else "mismatch"
            self.session.skip(reason)
            self.count(f"skipped_{reason}")
            self.warn(str(exc), f"skipped the pair at stamp {stamp / 1e9:.3f}: {exc}")
            return
        doc = self.session.document(frame, unpaired=dict(self.pairer.unpaired))
        self._metrics_pub.publish(String(data=json.dumps(doc)))

    def status_values(self) -> dict[str, Any]:
        values = super().status_values()
        run = self.session.running_metrics()
        values.update(frames=len(self.session.frames), mIoU=f"{run['mIoU']:.4f}",
                      pixel_accuracy=f"{run['pixel_accuracy']:.4f}")
        return values

    def write_report(self) -> list[Path]:
        """Write the report (once pending messages are counted as unpaired)."""
        if not self.get_parameter("write_report").value:
            return []
        self.pairer.flush()
        folder = Path(os.path.expanduser(self.get_parameter("report_dir").value or str(default_report_dir())))
        topics = {side: sub.topic_name for side, sub in self.subscriptions_by_side.items()}
        return self.session.write_report(folder, unpaired=dict(self.pairer.unpaired),
                                         received=dict(self.received), topics=topics)


def _report(node: SimEvaluator) -> None:
    paths = node.write_report()
    if paths:
        print(f"sim_evaluator: report written to {paths[0].parent}", flush=True)


def main(args: list[str] | None = None) -> int:
    return run_node("sim_evaluator", SimEvaluator, (MaterialsError, OSError, ValueError), args,
                    on_exit=_report)


if __name__ == "__main__":
    sys.exit(main())
