"""Newest-item buffers between camera callbacks and one worker thread: one slot per camera,
served round-robin, so a slow model never builds a queue and every camera gets its turn.

A camera callback must never wait for the model: the producer overwrites its camera's
slot, the consumer takes the newest item of the next camera that has one, and every item
overwritten before anyone took it is counted as dropped (per camera).
"""
from __future__ import annotations

import threading
from typing import Generic, Hashable, Iterable, TypeVar

T = TypeVar("T")


class LatestSlots(Generic[T]):
    """Thread-safe single slots, one per key: `put` never blocks; `take` waits for an item
    and serves the keys in turn, starting after the key it served last."""

    def __init__(self, keys: Iterable[Hashable] = ("",)) -> None:
        self.keys = tuple(keys)
        if not self.keys or len(set(self.keys)) != len(self.keys):
            raise ValueError(f"need distinct keys, got {self.keys!r}")
        self._cond = threading.Condition()
        self._items: dict[Hashable, T] = {}
        self._next = 0  # index of the key to look at first
        self._closed = False
        self.put_count = {key: 0 for key in self.keys}
        self.dropped = {key: 0 for key in self.keys}
        self.taken = {key: 0 for key in self.keys}

    def put(self, item: T, key: Hashable = "") -> None:
        """Store `item` as `key`'s newest, replacing (and counting as dropped) one nobody took."""
        if key not in self.put_count:
            raise KeyError(f"unknown key {key!r}; the keys are {self.keys!r}")
        with self._cond:
            if key in self._items:
                self.dropped[key] += 1
            self._items[key] = item
            self.put_count[key] += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> tuple[Hashable, T] | None:
        """(key, newest item) of the next key in turn that has one; None on timeout or
        once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return None
            if not self._items:
                return None
            n = len(self.keys)
            step = next(k for k in range(n) if self.keys[(self._next + k) % n] in self._items)
            key = self.keys[(self._next + step) % n]
            self._next = (self._next + step + 1) % n
            self.taken[key] += 1
            return key, self._items.pop(key)

    def take_all(self, timeout: float | None = None) -> list[tuple[Hashable, T]]:
        """Every waiting (key, item) at once, in key order (one batch for all cameras)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self._closed, timeout):
                return []
            batch = [(key, self._items.pop(key)) for key in self.keys if key in self._items]
            for key, _ in batch:
                self.taken[key] += 1
            return batch

    def close(self) -> None:
        """Wake every waiting `take`; later takes return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
