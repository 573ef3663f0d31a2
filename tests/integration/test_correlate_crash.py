"""SIGKILL the correlate worker mid-stream, restart it (local state kept, or wiped), and the final
incidents equal the batch definition: no report missing, none counted twice."""

from __future__ import annotations

import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.ceasefire import Registry
from schemas.incident import Incident
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.codec import encode
from tests.support.batch import components
from tests.support.kafka import eventually, produce, read_topic
from tests.support.worker import WorkerProcess, isolated_settings

CEASEFIRE = "in-pk-2025-05-10"
SOURCES = [("in.army", "IN", "PK"), ("pk.ispr", "PK", "IN"), ("un.unmogip", "NEUTRAL", None), ("media.dawn", "PK", "IN")]


def stream(n: int, seed: int = 7) -> list[AcceptedReport]:
    """Clustered reports along the LoC over ~2 days, in event-time order with small jitter."""
    rng = random.Random(seed)
    start = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
    centres = [(33.77, 74.09), (33.38, 74.31), (34.53, 74.25), (32.56, 75.12)]
    reports = []
    for i in range(n):
        source, party, accused = rng.choice(SOURCES)
        lat, lon = rng.choice(centres)
        when = start + timedelta(minutes=i * 1.5 + rng.uniform(-20, 20))
        reports.append(
            AcceptedReport(
                report_id=f"r{i:05d}",
                source=source,
                source_party=party,
                accused_party=accused,
                ceasefire_id=CEASEFIRE,
                observed_at=when,
                location={"lat": lat + rng.uniform(-0.15, 0.15), "lon": lon + rng.uniform(-0.15, 0.15)},
                violation_type=rng.choice(["small_arms", "mortar", "artillery"]),
                ingested_at=start,
            )
        )
    return reports


def marked(reports: list[AcceptedReport], upstreams: int, last: bool = False) -> bytes:
    """An AcceptedBatch record with every dedup partition's mark at its newest report: the event time
    ingest would announce after these (the reports jitter around it, within the allowed lateness)."""
    at = max(r.observed_at for r in reports).isoformat()
    marks = {str(p): {CEASEFIRE: {"at": at, "idle": last}} for p in range(upstreams)}
    return b'{"reports":[' + b",".join(encode(r) for r in reports) + b'],"marks":' + orjson.dumps(marks) + b"}"


def live_components(incidents: list[Incident]) -> tuple[set[frozenset[tuple[str, str]]], list[tuple[str, str]]]:
    newest: dict[str, Incident] = {}
    for incident in incidents:
        if incident.incident_id not in newest or incident.version >= newest[incident.incident_id].version:
            newest[incident.incident_id] = incident
    live = [i for i in newest.values() if i.status != "merged"]
    members = [(r.source, r.report_id) for i in live for r in i.reports]
    return {frozenset((r.source, r.report_id) for r in i.reports) for i in live}, members


@pytest.mark.parametrize("local_state", ["kept", "wiped"])
async def test_killed_correlator_ends_with_the_batch_incidents(
    broker, workers, registry: Registry, tmp_path: Path, local_state: str
) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state", partitions=2)
    reports = stream(2000)
    await ensure_topics(settings)  # before loading: the broker would auto-create with its own count
    # correlate's input: AcceptedBatch records of 20 reports, keyed so they land where ingest puts them,
    # each with the marks dedup would send after it (the last: every partition idle)
    batches = [marked(reports[i : i + 20], settings.partitions, last=i + 20 >= len(reports)) for i in range(0, len(reports), 20)]
    await produce(settings.bootstrap, settings.topic(Role.ACCEPTED_BATCHES), [(CEASEFIRE.encode(), b) for b in batches])
    worker = WorkerProcess(settings, ("correlate",), tmp_path / "worker-1.log").start()
    workers.append(worker)
    await worker.wait_serving()

    async def partway() -> bool:
        return worker.sum_metric("ceasefire_incident_versions_total") >= 300

    await eventually(partway, timeout=90, what="some incidents published")
    worker.kill()
    if local_state == "wiped":
        shutil.rmtree(settings.data_dir, ignore_errors=True)
    restarted = WorkerProcess(settings, ("correlate",), tmp_path / "worker-2.log").start()
    workers.append(restarted)
    await restarted.wait_serving()

    async def caught_up() -> bool:
        received = restarted.sum_metric("ceasefire_faust_messages_received_total")
        return received > 0 and restarted.sum_metric("ceasefire_consumer_lag_records") == 0 and await _quiet(restarted)

    await eventually(caught_up, timeout=120, what="restarted worker caught up")
    records = await read_topic(settings.bootstrap, settings.topic(Role.INCIDENTS), 1)
    await _keep_for_diagnosis(settings, records, tmp_path)
    found, members = live_components([Incident.model_validate_json(r.value) for r in records])
    twice = {m for m in members if members.count(m) > 1}
    holders = [
        (i.incident_id, i.version, i.status, i.report_count, str(i.first_observed_at), str(i.last_observed_at))
        for i in latest_records(records)
        if any((r.source, r.report_id) in twice for r in i.reports)
    ]
    assert not twice, f"reports in two live incidents: {sorted(twice)[:5]}; held by {holders}"
    expected = components(reports, registry.get(CEASEFIRE))
    missing = {r.identity for r in reports} - set(members)
    if missing:
        every = [Incident.model_validate_json(r.value) for r in records]
        seen_in = sorted(
            (i.incident_id, i.version, i.status, i.merged_into, r.report_id)
            for i in every
            for r in i.reports
            if (r.source, r.report_id) in missing
        )
        first_id = seen_in[0][0] if seen_in else None
        history = [
            (r.offset, i.version, i.status, i.merged_into, sorted(x.report_id for x in i.reports))
            for r in records
            if (i := Incident.model_validate_json(r.value)).incident_id == first_id
        ]
        assert not missing, f"missing {sorted(missing)[:5]}; history of {first_id}: {history}"
    assert found == expected
    contents: dict[tuple[str, int], bytes] = {}
    for record in records:
        incident = Incident.model_validate_json(record.value)
        earlier = contents.setdefault((incident.incident_id, incident.version), record.value)
        assert earlier == record.value, f"{incident.incident_id} v{incident.version} published with two contents"


async def _keep_for_diagnosis(settings, records: list, tmp_path: Path) -> None:  # noqa: ANN001
    """The incident records and the correlation changelog, as JSON lines beside the worker logs:
    what a failure here needs to be replayed broker-free."""
    changelog = await read_topic(settings.bootstrap, f"{settings.app_id}-correlation-changelog")
    for name, rows in (("incidents.jsonl", records), ("correlation-changelog.jsonl", changelog)):
        with (tmp_path / name).open("wb") as out:
            for r in rows:
                out.write(orjson.dumps({"partition": r.partition, "offset": r.offset,
                                        "key": None if r.key is None else r.key.decode(errors="replace"),
                                        "value": None if r.value is None else r.value.decode(errors="replace")}) + b"\n")


def latest_records(records: list) -> list[Incident]:
    newest: dict[str, Incident] = {}
    for record in records:
        incident = Incident.model_validate_json(record.value)
        if incident.incident_id not in newest or incident.version >= newest[incident.incident_id].version:
            newest[incident.incident_id] = incident
    return [i for i in newest.values() if i.status != "merged"]


async def _quiet(worker: WorkerProcess) -> bool:
    """Lag 0 on every partition this worker owns (the gauge exists once partitions are assigned)."""
    try:
        samples = worker.scrape()
    except OSError:
        return False
    return any(name == "ceasefire_consumer_lag_records" for name, _ in samples)
