"""Run-time statistics for a streaming node: rates, latency percentiles, throttled warnings.

ROS-free so the node, the offline bag tool, the demo and the benchmarks measure the same
way. Windows are bounded, so a node running for days keeps constant memory.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

import numpy as np

Clock = Callable[[], float]


class RateMeter:
    """Events per second over the last `window_s` seconds (bounded by `max_events`)."""

    def __init__(self, window_s: float = 5.0, max_events: int = 4096,
                 clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self._clock = clock
        self._times: deque[float] = deque(maxlen=max_events)
        self._lock = threading.Lock()
        self._last: float | None = None
        self.count = 0

    def tick(self) -> None:
        with self._lock:
            self._last = self._clock()
            self._times.append(self._last)
            self.count += 1

    def since_last(self) -> float | None:
        """Seconds since the latest event, however long ago; None before the first."""
        last = self._last
        return None if last is None else self._clock() - last

    def rate(self) -> float:
        """Events/s in the window; 0 with fewer than two events in it."""
        now = self._clock()
        with self._lock:
            while self._times and now - self._times[0] > self.window_s:
                self._times.popleft()
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], self._times[-1] - self._times[0])
            return (len(self._times) - 1) / span if span > 0 else 0.0


class LatencyWindow:
    """The last `size` latencies (seconds), summarised as percentiles."""

    def __init__(self, size: int = 512) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self._values.append(seconds)

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) in seconds; NaN while empty."""
        with self._lock:
            if not self._values:
                return float("nan")
            return float(np.percentile(np.fromiter(self._values, float), q))


class WarningThrottle:
    """Lets one message per key through every `period_s`, counting what it held back.

    rclpy's own `throttle_duration_sec` throttles per call site, which would hide a
    second, different problem behind the first; this throttles per kind of problem.
    """

    def __init__(self, period_s: float = 5.0, clock: Clock = time.monotonic) -> None:
        self.period_s = period_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> tuple[bool, int]:
        """(emit now?, how many of this key were suppressed since the last emit)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False, 0
            self._last[key] = now
            return True, self._suppressed.pop(key, 0)
