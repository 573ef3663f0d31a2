"""No stage dies on a record: one the domain raises on is dead-lettered, and the rest of the batch
goes through as if it had never been there (issue 16: one report crash-looped correlation for good).

The stages are real (a Faust app on the memory broker and store, the real correlator and engine);
only the domain is made to raise on one chosen item, after changing its state half-way, as a defect
would, and the outbox records what it would send.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest

from schemas.ceasefire import Ceasefire, load_registry
from schemas.incident import IncidentBatch
from schemas.ingest import AcceptedBatch, Origin, ReportBatch, SourcedReport
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.alert import agent as alert_agent
from services.alert.rules import AlertEngine
from services.correlate import agent as correlate_agent
from services.correlate.state import Correlator
from services.ingest.agent import IngestStage
from services.ingest.dedup import DedupState
from services.ingest.dedup_stage import Books
from services.runtime.context import Context
from services.runtime.settings import Settings
from services.runtime.stage import Item, Outbox, apply_isolated, decode_batch
from services.store import MemoryStore
from tests.support.incidents import at, incident
from tests.support.reports import report

ROOT = Path(__file__).parents[2]
REGISTRY = load_registry(ROOT / "deploy" / "ceasefires.yaml")


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class Event:
    message: Message


class RecordingOutbox(Outbox):
    """An outbox that records what it would send instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, bytes | None]] = []  # (kind, role or error, value)

    async def send(self, role: Role, key: bytes | None, value: bytes, partition: int | None = None,
                   headers: Any = ()) -> None:
        self.sent.append(("send", role, value))

    async def undecodable(self, message: Any, error: BaseException) -> None:
        self.sent.append(("undecodable", type(error).__name__, None))

    async def fault(self, message: Any, error: BaseException, body: bytes) -> None:
        self.sent.append(("fault", type(error).__name__, body))

    async def flush(self) -> None:
        return None

    def dead(self) -> list[tuple[str, Any, bytes | None]]:
        return [entry for entry in self.sent if entry[0] != "send"]


def context() -> tuple[faust.App, Context]:
    app = faust.App(f"quarantine-{id(object())}", broker="memory://", store="memory://")
    return app, Context(settings=Settings(), registry=REGISTRY)


class Defect(RuntimeError):
    pass


class TrippingCorrelator(Correlator):
    """Raises on report `poison` after folding it in: state half-changed, as a real defect leaves it."""

    def add(self, report: AcceptedReport) -> list[Any]:
        changed = super().add(report)
        if report.report_id == "poison":
            raise Defect("a defect")
        return changed


def accepted(n: int, report_id: str, minutes: float) -> AcceptedReport:
    doc = report(report_id=report_id, observed_at=at(minutes / 60).isoformat())
    return AcceptedReport.model_validate({**doc, "ingested_at": at(minutes / 60).isoformat()})


def batches(reports: list[AcceptedReport]) -> list[Event]:
    return [
        Event(Message("accepted", 0, n, AcceptedBatch(reports=reports[n : n + 2]).model_dump_json().encode()))
        for n in range(0, len(reports), 2)
    ]


async def correlate(reports: list[AcceptedReport], build: Any,
                    extra: Iterable[Event] = ()) -> tuple[list[tuple[str, int, str]], RecordingOutbox]:
    app, ctx = context()
    stage = correlate_agent.CorrelateStage(app, ctx)
    stage.states.build = build
    outbox = RecordingOutbox()
    decoded = await decode_batch([*batches(reports), *extra], Role.ACCEPTED_BATCHES, outbox)  # type: ignore[arg-type]
    published, _ = await stage.take(decoded, outbox)
    records = [(i.incident_id, i.version, i.status) for incidents in published.values() for i in incidents]
    return records, outbox


def build_correlator(cls: type[Correlator]) -> Any:
    def build(ceasefire: Ceasefire, store: Any) -> Correlator:
        return cls(ceasefire, store)

    return build


@pytest.mark.asyncio
async def test_correlate_dead_letters_the_report_it_raises_on_and_folds_the_rest() -> None:
    good = [accepted(0, "a", 10), accepted(1, "b", 12), accepted(3, "c", 15), accepted(4, "d", 300)]
    poison = accepted(2, "poison", 11)
    with_poison = [*good[:2], poison, *good[2:]]
    expected, clean = await correlate(good, build_correlator(Correlator))
    got, outbox = await correlate(with_poison, build_correlator(TrippingCorrelator))
    assert clean.dead() == []
    assert got == expected
    assert [(kind, error) for kind, error, _ in outbox.dead()] == [("fault", "Defect")]
    dead = AcceptedReport.model_validate_json(outbox.dead()[0][2] or b"")
    assert dead.identity == poison.identity


