"""The alert stage reads IncidentBatch records as IncidentVersionBatch (reports skipped): the same
summaries, hence the same alerts, and the newest ingestion time the correlate stage wrote beside them."""

from __future__ import annotations

from datetime import timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.incident import IncidentBatch, IncidentVersionBatch
from schemas.report import ViolationType as V
from services.alert.recent import summarise
from services.correlate.agent import incident_batches
from services.runtime.codec import encode
from tests.support.incidents import at, incident

STATUSES = st.sampled_from(["claimed", "mutual", "corroborated"])
VIOLATIONS = st.sampled_from([V.SMALL_ARMS, V.MORTAR, V.ARTILLERY, V.DRONE, V.MISSILE])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(STATUSES, VIOLATIONS, st.integers(0, 5), st.floats(0, 48)), min_size=1, max_size=30))
def test_the_alert_reading_summarises_every_version_as_the_whole_incident_does(rows) -> None:
    incidents = [
        incident(f"inc-{n}", hours, status=status, violation=violation, killed=killed or None, version=n % 3 + 1)
        for n, (status, violation, killed, hours) in enumerate(rows)
    ]
    newest = [max(r.ingested_at for r in i.reports) + timedelta(minutes=n) for n, i in enumerate(incidents)]
    records = incident_batches([encode(i) for i in incidents], {"in-pk-2025-05-10": at(50).isoformat()}, newest)
    whole = [IncidentBatch.model_validate_json(r) for r in records]
    read = [IncidentVersionBatch.model_validate_json(r) for r in records]
    assert [summarise(i, at(60)) for b in read for i in b.incidents] == [
        summarise(i, at(60)) for b in whole for i in b.incidents
    ]
    assert [b.watermarks for b in read] == [b.watermarks for b in whole]
    assert max(b.newest_ingested_at for b in read if b.newest_ingested_at) == max(newest)


def test_each_record_carries_the_newest_ingestion_of_its_own_incidents() -> None:
    big = incident("inc-big")
    encoded = [encode(big).replace(b'"incident_id"', b'"pad":"' + b"x" * 200_000 + b'","incident_id"', 1)] * 6
    newest = [at(n) for n in range(6)]
    records = incident_batches(encoded, {}, newest)
    assert len(records) > 1
    docs = [orjson.loads(r) for r in records]
    start = 0
    for doc in docs:
        count = len(doc["incidents"])
        assert doc["newest_ingested_at"] == max(newest[start : start + count]).isoformat()
        start += count
