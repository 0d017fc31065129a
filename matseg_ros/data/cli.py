"""`matseg data TOOL ...`: the dataset tools, one module each.

Every tool module defines `add_arguments(parser)` and `run(args) -> int` and imports its
heavy dependencies (albumentations, requests, matplotlib) only when it runs.
"""
from __future__ import annotations

import argparse
import importlib

TOOLS: dict[str, tuple[str, str]] = {
    "augment": ("matseg_ros.data.augment", "augmented copies of image/mask pairs (albumentations)"),
    "synthetic-mask": ("matseg_ros.data.synthetic_mask", "masks for single-material photos on white"),
    "scrape": ("matseg_ros.data.scrape", "download material photos listed on web pages"),
    "validate": ("matseg_ros.data.validate", "check a dataset: pairs, colours, classes, splits, leakage"),
    "import": ("matseg_ros.data.importing.command",
               "COCO / LabelMe / VOC boxes / class folders -> this layout, with a class mapping"),
    "split": ("matseg_ros.data.split", "write train/val/test lists stratified by class presence"),
    "synth": ("matseg_ros.data.synth", "generate procedural indoor scenes with exact masks"),
    "composite": ("matseg_ros.data.composite",
                  "multi-material images: objects of one split pasted on backgrounds, and mosaics"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="tool", metavar="TOOL", required=True)
    for name, (module, help_text) in TOOLS.items():
        tool = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(tool)
        tool.set_defaults(tool_module=module)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(args.tool_module).run(args) or 0)