@pytest.mark.asyncio
async def test_correlate_dead_letters_an_undecodable_record_with_its_bytes() -> None:
    good = [accepted(0, "a", 10), accepted(1, "b", 12)]
    garbage = Event(Message("accepted", 0, 99, b'{"reports":[{"report_id":1}]}'))
    expected, _ = await correlate(good, build_correlator(Correlator))
    got, outbox = await correlate(good, build_correlator(Correlator), extra=[garbage])
    assert got == expected
    assert [(kind, error) for kind, error, _ in outbox.dead()] == [("undecodable", "ValidationError")]


class TrippingEngine(AlertEngine):
    def observe(self, incident: Any) -> list[Any]:
        alerts = super().observe(incident)
        if incident.incident_id == "poison":
            raise Defect("a defect")
        return alerts


async def alert(items: list[Any], engine: type[AlertEngine]) -> tuple[list[Any], RecordingOutbox]:
    app, ctx = context()
    stage = alert_agent.AlertStage(app, ctx)
    stage.states.build = lambda ceasefire, store: engine(ceasefire, store=store)
    events = []
    for n, (incidents, watermark) in enumerate(items):
        raw = IncidentBatch(watermarks={"in-pk-2025-05-10": watermark}, incidents=incidents).model_dump_json()
        events.append(Event(Message("by-ceasefire", 0, n, raw.encode())))
    outbox = RecordingOutbox()
    decoded = await decode_batch(events, Role.BY_CEASEFIRE, outbox)  # type: ignore[arg-type]
    applied = await apply_isolated(stage._items(decoded), stage._apply, stage.states, outbox)
    alerts = [a for _, raised in applied if raised is not None for a in raised]
    return [(a.fingerprint, a.status, a.labels["alertname"]) for a in alerts], outbox


@pytest.mark.asyncio
async def test_alert_dead_letters_the_version_it_raises_on_and_applies_the_rest() -> None:
    first = [incident("inc-1", 1.0, killed=2), incident("inc-2", 1.1, status="mutual")]
    second = [incident("inc-3", 2.0, status="corroborated", killed=5)]
    poison = incident("poison", 1.5, killed=40)
    clean = [(first, at(1.2)), (second, at(2.1))]
    tainted = [([*first, poison], at(1.2)), (second, at(2.1))]
    expected, _ = await alert(clean, AlertEngine)
    got, outbox = await alert(tainted, TrippingEngine)
    assert expected, "the scenario must fire something"
    assert got == expected
    assert [(kind, error) for kind, error, _ in outbox.dead()] == [("fault", "Defect")]
    assert orjson.loads(outbox.dead()[0][2] or b"")["incident_id"] == "poison"


class FakeStates:
    """Per-ceasefire counters standing in for state: `discard` is a rebuild from what was stored."""

    def __init__(self) -> None:
        self.stored: dict[str, int] = {"a": 0, "b": 0}
        self.live = dict(self.stored)
        self.discarded: list[str] = []

    async def built(self, wanted: Iterable[tuple[str, int]]) -> None:
        for ceasefire_id, _ in wanted:
            self.live.setdefault(ceasefire_id, self.stored.get(ceasefire_id, 0))

    def discard(self, ceasefire_id: str) -> None:
        self.discarded.append(ceasefire_id)
        self.live.pop(ceasefire_id, None)


@pytest.mark.asyncio
async def test_apply_isolated_applies_the_batch_again_without_each_poisoned_item() -> None:
    states, outbox = FakeStates(), RecordingOutbox()
    message = Message("in", 0, 7, b"")
    values = [("a", 1), ("b", 2), ("a", -1), ("b", 3), ("b", -1), ("a", 4)]  # -1: the domain raises
    items = [Item(message, c, v, lambda v=v: str(v).encode()) for c, v in values]

    def apply(item: Item[int]) -> int:
        states.live[item.ceasefire_id] += item.value  # changed before it raises, as a defect would
        if item.value < 0:
            raise Defect("negative")
        return states.live[item.ceasefire_id]

    applied = await apply_isolated(items, apply, states, outbox)
    assert [(item.value, total) for item, total in applied] == [(1, 1), (2, 2), (3, 5), (4, 5)]
    assert states.live == {"a": 5, "b": 5}  # as if the poisoned items had never been there
    assert [body for _, _, body in outbox.dead()] == [b"-1", b"-1"]
    assert sorted(states.discarded) == ["a", "a", "b", "b"]


