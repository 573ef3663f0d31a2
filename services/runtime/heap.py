"""Garbage collection for a worker that holds large, long-lived state on one event loop.

CPython's cyclic collector stops the whole process while it runs. A full (generation 2) collection
walks every tracked container: the ~10^5 objects left from importing Faust, aiokafka and pydantic,
and every report, incident and table entry the stages keep. With the default thresholds it runs
whenever the old generation grew by a quarter, which a worker taking in reports does every few
seconds: at a paced 500 reports/s (one worker, every stage) 4 full collections in 10 s, 90–140 ms
each, every hop stalled meanwhile; that was most of the p99 of send → incident (docs/performance.md).

So, once per process, when the worker is built and before it starts:
- everything alive is collected once and then frozen (`gc.freeze`): imported modules, classes and
  the app live as long as the process, so no collection needs to walk them again;
- the young generation collects every `YOUNG` net allocations instead of 700 (fewer, still short
  pauses: ~5 ms), and a full collection is considered only after `OLD` middle-generation collections
  (~20M net allocations, tens of minutes at 500 reports/s) instead of ~70,000 allocations.

Nothing is leaked by this: objects freed by reference counting (nearly all of the state: reports,
incidents, table entries hold no cycles) are freed at once as before; only cyclic garbage that
survives two young collections waits longer for the rarer full collection. Faust still runs full
collections of its own when partitions are revoked.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import Histogram

YOUNG = 10_000  # net container allocations between young collections (CPython's default: 700)
MIDDLE = 20  # young collections per middle-generation collection (default: 10)
OLD = 100  # middle collections before a full one is considered (default: 10)


def settle() -> None:
    """Collect once, freeze what is alive, and space collections out (see the module docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)


def observe_pauses(histogram: Histogram) -> Callable[[str, dict[str, Any]], None]:
    """Time every collection into `histogram` (label: generation), for the desk that asks why a
    report took long: a pause stops every stage of the process at once.

    The series are looked up here, not in the callback: a collection can start inside any
    allocation, also one made under the metric's own (non-reentrant) lock while it adds a series."""
    series = [histogram.labels(str(generation)) for generation in range(3)]
    started = [0.0]

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            series[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(on_collection)
    return on_collection  # for `gc.callbacks.remove` by a caller that is not a whole process
