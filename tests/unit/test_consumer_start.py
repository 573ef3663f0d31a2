"""Start-up hand-over from table recovery to the streams loses no record (docs/broker.md,
"Worker that never consumes")."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP
from mode.utils.queues import FlowControlQueue

from services.runtime.fixes.consumer import _ResumeKeepsBuffers, _ShortPollConsumer, _ShortPollThread

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


class _Thread:
    def __init__(self) -> None:
        self.to_beginning: list[Any] = []

    async def seek_to_beginning(self, *partitions: Any) -> None:
        self.to_beginning.extend(partitions)


def seeking(committed: dict[TP, int | None], read: dict[TP, int], flowing: bool) -> _ShortPollConsumer:
    """A consumer at recovery's seek: the group's commits, what the drain loop handed over, and whether
    flow was suspended (a rebalance) or never was (start-up)."""
    consumer = object.__new__(_ShortPollConsumer)
    flow = _ResumeKeepsBuffers()
    flow.resume()
    if not flowing:
        flow.suspend()

    async def seek_to_committed() -> dict[TP, int | None]:
        return dict(committed)

    consumer.app = SimpleNamespace(flow_control=flow, tables=SimpleNamespace(changelog_topics={"t-dedup-changelog"}))  # type: ignore[assignment]
    consumer.seek_to_committed = seek_to_committed  # type: ignore[assignment, method-assign]
    consumer._thread = _Thread()  # type: ignore[assignment]
    consumer._read_offset = defaultdict(lambda: None, read)  # type: ignore[assignment]
    consumer._committed_offset = defaultdict(lambda: None)
    return consumer


OTHER = TP("reports", 1)


def test_a_seek_at_start_up_keeps_what_was_handed_over() -> None:
    consumer = seeking({REPORTS: 10, OTHER: None}, {REPORTS: 25, OTHER: 7}, flowing=True)
    asyncio.run(consumer.perform_seek())
    assert consumer._read_offset == {REPORTS: 25, OTHER: 7}  # those records are in the stream buffers
    assert consumer._thread.to_beginning == []
    assert consumer.positioned == {REPORTS, OTHER}


def test_a_partition_with_no_commit_and_nothing_handed_over_is_read_from_its_start() -> None:
    """Records fetched and dropped before the seek are read again, as for a committed partition."""
    consumer = seeking({REPORTS: 10, OTHER: None}, {}, flowing=True)
    asyncio.run(consumer.perform_seek())
    assert consumer._thread.to_beginning == [OTHER]
    assert consumer._read_offset == {REPORTS: 10, OTHER: None}


def test_a_seek_after_a_rebalance_reads_again_from_the_commit_or_the_start() -> None:
    """The buffers are emptied when flow resumes: nothing handed over before may be skipped. A
    changelog partition (never committed: restored from its own offsets) is left where it is."""
    changelog = TP("t-dedup-changelog", 0)
    consumer = seeking({REPORTS: 10, OTHER: None, changelog: None}, {REPORTS: 25, OTHER: 168}, flowing=False)
    asyncio.run(consumer.perform_seek())
    assert consumer._read_offset == {REPORTS: 10, OTHER: None, changelog: None}
    assert consumer._thread.to_beginning == [OTHER]
    assert consumer._committed_offset == {REPORTS: 10}
    assert consumer.positioned == {REPORTS, OTHER, changelog}
