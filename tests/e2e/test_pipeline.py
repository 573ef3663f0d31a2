"""End to end on the embedded broker: reports posted to the ingest topic, incidents and alerts read
from their topics, one worker running every stage."""

from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import pytest

from schemas.alert import Alert
from schemas.incident import Incident
from schemas.topics import Role
from tests.support.kafka import eventually, produce, read_topic
from tests.support.reports import encode, report
from tests.support.versions import newest
from tests.support.worker import WorkerProcess, isolated_settings

KM_PER_DEGREE_LAT = 111.2


def north_of(lat: float, km: float) -> float:
    return lat + km / KM_PER_DEGREE_LAT


def east_of(lat: float, lon: float, km: float) -> float:
    return lon + km / (KM_PER_DEGREE_LAT * math.cos(math.radians(lat)))


def exchange(tag: str, hour: int, lat: float, lon: float, *, observer: bool) -> list[dict]:
    """IN and PK accuse each other 12 minutes and ~6 km apart; optionally a UN observer confirms."""
    base = f"2025-05-11T{hour:02d}"
    docs = [
        report(report_id=f"{tag}-in", observed_at=f"{base}:00:00Z", location={"lat": lat, "lon": lon}),
        report(
            report_id=f"{tag}-pk",
            source="pk.ispr",
            source_party="PK",
            accused_party="IN",
            observed_at=f"{base}:12:00Z",
            location={"lat": north_of(lat, 6.0), "lon": lon},
        ),
    ]
    if observer:
        docs.append(
            report(
                report_id=f"{tag}-un",
                source="un.unmogip",
                source_party="NEUTRAL",
                accused_party=None,
                observed_at=f"{base}:20:00Z",
                location={"lat": north_of(lat, 3.0), "lon": lon},
            )
        )
    return docs


def latest(incidents: list[Incident]) -> dict[str, Incident]:
    return newest(incidents, lambda incident: incident.incident_id)


def holding(newest: dict[str, Incident], report_id: str) -> Incident:
    found = [i for i in newest.values() if i.status != "merged" and any(r.report_id == report_id for r in i.reports)]
    assert len(found) == 1, f"{report_id} is in {len(found)} live incidents"
    return found[0]


def correlated(worker: WorkerProcess, accepted: int):
    """All `accepted` reports are in, and correlation has published for the last of them."""

    async def condition() -> bool:
        counted = worker.sum_metric("ceasefire_reports_total", outcome="accepted") >= accepted
        return counted and worker.sum_metric("ceasefire_faust_messages_received_total") > 0 and await _settled(worker)

    return condition


async def _settled(worker: WorkerProcess) -> bool:
    return worker.sum_metric("ceasefire_consumer_lag_records") == 0


