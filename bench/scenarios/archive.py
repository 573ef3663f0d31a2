"""The archive's write rate: records of every archived topic, folded and written in batches, on SQLite
and (when Debian's PostgreSQL is installed) PostgreSQL, beside a same-run limit: the same rows
inserted plainly (no upsert, no guard, no JSON of the whole record) into an empty copy of the schema.

`python -m bench.scenarios.archive [--records N]` prints the figures and writes
bench/results/<utc>-archive.json. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine

from schemas.incident import CasualtyRange, Incident, ReportLink
from schemas.ingest import Duplicate, Origin
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.archive import store
from services.archive import tables as t
from services.archive.rows import Record, fold
from services.runtime.settings import PROJECT_ROOT

START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)
BATCH = 2000


def _report(n: int) -> AcceptedReport:
    return AcceptedReport.model_validate({
        "report_id": f"r-{n}", "source": "in.army", "source_party": "IN", "accused_party": "PK",
        "ceasefire_id": "in-pk-2025-05-10", "observed_at": (START + timedelta(minutes=n)).isoformat(),
        "location": {"lat": 33.7 + (n % 50) / 100, "lon": 74.0, "sector": "Poonch", "precision_km": 2},
        "violation_type": "small_arms", "casualties": {"killed": n % 3, "injured": 1},
        "description": "Unprovoked small-arms fire on forward posts.", "ingested_at": START.isoformat(),
    })


def _incident(n: int, version: int) -> Incident:
    when = START + timedelta(minutes=n)
    links = [
        ReportLink(source="in.army", report_id=f"r-{n}-{k}", source_party="IN", accused_party="PK", observed_at=when,
                   violation_type="small_arms", sector="Poonch", lat=33.7, lon=74.0, ingested_at=when)
        for k in range(version)
    ]
    return Incident(
        incident_id=f"inc-{n}", ceasefire_id="in-pk-2025-05-10", version=version, status="claimed",
        first_observed_at=when, last_observed_at=when, sectors=["Poonch"], violation_types=["small_arms"],
        severity=1, reporting_parties=["IN"], accused_parties=["PK"], sources=["in.army"], reports=links,
        report_count=len(links), casualties=CasualtyRange(), ordered_at=when,
    )


def records(count: int) -> list[Record]:
    """The mix of a busy hour: per 10 records 6 accepted reports, 1 duplicate, 3 incident versions."""
    out: list[Record] = []
    n = 0
    while len(out) < count:
        for k in range(6):
            out.append(Record(Role.ACCEPTED, 0, len(out), 0, None, _report(n * 6 + k).model_dump_json().encode()))
        duplicate = Duplicate(source="in.army", report_id=f"d-{n}", rule="exact", duplicate_of=f"d-{n}",
                              origin=Origin(partition=0, offset=n))
        out.append(Record(Role.DUPLICATES, 0, len(out), 0, None, duplicate.model_dump_json().encode()))
        for version in (1, 2, 3):
            out.append(Record(Role.INCIDENTS, 0, len(out), 0, None, _incident(n, version).model_dump_json().encode()))
        n += 1
    return out[:count]


def _batches(items: list[Record]) -> Iterator[list[Record]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]


def ours(engine: Engine, items: list[Record]) -> None:
    for batch in _batches(items):
        store.write(engine, fold(batch))


def limit(engine: Engine, items: list[Record]) -> None:
    """The same number of rows, plain INSERTs of already decoded values: what the database alone costs."""
    for batch in _batches(items):
        rows = [{"origin_partition": 99, "origin_offset": r.offset, "source": "in.army",
                 "report_id": f"x-{r.offset}", "rule": "exact", "duplicate_of": "x", "at": START} for r in batch]
        with engine.begin() as conn:
            conn.execute(t.duplicates.insert(), rows)


def _measure(name: str, url: str, items: list[Record], run: Callable[[Engine, list[Record]], None]) -> dict[str, Any]:
    engine = store.open_engine(url)
    store.migrate(engine)
    started = time.perf_counter()
    run(engine, items)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"run": name, "records": len(items), "seconds": round(seconds, 3), "records_per_s": round(len(items) / seconds)}


@contextmanager
def _postgres() -> Iterator[str | None]:
    sys.path.insert(0, str(PROJECT_ROOT))
    try:
        from tests.support.postgres import postgres_server
    except ImportError:
        yield None
        return
    try:
        with postgres_server() as url:
            yield url
    except RuntimeError:  # not installed
        yield None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=40_000)
    args = parser.parse_args()
    items = records(args.records)
    figures = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("limit", limit), ("archive", ours), ("archive-replay", ours)):
            url = f"sqlite:///{Path(tmp) / ('limit' if name == 'limit' else 'archive')}.sqlite"
            figures.append({"database": "sqlite", **_measure(name, url, items, run)})
    with _postgres() as pg:
        if pg is not None:
            for name, run in (("limit", limit), ("archive", ours), ("archive-replay", ours)):
                figures.append({"database": "postgresql", **_measure(name, pg, items, run)})
    for figure in figures:
        print(f"{figure['database']:>10} {figure['run']:>15}: {figure['records_per_s']:>7} records/s")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = PROJECT_ROOT / "bench" / "results" / f"{stamp}-archive.json"
    out.write_bytes(orjson.dumps({"records": len(items), "batch": BATCH, "figures": figures}, option=orjson.OPT_INDENT_2))
    print(out)


if __name__ == "__main__":
    main()
