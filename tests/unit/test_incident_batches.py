"""Internal correlate → alert records stay under the request size, and carry event time last."""

from __future__ import annotations

import orjson

from services.correlate.agent import incident_batches
from services.runtime.codec import MAX_BATCH_BYTES


def test_many_incidents_are_split_and_the_watermarks_ride_on_the_last_record() -> None:
    incident = orjson.dumps({"incident_id": "inc-1", "pad": "x" * 10_000})
    records = incident_batches([incident] * 200, {"cf": "2025-05-10T12:00:00+00:00"})
    assert len(records) > 1
    assert all(len(r) <= MAX_BATCH_BYTES + len(incident) + 200 for r in records)
    docs = [orjson.loads(r) for r in records]
    assert sum(len(d["incidents"]) for d in docs) == 200
    assert [bool(d["watermarks"]) for d in docs] == [False] * (len(docs) - 1) + [True]


def test_no_incidents_still_carries_the_watermarks() -> None:
    [record] = incident_batches([], {"cf": "2025-05-10T12:00:00+00:00"})
    assert orjson.loads(record) == {"watermarks": {"cf": "2025-05-10T12:00:00+00:00"}, "incidents": []}