@pytest.fixture
async def pipeline(broker, workers, tmp_path: Path) -> WorkerProcess:
    settings = isolated_settings(broker.url, tmp_path / "state", partitions=2)
    worker = WorkerProcess(settings, ("ingest", "correlate", "alert", "archive"), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()
    return worker


async def test_reports_become_incidents_and_alerts(pipeline: WorkerProcess) -> None:
    s = pipeline.settings
    poonch = (33.77, 74.09)
    rajouri = (33.38, 74.31)
    kathua = (32.37, 75.52)
    docs = []
    docs += exchange("corr", 10, *poonch, observer=True)  # → one corroborated incident
    docs += exchange("mut", 9, *rajouri, observer=False)  # → mutual
    # two incidents 20 minutes apart in Kathua, 14 km apart: not linked until a report between them
    docs.append(report(report_id="k-a", observed_at="2025-05-11T08:00:00Z", location={"lat": kathua[0], "lon": kathua[1]}))
    far = east_of(kathua[0], kathua[1], 14.0)
    docs.append(report(report_id="k-b", observed_at="2025-05-11T08:20:00Z", location={"lat": kathua[0], "lon": far}))
    docs.append(report(report_id="late-1", observed_at="2025-05-11T09:00:00Z", location={"lat": 34.53, "lon": 74.25}))
    docs.append(report(report_id="fill", observed_at="2025-05-11T12:00:00Z", location={"lat": 32.56, "lon": 75.12}))
    # sent once the 12:00 report is in: 3 hours behind the watermark, within the 6 h lateness
    later = []
    later.append(
        report(report_id="late-2", source="un.unmogip", source_party="NEUTRAL", accused_party=None,
               observed_at="2025-05-11T09:10:00Z", location={"lat": 34.55, "lon": 74.26})
    )
    later.append(
        report(report_id="k-bridge", source="media.reuters", source_party="NEUTRAL", accused_party=None,
               observed_at="2025-05-11T08:10:00Z",
               location={"lat": kathua[0], "lon": east_of(kathua[0], kathua[1], 7.0)})
    )
    # The bridge on the partition of the 12:00 report: it comes after newer reports of its partition, so it
    # is placed at 12:00 in event time (ordered_at), after k-a and k-b — which it then merges. On another
    # partition it could be placed between them and join one incident that the other then joins: the
    # same incident in the end, without a merge (docs/event-time.md).
    def key(doc: dict) -> bytes | None:
        return b"kathua-bridge" if doc["report_id"] in ("fill", "k-bridge") else None

    for wave in (docs, later):
        await produce(s.bootstrap, s.topic(Role.REPORTS), [(key(d), encode(d)) for d in wave])
        await eventually(correlated(pipeline, len(docs) + len(later) if wave is later else len(docs)), what="wave")

    async def bridged() -> bool:
        records = await read_topic(s.bootstrap, s.topic(Role.INCIDENTS), 1)
        return any(Incident.model_validate_json(r.value).status == "merged" for r in records)

    await eventually(bridged, what="a merged record")
    assert pipeline.sum_metric("ceasefire_rocksdb_cache_bytes") > 0, "the worker's one RocksDB cache holds its memtables"
    records = await read_topic(s.bootstrap, s.topic(Role.INCIDENTS), 1)
    incidents = [Incident.model_validate_json(r.value) for r in records]
    assert all(r.key == i.incident_id.encode() for r, i in zip(records, incidents, strict=True))
    newest = latest(incidents)

    corroborated = holding(newest, "corr-in")
    assert corroborated.status == "corroborated"
    assert {r.report_id for r in corroborated.reports} == {"corr-in", "corr-pk", "corr-un"}
    mutual = holding(newest, "mut-in")
    assert mutual.status == "mutual"
    assert {r.report_id for r in mutual.reports} == {"mut-in", "mut-pk"}
    second = next(r for r in mutual.reports if r.linked_to is not None)  # either may have come first
    assert second.gap_minutes == pytest.approx(12.0)
    assert second.distance_km == pytest.approx(6.0, abs=0.1)

    late = holding(newest, "late-2")
    assert {r.report_id for r in late.reports} == {"late-1", "late-2"}
    assert not late.late  # 3 h behind the watermark is within the allowed 6 h

    survivor = holding(newest, "k-bridge")
    assert {r.report_id for r in survivor.reports} == {"k-a", "k-b", "k-bridge"}
    merged = [i for i in newest.values() if i.status == "merged"]
    assert [m.merged_into for m in merged] == [survivor.incident_id]

    versions: dict[str, list[int]] = {}
    for incident in incidents:
        versions.setdefault(incident.incident_id, []).append(incident.version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values()), versions

    alerts = [Alert.model_validate_json(r.value) for r in await read_topic(s.bootstrap, s.topic(Role.ALERTS), 1)]
    names = {a.labels["alertname"] for a in alerts}
    assert {"CeasefireViolation", "MutualAccusation"} <= names

    url = f"http://{s.web_host}:{s.web_port}/incidents?ceasefire=in-pk-2025-05-10&status=mutual"

    async def archived() -> bool:  # the read API answers from the archive, which follows the topics
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return [i["incident_id"] for i in json.loads(response.read())["incidents"]] == [mutual.incident_id]

    await eventually(archived, timeout=60, what="the mutual incident in the archive")
    one = f"http://{s.web_host}:{s.web_port}/incidents/{corroborated.incident_id}"
    with urllib.request.urlopen(one, timeout=5) as response:  # noqa: S310 - loopback
        assert json.loads(response.read())["status"] == "corroborated"
