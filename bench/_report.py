"""Pieces shared by the bench scripts' markdown reports (run_all.py skips `_` files)."""
from __future__ import annotations

import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

from matseg_ros.fileio import atomic_write_text


def cpu_name() -> str:
    """The CPU's model name where Linux gives one (platform.processor() is often empty)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"


def machine_lines() -> list[str]:
    """The machine (CPU, cores, torch threads, GPU, torch version) and the command that ran."""
    return [
        f"Machine: {cpu_name()}, {os.cpu_count()} CPU cores "
        f"(torch threads {torch.get_num_threads()}), GPU: {gpu_name()}; torch {torch.__version__}.",
        f"Command: `python bench/{Path(sys.argv[0]).name} {shlex.join(sys.argv[1:])}`",
    ]


def add_devices_argument(parser) -> None:
    parser.add_argument("--devices", nargs="+", choices=("cpu", "cuda"), default=["cpu", "cuda"],
                        help="where to measure (cuda only when torch sees a GPU; default both)")


def chosen_devices(names: list[str]) -> list[torch.device]:
    """The devices of `--devices` that exist here, in the order given."""
    return [torch.device(name) for name in names if name == "cpu" or torch.cuda.is_available()]


def samples_ms(function, repeats: int, warmups: int = 3, sync=lambda: None) -> list[float]:
    """Wall times of `function()` in ms over `repeats` calls, after `warmups` calls;
    `sync` (e.g. torch.cuda.synchronize) runs after each call, inside the timed span."""
    for _ in range(warmups):
        function()
        sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        sync()
        times.append((time.perf_counter() - start) * 1000)
    return times


def median_ms(function, repeats: int, warmups: int = 3, sync=lambda: None) -> float:
    """Median of `samples_ms`."""
    return statistics.median(samples_ms(function, repeats, warmups, sync))


def interleaved_median_ms(functions: dict, repeats: int, warmups: int = 2) -> dict[str, float]:
    """Median wall time in ms of each function, the functions called in turn (round robin) so
    that a load that changes during the run weighs on all of them alike."""
    for function in functions.values():
        for _ in range(warmups):
            function()
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def block_median_ms(functions: dict, repeats: int, pause_s: float = 1.0) -> dict[str, float]:
    """Median wall time in ms of each function timed in a block of its own, after a pause, the
    blocks run forward then backward (half the repeats each). For configurations that leave
    work behind a call, such as ONNX Runtime pool threads spinning, which would slow whichever
    function runs next if they were interleaved."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for order in (list(functions), list(reversed(functions))):
        for name in order:
            time.sleep(pause_s)
            function = functions[name]
            function()  # warm-up
            for _ in range(max(1, repeats // 2)):
                start = time.perf_counter()
                function()
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def emit(lines: list[str], output: str | os.PathLike | None) -> None:
    """Print the report and, when asked, write it atomically to `output`."""
    table = "\n".join(lines) + "\n"
    print(table)
    if output:
        atomic_write_text(output, table)
