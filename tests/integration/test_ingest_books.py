"""The books balance: 10,000 mixed records through real workers, each ends in exactly one right place.

accepted + duplicate + dead-lettered == records read, by the workers' own counters and by counting
the three output topics; and each output holds exactly what the stream's expectations say.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from schemas.report import AcceptedReport
from schemas.topics import Role
from tests.support.kafka import eventually, produce
from tests.support.mixed import Ledger, connect_origin, group_stable, mixed_stream, rebalance_done, replica
from tests.support.worker import WorkerProcess, isolated_settings

RECORDS = 10_000


async def all_settled(running: list[WorkerProcess]) -> bool:
    return all(rebalance_done(w) for w in running)


def total(workers: list[WorkerProcess], **labels: str) -> float:
    return sum(w.sum_metric("ceasefire_reports_total", **labels) for w in workers)


@pytest.mark.parametrize("worker_count", [1, 2], ids=["1-worker", "2-workers"])
async def test_every_record_is_booked_exactly_once(broker, workers, tmp_path: Path, worker_count: int) -> None:
    stream = mixed_stream(RECORDS)
    settings = isolated_settings(broker.url, tmp_path / "state-0")
    running = [
        WorkerProcess(replica(settings, tmp_path / f"state-{i}"), ("ingest",), tmp_path / f"worker-{i}.log").start()
        for i in range(worker_count)
    ]
    workers.extend(running)
    for worker in running:
        await worker.wait_serving()
    # Produce only once the group is settled and every worker has finished its side of the assignment:
    # a rebalance mid-stream may legitimately process a record twice (at-least-once), and this test
    # counts exactly. (Records that arrive before Faust finishes its first assignment can be skipped
    # for good: see test_ingest_crash.py::test_records_arriving_during_first_assignment_are_not_lost.)
    await eventually(lambda: group_stable(settings, worker_count), timeout=60, what="group stable")
    await eventually(lambda: all_settled(running), timeout=60, what="assignment finished")

    await produce(settings.bootstrap, settings.topic(Role.REPORTS), stream.pairs)

    async def all_counted() -> bool:
        return total(running) >= RECORDS

    await eventually(all_counted, timeout=90, what=f"{RECORDS} records counted")
    books = await Ledger.read(settings, RECORDS)

    # The counters: nothing counted twice, nothing missed, the right split and the right reasons.
    assert len(books.inputs) == RECORDS
    assert total(running) == RECORDS
    assert total(running, outcome="accepted") == stream.count("accepted")
    assert total(running, outcome="duplicate") == stream.count("duplicate")
    assert total(running, outcome="dead_lettered") == stream.count("dead_lettered")
    for reason, count in stream.reasons().items():
        assert total(running, outcome="dead_lettered", reason=reason) == count, reason
    for rule in ("exact", "resubmission"):
        expected = sum(n for (_, _, r), n in stream.duplicates().items() if r == rule)
        assert sum(w.sum_metric("ceasefire_duplicates_total", rule=rule) for w in running) == expected, rule

    # The topics: the same split.
    assert len(books.accepted) + len(books.duplicates) + len(books.dead) == RECORDS
    assert books.booked_twice() == []
    assert len(books.accepted_origins() | books.duplicate_origins() | books.dead_origins()) == RECORDS

    # Accepted: each unique valid report exactly once, keyed by its ceasefire.
    assert books.accepted_identities() == Counter(stream.accepted)
    assert {r.key for r in books.accepted} == {b"in-pk-2025-05-10"}
    sectors = {AcceptedReport.model_validate_json(r.value).location.sector for r in books.accepted}  # type: ignore[arg-type]
    assert "Rajouri" in sectors and "rajouri" not in sectors  # the registry's spelling

    # Duplicates: exactly the repeats, by the right rule, pointing at the repeat's input record.
    docs = books.duplicate_docs()
    assert Counter((d["source"], d["report_id"], d["rule"]) for d in docs) == stream.duplicates()
    assert {r.key for r in books.duplicates} <= {s.encode() for s, _ in stream.accepted}
    for doc in docs:
        origin = books.inputs[(doc["origin"]["partition"], doc["origin"]["offset"])]
        sent = orjson.loads(origin.value)  # type: ignore[arg-type]
        assert (sent["source"], sent["report_id"]) == (doc["source"], doc["report_id"])
        assert doc["duplicate_of"] != doc["report_id"] or doc["rule"] == "exact"

    # Dead letters: the bad ones, bytes unchanged, each pointing at its own input record.
    reports_topic = settings.topic(Role.REPORTS).encode()
    dead = Counter((r.key, r.value, r.headers["ceasefire.reason"].decode()) for r in books.dead)
    assert dead == stream.dead_letters()
    assert len(books.dead_origins()) == len(books.dead)
    for record in books.dead:
        assert record.headers["__connect.errors.topic"] == reports_topic
        original = books.inputs[connect_origin(record)]
        assert (original.key, original.value) == (record.key, record.value)
        reason = record.headers["ceasefire.reason"].decode()
        assert record.headers["__connect.errors.exception.class.name"] == f"ceasefire.{reason}".encode()
        assert orjson.loads(record.headers["ceasefire.errors"])[0]["reason"]
