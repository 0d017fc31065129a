"""The one `main()` shape every node shares: init, build, spin, clean exit.

A start-up error prints one line and exits 1; Ctrl-C and an external shutdown exit 0
after `on_exit` (reports, split files) and `destroy_node` have run.

A start-up error exits with `os._exit`, skipping the DDS teardown. The error comes
within a second of the participant's creation, while other participants in the domain
are still discovering it and querying its types. Deleting a Fast DDS 3.2 participant
at that moment races with its TypeLookup request thread and can crash the process
(SIGSEGV in `WriterHistory::create_change`, about 1 start-up error in 100 with a busy
domain). No output has been published or written yet, so skipping it loses nothing.
`run_node` is therefore meant for console entry points, not for calling in-process.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

N = TypeVar("N", bound=Node)


def run_node(prog: str, make_node: Callable[[], N], startup_errors: tuple[type[BaseException], ...],
             args: list[str] | None = None, spin: Callable[[N], None] = rclpy.spin,
             on_exit: Callable[[N], None] | None = None) -> int:
    try:
        with rclpy.init(args=args):
            try:
                node = make_node()
            except startup_errors as exc:
                print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
                sys.stdout.flush()
                os._exit(1)
            try:
                spin(node)
            except (KeyboardInterrupt, ExternalShutdownException):
                pass
            finally:
                if on_exit is not None:
                    on_exit(node)
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