class SendingOutbox(Outbox):
    """The real `publish`, its sends recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[Role, bytes | None, bytes]] = []

    async def send(self, role: Role, key: bytes | None, value: bytes, partition: int | None = None,
                   headers: Any = ()) -> None:
        self.sent.append((role, key, value))


@pytest.mark.asyncio
async def test_a_model_is_published_on_its_topic_with_its_key_and_nowhere_else() -> None:
    outbox = SendingOutbox()
    published = incident("inc-9", 1.0)
    await outbox.publish(Role.INCIDENTS, published)
    assert outbox.sent == [(Role.INCIDENTS, b"inc-9", published.model_dump_json().encode())]
    with pytest.raises(TypeError):
        await outbox.publish(Role.ALERTS, published)  # an incident is no alert
    with pytest.raises(TypeError):
        await outbox.publish(Role.REPORTS, published)  # the ingest topic carries bytes as sent


# --- no time from nowhere: internal records are bounded like reports (issue 18, item 5) ------------

FAR = "2099-05-10T12:00:00Z"


@pytest.mark.asyncio
async def test_a_watermark_from_the_future_is_dead_lettered_not_obeyed() -> None:
    firing = [(([incident("inc-1", 1.0, killed=2)]), at(1.2))]
    expected, _ = await alert(firing, AlertEngine)
    got, outbox = await alert([*firing, ([], datetime.fromisoformat(FAR))], AlertEngine)
    assert got == expected, "a watermark of 2099 would have resolved every alert"
    assert [(kind, error) for kind, error, _ in outbox.dead()] == [("fault", "AheadOfTime")]


@pytest.mark.asyncio
async def test_a_report_from_the_future_on_the_internal_topic_is_dead_lettered() -> None:
    good = [accepted(0, "a", 10), accepted(1, "b", 12)]
    future = AcceptedReport.model_validate({**good[0].model_dump(), "report_id": "f", "observed_at": FAR})
    expected, _ = await correlate(good, build_correlator(Correlator))
    got, outbox = await correlate([good[0], future, good[1]], build_correlator(Correlator))
    assert got == expected
    assert [(kind, error) for kind, error, _ in outbox.dead()] == [("fault", "AheadOfTime")]


@pytest.mark.asyncio
async def test_dedup_dead_letters_a_report_from_the_future_and_judges_the_rest_as_before() -> None:
    app, ctx = context()
    stage = IngestStage(app, ctx)
    future = AcceptedReport.model_validate({**accepted(0, "f", 10).model_dump(), "observed_at": FAR})
    items = [
        SourcedReport(origin=Origin(partition=0, offset=n), report=report, raw=report.model_dump_json())
        for n, report in enumerate([future, accepted(1, "a", 10), accepted(2, "b", 12)])
    ]
    state = DedupState(MemoryStore(), 14 * 24 * 3600.0)
    outbox, books = RecordingOutbox(), Books()
    await stage.dedup_stage._decide(ReportBatch(reports=items), state, outbox, books)
    dead = [(role, value) for kind, role, value in outbox.sent if role == Role.DEAD_LETTERS]
    assert [value for _, value in dead] == [items[0].raw.encode()]  # the record as it came
    assert books.dead == ["future_observed_at"]
    assert sum(len(records) for records in books.by_ceasefire.values()) == 2  # not judged too old after it


@pytest.mark.asyncio
async def test_reports_later_than_the_allowed_lateness_are_counted() -> None:
    app, ctx = context()
    stage = correlate_agent.CorrelateStage(app, ctx)
    stage.states.build = build_correlator(Correlator)
    outbox = RecordingOutbox()
    # 10 min, then 8 h, then 20 min: the last is 7 h 40 min behind, beyond the 6 h allowed lateness
    reports = [accepted(0, "a", 10), accepted(1, "b", 8 * 60), accepted(2, "c", 20), accepted(3, "d", 7 * 60)]
    decoded = await decode_batch(batches(reports), Role.ACCEPTED_BATCHES, outbox)  # type: ignore[arg-type]
    await stage.take(decoded, outbox)
    late = ctx.prometheus.get_sample_value("ceasefire_late_reports_total", {"ceasefire": "in-pk-2025-05-10"})
    assert late == 1
