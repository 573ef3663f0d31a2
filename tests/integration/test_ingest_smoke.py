"""One small mixed stream through a real worker on the embedded broker."""

from __future__ import annotations

from pathlib import Path

import orjson

from schemas.report import AcceptedReport
from schemas.topics import Role
from tests.support.kafka import eventually, produce, read_topic
from tests.support.reports import encode, report
from tests.support.worker import WorkerProcess, isolated_settings


async def test_reports_end_accepted_duplicate_or_dead_lettered(broker, workers, tmp_path: Path) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state")
    worker = WorkerProcess(settings, ("ingest",), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()
    records = [
        (b"k1", encode(report(report_id="a"))),
        (b"k2", encode(report(report_id="b", source="pk.ispr", source_party="PK", accused_party="IN"))),
        (b"k3", encode(report(report_id="a"))),  # exact repeat
        (b"k4", encode(report(report_id="a-again"))),  # resubmission: same content, new id
        (b"k5", b"{not json"),
    ]
    await produce(settings.bootstrap, settings.topic(Role.REPORTS), records)

    async def all_counted() -> bool:
        return worker.sum_metric("ceasefire_reports_total") >= len(records)

    await eventually(all_counted, what="all records counted")
    accepted = await read_topic(settings.bootstrap, settings.topic(Role.ACCEPTED), 2)
    duplicates = await read_topic(settings.bootstrap, settings.topic(Role.DUPLICATES), 2)
    dead = await read_topic(settings.bootstrap, settings.topic(Role.DEAD_LETTERS), 1)

    assert sorted(AcceptedReport.model_validate_json(r.value).report_id for r in accepted) == ["a", "b"]
    assert {r.key for r in accepted} == {b"in-pk-2025-05-10"}
    assert sorted(orjson.loads(r.value)["rule"] for r in duplicates) == ["exact", "resubmission"]
    assert [(r.key, r.value) for r in dead] == [(b"k5", b"{not json")]
    assert dead[0].headers["ceasefire.reason"] == b"not_json"
    assert dead[0].headers["__connect.errors.topic"] == settings.topic(Role.REPORTS).encode()
