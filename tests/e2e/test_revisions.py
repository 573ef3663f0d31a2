"""A report corrected twice and then retracted, end to end on the embedded broker: each correction
reaches the incidents, the alerts and the fragility index, and after each one the live incidents are
the batch definition over the current revisions (docs/reports.md, "Revisions and retractions")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.alert import Alert
from schemas.ceasefire import Registry
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.correlate.revise import founding_id
from services.runtime.settings import Settings
from tests.support.batch import components, current
from tests.support.kafka import eventually, produce, read_topic
from tests.support.reports import encode, report
from tests.support.versions import newest
from tests.support.worker import WorkerProcess, isolated_settings

CEASEFIRE = "in-pk-2025-05-10"
KEY = b"field-office"  # one ingest partition: the revisions reach dedup in the order they were sent
ACCUSER = report(report_id="rv-in", observed_at="2025-05-11T10:00:00Z", location={"lat": 33.77, "lon": 74.09})
ANSWER = report(
    report_id="rv-pk", source="pk.ispr", source_party="PK", accused_party="IN",
    observed_at="2025-05-11T10:12:00Z", location={"lat": 33.82, "lon": 74.09}, casualties={"killed": 0},
)
WAVES: list[list[dict[str, Any]]] = [
    [ACCUSER, ANSWER],
    [{**ACCUSER, "revision": 2, "casualties": {"killed": 5, "injured": 1, "civilian": True}}],
    # moved 180 km to Kathua: out of the exchange, which is left with Pakistan's report alone
    [{**ACCUSER, "revision": 3, "casualties": {"killed": 5, "injured": 1, "civilian": True},
      "location": {"lat": 32.37, "lon": 75.52, "sector": "Kathua"}}],
    [{**ACCUSER, "revision": 4, "status": "retracted", "retraction_reason": "misattributed",
      "casualties": {"killed": 5, "injured": 1, "civilian": True}, "location": {"lat": 32.37, "lon": 75.52, "sector": "Kathua"}}],
]


def accepted(docs: list[dict[str, Any]]) -> list[AcceptedReport]:
    return [AcceptedReport.model_validate({**d, "ingested_at": "2025-05-11T12:00:00Z"}) for d in docs]


async def topic(settings: Settings, role: Role) -> list[bytes]:
    return [r.value for r in await read_topic(settings.bootstrap, settings.topic(role), 0, timeout=10)]


def live(incidents: dict[str, Incident]) -> dict[str, Incident]:
    return {i: r for i, r in incidents.items() if r.status not in ("merged", "withdrawn")}


def settled(settings: Settings, worker: WorkerProcess, accepted_total: int, sent: list[dict[str, Any]]) -> Callable[[], Awaitable[bool]]:
    """Every report accepted, the incidents the current revisions give published (each report at its
    current revision), no lag."""
    now = current(accepted(sent))
    revision = {r.identity: r.revision for r in now}
    expected = {frozenset((*key, revision[key]) for key in group) for group in components(now, _ceasefire())}

    async def condition() -> bool:
        if worker.sum_metric("ceasefire_reports_total", outcome="accepted") < accepted_total:
            return False
        incidents = newest((Incident.model_validate_json(v) for v in await topic(settings, Role.INCIDENTS)), lambda i: i.incident_id)
        found = {frozenset((r.source, r.report_id, r.revision) for r in i.reports) for i in live(incidents).values()}
        return found == expected and worker.sum_metric("ceasefire_consumer_lag_records") == 0

    return condition


def _ceasefire() -> Any:
    from schemas.ceasefire import load_registry

    found = load_registry(Settings().registry_path).get(CEASEFIRE)
    assert found is not None
    return found


@pytest.mark.asyncio
async def test_a_report_revised_twice_then_retracted(broker, workers, tmp_path: Path, registry: Registry) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state", partitions=2, idle_seconds=3)  # the silent partition: idle sooner
    worker = WorkerProcess(settings, ("ingest", "correlate", "alert"), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()
    sent: list[dict[str, Any]] = []
    states: list[tuple[dict[str, Incident], dict[tuple[str, str], Alert], FragilitySnapshot]] = []
    for wave in WAVES:
        sent += wave
        await produce(settings.bootstrap, settings.topic(Role.REPORTS), [(KEY, encode(d)) for d in wave])
        await eventually(settled(settings, worker, len(sent), sent), timeout=90, what=f"the incidents after {len(sent)} reports")
        incidents = newest((Incident.model_validate_json(v) for v in await topic(settings, Role.INCIDENTS)), lambda i: i.incident_id)
        alerts = newest((Alert.model_validate_json(v) for v in await topic(settings, Role.ALERTS)), lambda a: a.fingerprint)
        by_name = {(a.labels["alertname"], a.labels.get("incident", a.labels.get("sector", ""))): a for a in alerts.values()}
        changes = [FragilitySnapshot.model_validate_json(v) for v in await topic(settings, Role.FRAGILITY)]
        states.append((incidents, by_name, [s for s in changes if s.kind == "change" and s.ceasefire_id == CEASEFIRE][-1]))

    exchange = founding_id(CEASEFIRE, "in.army", "rv-in", 1)
    kathua = founding_id(CEASEFIRE, "in.army", "rv-in", 3)
    (first, a1, f1), (second, a2, f2), (third, a3, f3), (fourth, a4, f4) = states

    # 1. the exchange: mutual, nobody killed
    assert [(r.report_id, r.revision) for r in first[exchange].reports] == [("rv-in", 1), ("rv-pk", 1)]
    assert first[exchange].status == "mutual" and first[exchange].casualties.killed_high == 0
    assert a1[("MutualAccusation", exchange)].status == "firing" and ("Casualties", exchange) not in a1
    assert (f1.inputs.killed, f1.inputs.reciprocal_incidents, f1.inputs.incidents_recent) == (0, 1, 1)

    # 2. five killed, corrected: the same incident, one version on; a Casualties alert; the index counts them
    assert second[exchange].version == first[exchange].version + 1
    assert [(r.report_id, r.revision) for r in second[exchange].reports] == [("rv-in", 2), ("rv-pk", 1)]
    assert (second[exchange].casualties.killed_low, second[exchange].casualties.killed_high) == (0, 5)
    assert a2[("Casualties", exchange)].status == "firing"
    assert (f2.inputs.killed, f2.inputs.injured) == (5, 1) and f2.index > f1.index

    # 3. moved to Kathua: the exchange is Pakistan's claim alone, its alerts resolve; the report stands alone
    assert [(r.report_id, r.revision) for r in third[exchange].reports] == [("rv-pk", 1)]
    assert third[exchange].status == "claimed" and third[exchange].casualties.killed_high == 0
    assert [(r.report_id, r.revision) for r in third[kathua].reports] == [("rv-in", 3)]
    assert third[kathua].sectors == ["Kathua"]
    assert a3[("MutualAccusation", exchange)].status == "resolved"
    assert a3[("Casualties", exchange)].status == "resolved"
    assert a3[("Casualties", kathua)].status == "firing"
    assert (f3.inputs.killed, f3.inputs.reciprocal_incidents, f3.inputs.incidents_recent) == (5, 0, 2)
    assert f3.inputs.sectors == ["Kathua"]  # the exchange's reports name no sector

    # 4. retracted: the Kathua incident is withdrawn, its alert resolves, the index forgets the dead
    assert fourth[kathua].status == "withdrawn" and fourth[kathua].version == third[kathua].version + 1
    assert set(live(fourth)) == {exchange}
    assert a4[("Casualties", kathua)].status == "resolved"
    assert (f4.inputs.killed, f4.inputs.injured, f4.inputs.incidents_recent) == (0, 0, 1)
    assert f4.index < f3.index

    # every version of every incident went up one at a time
    records = [Incident.model_validate_json(v) for v in await topic(settings, Role.INCIDENTS)]
    versions: dict[str, list[int]] = {}
    for record in records:
        versions.setdefault(record.incident_id, []).append(record.version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values()), versions
