"""No stage dies on a record: one the domain raises on is dead-lettered, and the rest of the batch
goes through as if it had never been there (issue 16: one report crash-looped correlation for good).

The stages are real (a Faust app on the memory broker and store, the real correlator and engine);
only the domain is made to raise on one chosen item, after changing its state half-way, as a defect
would, and the dead-letter send is replaced by a list.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest

from schemas.ceasefire import Ceasefire, load_registry
from schemas.incident import IncidentBatch, IncidentVersionBatch
from schemas.ingest import AcceptedBatch
from schemas.report import AcceptedReport
from services.alert import agent as alert_agent
from services.alert.rules import AlertEngine
from services.correlate import agent as correlate_agent
from services.correlate.state import Correlator
from services.runtime.context import Context
from services.runtime.settings import Settings
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


class Quarantined(list[tuple[str, str, str, bytes | None]]):
    async def __call__(self, app: Any, ctx: Any, stage: str, message: Any, reason: str, error: BaseException,
                       value: bytes | None = None) -> Any:
        self.append((stage, reason, type(error).__name__, value))
        acked = asyncio.get_running_loop().create_future()
        acked.set_result(None)
        return acked


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


async def correlate(reports: list[AcceptedReport], build: Any, monkeypatch: pytest.MonkeyPatch,
                    extra: Iterable[Event] = ()) -> tuple[list[tuple[str, int, str]], Quarantined]:
    quarantined = Quarantined()
    monkeypatch.setattr(correlate_agent, "quarantine", quarantined)
    app, ctx = context()
    stage = correlate_agent.CorrelateStage(app, ctx)
    stage.states.build = build
    pending: list[Any] = []
    events = [*batches(reports), *extra]
    published, _ = await stage._fold(await stage._reports(events, pending), pending)
    records = [(i.incident_id, i.version, i.status) for incidents in published.values() for i in incidents]
    return records, quarantined


def build_correlator(cls: type[Correlator]) -> Any:
    def build(ceasefire: Ceasefire, persisted: Iterable[tuple[str, str]], stored: Any) -> Correlator:
        return cls(ceasefire, persisted, stored)

    return build


@pytest.mark.asyncio
async def test_correlate_dead_letters_the_report_it_raises_on_and_folds_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    good = [accepted(0, "a", 10), accepted(1, "b", 12), accepted(3, "c", 15), accepted(4, "d", 300)]
    poison = accepted(2, "poison", 11)
    with_poison = [*good[:2], poison, *good[2:]]
    expected, none = await correlate(good, build_correlator(Correlator), monkeypatch)
    got, quarantined = await correlate(with_poison, build_correlator(TrippingCorrelator), monkeypatch)
    assert none == []
    assert got == expected
    assert [(stage, reason, kind) for stage, reason, kind, _ in quarantined] == [("correlate", "fault", "Defect")]
    dead = AcceptedReport.model_validate_json(quarantined[0][3] or b"")
    assert dead.identity == poison.identity


@pytest.mark.asyncio
async def test_correlate_dead_letters_an_undecodable_record_with_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    good = [accepted(0, "a", 10), accepted(1, "b", 12)]
    garbage = Event(Message("accepted", 0, 99, b'{"reports":[{"report_id":1}]}'))
    expected, _ = await correlate(good, build_correlator(Correlator), monkeypatch)
    got, quarantined = await correlate(good, build_correlator(Correlator), monkeypatch, extra=[garbage])
    assert got == expected
    assert [(stage, reason, value) for stage, reason, _, value in quarantined] == [("correlate", "undecodable", None)]


class TrippingEngine(AlertEngine):
    def observe(self, incident: Any) -> list[Any]:
        alerts = super().observe(incident)
        if incident.incident_id == "poison":
            raise Defect("a defect")
        return alerts


async def alert(items: list[Any], engine: type[AlertEngine], monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], Quarantined]:
    quarantined = Quarantined()
    monkeypatch.setattr(alert_agent, "quarantine", quarantined)
    app, ctx = context()
    stage = alert_agent.AlertStage(app, ctx)
    stage.states.build = lambda ceasefire, persisted, _stored: engine(ceasefire, persisted=persisted)
    decoded = []
    for n, (incidents, watermark) in enumerate(items):
        raw = IncidentBatch(watermarks={"in-pk-2025-05-10": watermark}, incidents=incidents).model_dump_json()
        decoded.append((Event(Message("by-ceasefire", 0, n, raw.encode())), IncidentVersionBatch.model_validate_json(raw)))
    alerts, _ = await stage._fold(decoded, [])
    return [(a.fingerprint, a.status, a.labels["alertname"]) for a in alerts], quarantined


@pytest.mark.asyncio
async def test_alert_dead_letters_the_version_it_raises_on_and_applies_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    first = [incident("inc-1", 1.0, killed=2), incident("inc-2", 1.1, status="mutual")]
    second = [incident("inc-3", 2.0, status="corroborated", killed=5)]
    poison = incident("poison", 1.5, killed=40)
    clean = [(first, at(1.2)), (second, at(2.1))]
    tainted = [([*first, poison], at(1.2)), (second, at(2.1))]
    expected, _ = await alert(clean, AlertEngine, monkeypatch)
    got, quarantined = await alert(tainted, TrippingEngine, monkeypatch)
    assert expected, "the scenario must fire something"
    assert got == expected
    assert [(stage, reason) for stage, reason, _, _ in quarantined] == [("alert", "fault")]
    assert orjson.loads(quarantined[0][3] or b"")["incident_id"] == "poison"
