"""The `matseg` command: one entry point, subcommands implemented in their own modules.

Each module named in COMMANDS defines `add_arguments(parser)` and `run(args) -> int`.
Modules are imported only for the subcommand that runs, so `matseg --help` stays fast
and works without torch; a subcommand whose module is not installed is not listed.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("matseg_ros.training.train", "train a model from a (original-format) JSON config"),
    "eval": ("matseg_ros.training.evaluate", "per-class IoU, mIoU, pixel accuracy, confusion matrix"),
    "infer": ("matseg_ros.training.infer", "segment a folder of images (single/multiscale/sliding)"),
    "export": ("matseg_ros.training.export", "export a checkpoint to ONNX with class-map metadata"),
    "data": ("matseg_ros.data.cli", "dataset tools: augment, synthetic-mask, scrape, validate, split, synth"),
    "bag": ("matseg_ros.io.bag", "segment every image of a rosbag2 file into a new bag"),
    "demo": ("matseg_ros.demo.run", "run the node on the shipped model over a sample sequence"),
}


def available_commands() -> dict[str, tuple[str, str]]:
    out = {}
    for name, (module, help_text) in COMMANDS.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            out[name] = (module, help_text)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="matseg", description="Material semantic segmentation: data, training, evaluation, export.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"matseg_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in available_commands().items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = available_commands()
    if not argv or argv[0] not in commands:
        build_parser().parse_args(argv)  # prints help or the usage error and exits
        return 2
    name, rest = argv[0], argv[1:]
    module_name, help_text = commands[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"matseg {name}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print(f"matseg {name}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
