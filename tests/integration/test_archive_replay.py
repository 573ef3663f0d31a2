"""The archive on the real broker: the demo scenario through every stage lands in it with the books
balanced, and the same topics read again — into the same database, and into a new one — give the
same rows (the writes are idempotent; a crash between a write and its commit only replays)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from schemas.topics import Role
from services.archive import store
from services.archive import tables as t
from services.archive.rows import ARCHIVED
from services.console.live import DEMO_SCENARIO
from services.runtime.broker import free_port
from services.runtime.settings import Settings
from tests.integration.test_archive_store import dump
from tests.support.kafka import eventually, produce, read_topic
from tests.support.worker import WorkerProcess, isolated_settings


async def archived_total(s: Settings) -> int:
    """Records on the archived topics, counted by reading them (the embedded broker's ListOffsets is
    not exact: docs/broker.md, T1)."""
    return sum([len(await read_topic(s.bootstrap, s.topic(role))) for role in ARCHIVED])


async def caught_up(worker: WorkerProcess, s: Settings) -> None:
    """Until the archive has written every record of its topics, twice in a row (the stages are done)."""
    seen: list[int] = []

    async def done() -> bool:
        total = await archived_total(s)
        try:
            written = worker.sum_metric("ceasefire_archive_records_total")
        except OSError:
            return False
        seen.append(total)
        return written == total and len(seen) > 1 and seen[-2] == total

    await eventually(done, timeout=150, interval=1.0, what="the archive caught up with its topics")


def rows(url: str) -> dict[str, Any]:
    engine = store.open_engine(url)
    try:
        return dump(engine)
    finally:
        engine.dispose()


async def test_the_demo_archived_with_books_balanced_and_replays_give_the_same_rows(broker, workers, tmp_path: Path) -> None:
    s = isolated_settings(broker.url, tmp_path / "state", idle_seconds=2)
    pipeline = WorkerProcess(s, ("ingest", "correlate", "alert"), tmp_path / "pipeline.log").start()
    workers.append(pipeline)
    lines = [line for line in DEMO_SCENARIO.read_bytes().splitlines() if line.strip()]
    await produce(s.bootstrap, s.topic(Role.REPORTS), [(None, line) for line in lines])
    await eventually(lambda: _ruled(pipeline, len(lines)), timeout=120, what="every report ruled on")
    await eventually(lambda: _settled(pipeline), timeout=120, what="no report held for event time")
    pipeline.stop()  # the topics stop growing (the alert stage repeats the index every few seconds)

    worker = WorkerProcess(s, ("archive",), tmp_path / "archive.log").start()
    workers.append(worker)
    await caught_up(worker, s)
    worker.stop()

    engine = store.open_engine(s.archive_address)
    with engine.connect() as conn:
        count = {table.name: conn.execute(select(func.count()).select_from(table)).scalar() for table in t.metadata.sorted_tables}
    engine.dispose()
    assert count["report_revisions"] + count["duplicates"] + count["dead_letters"] == len(lines)  # nothing lost
    assert (count["report_revisions"], count["duplicates"], count["dead_letters"]) == (356, 56, 15)
    assert count["faults"] == 0 and count["incidents"] > 0 and count["alert_episodes"] > 0 and count["fragility"] > 0
    first = rows(s.archive_address)

    again = s.model_copy(update={"app_id": s.app_id + "-again", "web_port": free_port()})  # a new group: every record again
    replay = WorkerProcess(again, ("archive",), tmp_path / "again.log").start()
    workers.append(replay)
    await caught_up(replay, again)
    replay.stop()
    assert rows(s.archive_address) == first

    fresh = again.model_copy(update={"app_id": s.app_id + "-fresh", "data_dir": tmp_path / "fresh"})
    rebuilt = WorkerProcess(fresh, ("archive",), tmp_path / "fresh.log").start()
    workers.append(rebuilt)
    await caught_up(rebuilt, fresh)
    rebuilt.stop()
    assert rows(fresh.archive_address) == first


async def _ruled(worker: WorkerProcess, count: int) -> bool:
    try:
        return worker.sum_metric("ceasefire_reports_total") >= count
    except OSError:
        return False


async def _settled(worker: WorkerProcess) -> bool:
    try:
        return worker.sum_metric("ceasefire_held_reports") == 0 and worker.sum_metric("ceasefire_incident_versions_total") > 0
    except OSError:
        return False
