"""A ceasefire that goes quiet: event time runs on with the wall clock from its last report (never to
"now": the reports are a year old), so the fragility series goes on and alerts can resolve; each advance
is a record on correlate's input topic (docs/event-time.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from schemas.fragility import FragilitySnapshot
from schemas.ingest import AcceptedBatch
from schemas.topics import Role
from services.correlate.ordering import QUIET
from tests.support.kafka import eventually, produce, read_topic
from tests.support.reports import CEASEFIRE, at, encode, report
from tests.support.worker import WorkerProcess, isolated_settings

pytestmark = pytest.mark.asyncio


async def test_event_time_runs_on_from_the_last_report_when_a_ceasefire_goes_quiet(broker, workers, tmp_path: Path) -> None:
    # a 3-second series and a 1-second idle rule, so that the test takes seconds, not hours
    settings = isolated_settings(broker.url, tmp_path / "state", partitions=2, idle_seconds=1, fragility_step_minutes=0.05)
    worker = WorkerProcess(settings, ("ingest", "correlate", "alert"), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()
    docs = [report(report_id=f"q-{n}", observed_at=at(n)) for n in range(3)]
    await produce(settings.bootstrap, settings.topic(Role.REPORTS), [(b"in.army", encode(d)) for d in docs])
    last = datetime.fromisoformat(at(2))

    async def series() -> list[datetime]:
        records = await read_topic(settings.bootstrap, settings.topic(Role.FRAGILITY))
        return [s.as_of for r in records if (s := FragilitySnapshot.model_validate_json(r.value)).kind == "grid"]

    async def ran_on() -> bool:
        return any(as_of >= last + timedelta(seconds=12) for as_of in await series())

    await eventually(ran_on, timeout=90, what="event time past the last report")
    points = await series()
    assert max(points) < last + timedelta(minutes=5)  # the wall clock since the last report, not "now"
    assert points == sorted(points) and len(set(points)) == len(points)
    marks = [
        AcceptedBatch.model_validate_json(r.value).marks
        for r in await read_topic(settings.bootstrap, settings.topic(Role.ACCEPTED_BATCHES))
    ]
    quiet = [m[QUIET][CEASEFIRE].at for m in marks if QUIET in m]
    assert quiet and quiet == sorted(quiet) and all(a is not None and a > last for a in quiet)
