"""The worker's garbage-collection policy (services/runtime/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from services.runtime import heap
from services.runtime.metrics import Metrics


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_what_is_alive_and_spaces_collections(restored_gc: None) -> None:
    survivor = [[n] for n in range(1000)]  # long-lived containers, as imported modules and the app are
    heap.settle()
    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold() == (heap.YOUNG, heap.MIDDLE, heap.OLD)
    # no later collection walks them: they are in no generation
    assert not any(obj is survivor for obj in gc.get_objects())


def test_every_collection_is_timed_by_generation() -> None:
    metrics = Metrics.create(CollectorRegistry())
    callback = heap.observe_pauses(metrics.gc_pause)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks.remove(callback)
    samples = {
        s.labels["generation"]: s.value
        for family in metrics.gc_pause.collect()
        for s in family.samples
        if s.name.endswith("_count")
    }
    assert samples["0"] >= 1 and samples["2"] >= 1 and samples["1"] == 0
