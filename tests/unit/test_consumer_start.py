"""Start-up hand-over from table recovery to the streams loses no record (docs/broker.md,
"Worker that never consumes")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from mode.utils.queues import FlowControlQueue

from services.runtime.fixes.consumer import _ResumeKeepsBuffers, _ShortPollThread

REPORTS = TP("reports", 0)


def test_resume_while_flowing_keeps_buffered_records() -> None:
    flow = _ResumeKeepsBuffers()
    buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    buffer.put_nowait("delivered, not yet processed")
    flow.resume()  # end of recovery: flow was never suspended
    assert buffer.qsize() == 1


def test_resume_after_suspension_empties_buffers() -> None:
    flow = _ResumeKeepsBuffers()
    buffer: FlowControlQueue[str] = FlowControlQueue(flow_control=flow, clear_on_resume=True)
    flow.resume()
    buffer.put_nowait("from the previous generation")
    flow.suspend()  # rebalance
    flow.resume()
    assert buffer.qsize() == 0


@pytest.fixture
def drains(monkeypatch: pytest.MonkeyPatch) -> list[set[TP] | None]:
    """What the consumer thread asks aiokafka for, in place of a real drain."""
    seen: list[set[TP] | None] = []

    async def fake_fetch(self: Any, consumer: Any, active: set[TP] | None, **kwargs: Any) -> dict[TP, list[Any]]:
        seen.append(active)
        return {REPORTS: ["record"]}

    monkeypatch.setattr(AIOKafkaConsumerThread, "_fetch_records", fake_fetch)
    return seen


def test_empty_active_set_drains_nothing(drains: list[set[TP] | None]) -> None:
    thread = object.__new__(_ShortPollThread)
    records = asyncio.run(thread._fetch_records(None, set(), timeout=1.0))  # type: ignore[arg-type]
    assert records == {}
    assert drains == []  # aiokafka would have read an empty set as "every partition"


def test_drain_uses_a_copy_of_the_live_set(drains: list[set[TP] | None]) -> None:
    thread = object.__new__(_ShortPollThread)
    live = {REPORTS}
    asyncio.run(thread._fetch_records(None, live, timeout=1.0))  # type: ignore[arg-type]
    live.clear()  # the main thread pauses while the drain is under way
    assert drains == [{REPORTS}]
