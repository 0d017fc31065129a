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

Ctrl-C in a terminal that runs `ros2 launch` delivers two SIGINTs about 0.1 s apart (the
terminal's, then the one launch forwards). Only the first starts the teardown (as a
KeyboardInterrupt in the main thread, rclpy's behaviour); later ones are logged and
ignored. Before, the second one interrupted `destroy_node` while the worker thread was
inside ONNX Runtime, and Python exited under it: the daemon thread, woken in
finalisation, was unwound through ORT's C++ frames and the process aborted ("terminate
called without an active exception", exit -6); or it arrived during finalisation, when
Python has put SIGINT back to its default action, and killed the process (exit 130).
SIGINT is therefore ignored from the end of the teardown until the process has exited.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable, TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

N = TypeVar("N", bound=Node)


class _FirstInterrupt:
    """A SIGINT handler that raises KeyboardInterrupt once and only logs after that."""

    def __init__(self, prog: str) -> None:
        self.prog, self.count = prog, 0

    def __call__(self, signum: int, frame: object) -> None:
        self.count += 1
        if self.count == 1:
            raise KeyboardInterrupt
        # os.write: the main thread may be inside a print to stderr when this runs
        os.write(2, f"{self.prog}: shutting down already; interrupt {self.count} ignored\n".encode())


def run_node(prog: str, make_node: Callable[[], N], startup_errors: tuple[type[BaseException], ...],
             args: list[str] | None = None, spin: Callable[[N], None] = rclpy.spin,
             on_exit: Callable[[N], None] | None = None) -> int:
    signal.signal(signal.SIGINT, _FirstInterrupt(prog))  # before rclpy.init, which chains to it
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
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Python's finalisation keeps SIG_IGN, not a handler
    return 0
