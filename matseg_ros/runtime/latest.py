"""A one-slot "newest item" buffer between a producer callback and a worker thread.

A camera callback must never wait for the model and a slow model must never build a
queue: the producer overwrites the slot, the consumer takes whatever is newest, and
every item that was overwritten before anyone took it is counted as dropped.
"""
from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Thread-safe single slot: `put` never blocks, `take` waits for the newest item."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: T) -> None:
        """Store `item`, replacing (and counting as dropped) one nobody took yet."""
        with self._cond:
            if self._has_item:
                self.dropped += 1
            self._item = item
            self._has_item = True
            self.put_count += 1
            self._cond.notify()

    def take(self, timeout: float | None = None) -> T | None:
        """The newest item, or None on timeout or once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout):
                return None
            if not self._has_item:
                return None
            item, self._item, self._has_item = self._item, None, False
            return item

    def close(self) -> None:
        """Wake every waiting `take`; later takes return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
