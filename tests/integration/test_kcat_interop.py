"""Our topics from a client that is not ours: kcat (librdkafka) posts reports to the ingest topic and
reads the accepted and dead-letter topics that a real worker wrote.

Proves the contract is plain Kafka: keys and values are bytes any client can write and read,
and dead letters keep the original bytes with headers a generic tool can show.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.report import AcceptedReport
from schemas.topics import Role
from tests.support.kafka import eventually
from tests.support.kcat import Kcat, kcat_with_wheel_librdkafka
from tests.support.reports import CEASEFIRE, at, encode, report
from tests.support.worker import WorkerProcess, isolated_settings

# (source, source_party, accused_party): the Indian army, Pakistan's ISPR and the UN observers.
SOURCES = (("in.army", "IN", "PK"), ("pk.ispr", "PK", "IN"), ("un.unmogip", "NEUTRAL", "PK"))
GARBAGE = {
    b"{not json": "not_json",
    b"\xff\xfe not UTF-8 at all": "not_utf8",
    b'{"report_id": "half-a-report"}': "schema",
}


@pytest.fixture
def kcat(tmp_path: Path) -> Kcat:
    return kcat_with_wheel_librdkafka(tmp_path / "kcat")


def valid_reports(n: int) -> list[bytes]:
    """`n` reports that are all distinct, so dedup accepts every one: own id, own minute, own text."""
    lines = []
    for i in range(n):
        source, party, accused = SOURCES[i % len(SOURCES)]
        doc = report(
            report_id=f"kcat-{i:02d}",
            source=source,
            source_party=party,
            accused_party=accused,
            observed_at=at(i * 7),
            description=f"Exchange of fire number {i}, reported through kcat.",
        )
        lines.append(encode(doc))
    return lines


def source_of(line: bytes) -> bytes:
    """The key a reporter would choose: its source, or a fixed word when the line is not a report."""
    try:
        return orjson.loads(line)["source"].encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return b"unparsed"


def test_the_kcat_in_use_links_a_librdkafka_that_reads_our_broker(kcat: Kcat) -> None:
    """Debian's own librdkafka 2.0.2 mis-parses the broker's ApiVersions answer: a fall-back fails here."""
    assert kcat.librdkafka_version() >= (2, 2, 0)


async def test_kcat_posts_reports_and_reads_accepted_and_dead_letters(
    broker, workers, kcat: Kcat, tmp_path: Path
) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state")
    worker = WorkerProcess(settings, ("ingest",), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()
    valid = valid_reports(20)
    lines = valid[:10] + list(GARBAGE) + valid[10:]

    kcat.produce(settings.bootstrap, settings.topic(Role.REPORTS), lines, key_of=source_of)

    async def all_counted() -> bool:
        return worker.sum_metric("ceasefire_reports_total") >= len(lines)

    await eventually(all_counted, what="every posted line counted by the worker")
    accepted = kcat.consume(settings.bootstrap, settings.topic(Role.ACCEPTED), len(valid))
    dead = kcat.consume(settings.bootstrap, settings.topic(Role.DEAD_LETTERS), len(GARBAGE))

    reports = [AcceptedReport.model_validate_json(r.value or b"") for r in accepted]
    assert sorted(r.report_id for r in reports) == sorted(orjson.loads(line)["report_id"] for line in valid)
    assert {r.key for r in accepted} == {CEASEFIRE.encode()}
    assert sorted((r.value, r.key) for r in dead) == sorted((line, b"unparsed") for line in GARBAGE)
    assert {r.value: r.header("ceasefire.reason") for r in dead} == {
        line: reason.encode() for line, reason in GARBAGE.items()
    }
    assert {r.header("__connect.errors.topic") for r in dead} == {settings.topic(Role.REPORTS).encode()}
