"""Results of a function over many items, in order, in worker processes, with a progress bar.

Spawned, not forked: a forked child can inherit OpenCV's thread-pool locks held and hang.
Each worker gets its state once through `init(*initargs)` (the same call runs in this
process when `workers` is 1), so what it computes cannot depend on the worker count.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterator, Sequence


def ordered_map(fn: Callable[[Any], Any], items: Sequence[Any], init: Callable[..., None],
                initargs: tuple, workers: int = 1, progress: str | None = None,
                chunksize: int = 4) -> Iterator[Any]:
    """`fn(item)` for every item in order, as they come: a caller that stops early (first
    error) cancels the rest. `progress`: the tqdm description, or None for no bar."""
    if workers <= 1:
        init(*initargs)
        results = map(fn, items)
        pool = None
    else:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init, initargs=initargs)
        results = pool.map(fn, items, chunksize=chunksize)
    try:
        if progress:
            from tqdm import tqdm
            results = tqdm(results, total=len(items), desc=progress, unit="img", dynamic_ncols=True)
        yield from results
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
