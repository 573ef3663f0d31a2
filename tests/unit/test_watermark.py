"""Low watermarks (services/watermark.py), the correlator's event order (services/correlate/ordering.py)
and ingest's progress kept across a restart: the pieces docs/event-time.md describes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import faust

from schemas.ceasefire import load_registry
from schemas.ingest import Mark
from schemas.report import AcceptedReport
from services.correlate.ordering import QUIET, EventOrder
from services.ingest.agent import IngestStage
from services.runtime.context import Context
from services.runtime.settings import PROJECT_ROOT, Settings
from services.store import MemoryStore
from services.watermark import PartitionProgress, later, low_watermark
from tests.support.reports import report

REGISTRY = load_registry(PROJECT_ROOT / "deploy" / "ceasefires.yaml")
T0 = datetime(2025, 5, 10, 12, tzinfo=UTC)


def t(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def accepted(report_id: str, minutes: float, ordered: float | None = None) -> AcceptedReport:
    doc = report(report_id=report_id, observed_at=t(minutes).isoformat())
    return AcceptedReport.model_validate(
        {**doc, "ingested_at": T0.isoformat(), "ordered_at": None if ordered is None else t(ordered).isoformat()}
    )


def test_the_low_watermark_is_the_slowest_partition_that_is_not_idle() -> None:
    marks = {"0": Mark(at=t(30)), "1": Mark(at=t(10)), "2": Mark(at=t(50), idle=True)}
    assert low_watermark(marks, 3) == Mark(at=t(10))
    assert low_watermark({**marks, "1": Mark(at=t(10), idle=True)}, 3) == Mark(at=t(30))


def test_a_partition_not_heard_from_holds_time_and_all_idle_means_nothing_in_flight() -> None:
    assert low_watermark({"0": Mark(at=t(30))}, 2) is None
    assert low_watermark({"0": Mark(at=t(30)), "1": Mark()}, 2) is None  # heard, but no report yet
    assert low_watermark({"0": Mark(at=t(30), idle=True), "1": Mark(idle=True)}, 2) == Mark(at=t(30), idle=True)


def test_a_watermark_never_goes_back() -> None:
    assert later(Mark(at=t(5)), Mark(at=t(10))) == Mark(at=t(10))
    assert later(Mark(at=t(15), idle=True), Mark(at=t(10))) == Mark(at=t(15), idle=True)
    assert later(None, Mark(at=t(10))) is None  # no time yet: the caller keeps what it had


def test_a_report_after_newer_ones_of_its_partition_is_ordered_at_their_time() -> None:
    progress = PartitionProgress(["c"], idle_seconds=10)
    assert progress.order(0, "c", t(10), now=0) == t(10)
    assert progress.order(0, "c", t(30), now=1) == t(30)
    assert progress.order(0, "c", t(20), now=2) == t(30)  # 10 minutes late in its partition
    assert progress.order(1, "c", t(20), now=2) == t(20)  # another partition has its own progress


def test_idle_needs_both_caught_up_and_silence() -> None:
    progress = PartitionProgress(["c", "d"], idle_seconds=10)
    progress.order(0, "c", t(10), now=0)
    assert progress.marks(0, caught_up=False, now=100) == {"c": Mark(at=t(10)), "d": Mark()}
    assert progress.marks(0, caught_up=True, now=5) == {"c": Mark(at=t(10)), "d": Mark()}
    assert progress.marks(0, caught_up=True, now=10) == {"c": Mark(at=t(10), idle=True), "d": Mark(idle=True)}


def test_reports_are_released_in_event_time_order_once_every_partition_has_passed_them() -> None:
    order = EventOrder(upstreams=2)
    for r in (accepted("b", 20), accepted("a", 10), accepted("c", 5, ordered=25)):
        order.hold(r)
    order.mark("0", Mark(at=t(40)))
    assert order.release() == []  # partition 1 has said nothing
    order.mark("1", Mark(at=t(20)))
    assert [r.report_id for r in order.release()] == ["a"]  # strictly before the watermark
    order.mark("1", Mark(at=t(30)))
    assert [r.report_id for r in order.release()] == ["b", "c"]  # c is placed at its ordered_at


def test_the_held_reports_and_marks_survive_a_rebuild() -> None:
    order = EventOrder(upstreams=1)
    order.hold(accepted("a", 10))
    order.hold(accepted("b", 20))
    order.mark("0", Mark(at=t(15)))
    assert [r.report_id for r in order.release()] == ["a"]
    stored = MemoryStore()
    stored.apply(order.take_changes())
    rebuilt = EventOrder(upstreams=1, persisted=stored.items())
    assert len(rebuilt) == 1 and rebuilt.low == Mark(at=t(15))
    rebuilt.mark("0", Mark(at=t(25)))
    assert [r.report_id for r in rebuilt.release()] == ["b"]


def test_a_quiet_mark_moves_time_only_when_every_partition_is_idle() -> None:
    order = EventOrder(upstreams=2)
    order.mark("0", Mark(at=t(10)))
    order.mark("1", Mark(at=t(20), idle=True))
    order.mark(QUIET, Mark(at=t(90), idle=True))
    assert order.low == Mark(at=t(10))  # partition 0 still speaks
    order.mark("0", Mark(at=t(10), idle=True))
    assert order.low == Mark(at=t(90), idle=True)
    assert order.quiet


def test_ingest_resumes_a_partition_with_the_progress_it_had_where_it_re_reads() -> None:
    app = faust.App(f"progress-{id(object())}", broker="memory://", store="memory://")
    stage = IngestStage(app, Context(settings=Settings(), registry=REGISTRY))
    cid = REGISTRY.ceasefires[0].id
    stage._resume(0, 0, clock=0)
    stage.progress.order(0, cid, t(10), now=0)
    stage.read_to[0] = 5
    stage._keep_progress({0})
    stage.progress.order(0, cid, t(40), now=1)
    stage.read_to[0] = 9
    stage._keep_progress({0})
    stage.forget_partitions({0})
    stage._resume(0, 5, clock=2)  # re-read from the end of the first batch
    assert stage.progress.order(0, cid, t(20), now=2) == t(20)  # the 40 came later: not yet seen
    stage.forget_partitions({0})
    stage._resume(0, 9, clock=3)
    assert stage.progress.order(0, cid, t(20), now=3) == t(40)


def test_a_batch_of_held_reports_is_one_entry_deleted_when_its_last_report_goes() -> None:
    order = EventOrder(upstreams=1)
    order.hold(accepted("a", 10))
    order.hold(accepted("b", 20))
    written = order.take_changes()
    assert len([k for k in written if k.startswith("order\x1fpending")]) == 1
    order.mark("0", Mark(at=t(15)))
    assert [r.report_id for r in order.release()] == ["a"]
    assert not [k for k in order.take_changes() if k.startswith("order\x1fpending")]  # b is still in it
    order.mark("0", Mark(at=t(25)))
    assert [r.report_id for r in order.release()] == ["b"]
    assert [v for k, v in order.take_changes().items() if k.startswith("order\x1fpending")] == [None]


def test_stored_reports_come_back_whole_in_order_and_only_once() -> None:
    order = EventOrder(upstreams=1)
    for n in range(600):  # three stored entries
        order.hold(accepted(f"r{n:03d}", n))
    stored = MemoryStore()
    stored.apply(order.take_changes())
    order.mark("0", Mark(at=t(100)))
    first = order.release()
    assert [r.report_id for r in first] == [f"r{n:03d}" for n in range(100)]
    assert first[0] == accepted("r000", 0)
    stored.apply(order.take_changes())
    rebuilt = EventOrder(upstreams=1, persisted=stored.items())
    assert len(rebuilt) == 600  # the first entry is not all released: its reports come back too
    rebuilt.mark("0", Mark(at=t(700), idle=True))
    again = [r.report_id for r in rebuilt.release()]
    assert again == [f"r{n:03d}" for n in range(600)]
    order.mark("0", Mark(at=t(700), idle=True))
    assert [r.report_id for r in order.release()] == [f"r{n:03d}" for n in range(100, 600)]
    assert len(order) == 0 and not order._models and not order._chunk_of  # nothing kept after release
