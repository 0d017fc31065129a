"""Pair two message streams by header stamp, counting what never finds a partner.

Gazebo renders the RGB and segmentation cameras of one update with the same sim-time
stamp, and segment_node copies the input header to its masks, so a prediction and its
ground truth carry identical stamps. segment_node skips frames when the model is slower
than the camera, and messages may be lost, so both sides keep a short buffer; when a pair
matches, everything older on either side can no longer be paired (streams arrive in
stamp order) and is dropped and counted as unpaired.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def stamp_ns(stamp: Any) -> int:
    """A builtin_interfaces/Time (sec, nanosec) as integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class StampPairer(Generic[T]):
    """Match items of two named sides whose stamps agree within `tolerance_ns`."""

    def __init__(self, sides: tuple[str, str] = ("prediction", "ground_truth"),
                 max_pending: int = 30, tolerance_ns: int = 0) -> None:
        if len(sides) != 2 or sides[0] == sides[1]:
            raise ValueError(f"need two distinct side names, got {sides!r}")
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        if tolerance_ns < 0:
            raise ValueError(f"tolerance_ns must be >= 0, got {tolerance_ns}")
        self.sides = sides
        self.max_pending = max_pending
        self.tolerance_ns = tolerance_ns
        self._pending: dict[str, OrderedDict[int, T]] = {s: OrderedDict() for s in sides}
        self.unpaired = {s: 0 for s in sides}
        self.paired = 0

    def add(self, side: str, stamp: int, item: T) -> tuple[int, T, T] | None:
        """Offer an item; returns (stamp, first side's item, second side's item) on a match."""
        if side not in self._pending:
            raise KeyError(f"unknown side {side!r}; sides are {self.sides}")
        other = self.sides[1] if side == self.sides[0] else self.sides[0]
        match = self._find(self._pending[other], stamp)
        if match is None:
            mine = self._pending[side]
            if stamp in mine:            # a repeated stamp replaces the earlier message
                self.unpaired[side] += 1
                del mine[stamp]
            mine[stamp] = item
            while len(mine) > self.max_pending:
                mine.popitem(last=False)
                self.unpaired[side] += 1
            return None
        partner = self._pending[other].pop(match)
        self._drop_older(min(stamp, match))
        self.paired += 1
        first, second = (item, partner) if side == self.sides[0] else (partner, item)
        return stamp if side == self.sides[0] else match, first, second

    def pending(self, side: str) -> int:
        return len(self._pending[side])

    def flush(self) -> None:
        """Count everything still waiting as unpaired (end of a run)."""
        for side, items in self._pending.items():
            self.unpaired[side] += len(items)
            items.clear()

    def _find(self, items: OrderedDict[int, T], stamp: int) -> int | None:
        if stamp in items:
            return stamp
        if self.tolerance_ns == 0 or not items:
            return None
        best = min(items, key=lambda s: abs(s - stamp))
        return best if abs(best - stamp) <= self.tolerance_ns else None

    def _drop_older(self, stamp: int) -> None:
        for side, items in self._pending.items():
            for old in [s for s in items if s < stamp - self.tolerance_ns]:
                del items[old]
                self.unpaired[side] += 1


class NearestStamp(Generic[T]):
    """The last `size` items of a stream (a depth camera), for the item nearest in stamp to
    another stream's frame (its colour image). Thread-safe: a callback adds, a worker asks,
    waiting up to `wait_s` for a partner that is due but has not arrived yet."""

    def __init__(self, size: int = 10) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._items: deque[tuple[int, T]] = deque(maxlen=size)
        self._cond = threading.Condition()
        self.received = 0

    def add(self, stamp: int, item: T) -> None:
        with self._cond:
            self._items.append((stamp, item))
            self.received += 1
            self._cond.notify_all()

    def nearest(self, stamp: int, tolerance_ns: int, wait_s: float = 0.0) -> T | None:
        """The item whose stamp is nearest `stamp` within `tolerance_ns`, or None. While
        nothing matches and no item newer than `stamp` has come, wait up to `wait_s`."""
        def best() -> tuple[int, T] | None:
            close = [(abs(s - stamp), i) for i, (s, _) in enumerate(self._items) if abs(s - stamp) <= tolerance_ns]
            return self._items[min(close)[1]] if close else None

        def settled() -> bool:
            return best() is not None or any(s > stamp + tolerance_ns for s, _ in self._items)

        with self._cond:
            self._cond.wait_for(settled, wait_s)
            found = best()
            return None if found is None else found[1]

    def newest_stamp(self) -> int | None:
        with self._cond:
            return self._items[-1][0] if self._items else None
