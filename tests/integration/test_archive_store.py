"""The archive on both of its databases (SQLite, and a real PostgreSQL on loopback): migrations give
exactly the declared schema, and the same records, written again, in other batches and other orders,
give the same rows."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select

from schemas.topics import Role
from services.archive import queries, store
from services.archive import tables as t
from services.archive.rows import Record, fold
from tests.support.archive import record, sample_records
from tests.support.incidents import incident
from tests.support.postgres import postgres_server


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'archive.sqlite'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = store.open_engine(url)
    store.migrate(engine)
    yield engine
    t.metadata.drop_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    engine.dispose()


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            table.name: sorted(
                (tuple(repr(v) for v in row) for row in conn.execute(select(table)).all()),
            )
            for table in t.metadata.sorted_tables
        }


def write_in_batches(engine: Engine, records: list[Record], seed: int) -> None:
    rng = random.Random(seed)
    order = records[:]
    rng.shuffle(order)
    while order:
        size = rng.randint(1, 6)
        store.write(engine, fold(order[:size]))
        order = order[size:]


def test_migrations_create_exactly_the_declared_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), t.metadata)
    assert differences == []
    store.migrate(engine)  # again: nothing to do


def test_replayed_and_reordered_records_give_the_same_rows(engine: Engine) -> None:
    records = sample_records()
    store.write(engine, fold(records))
    once = dump(engine)
    store.write(engine, fold(records))  # a replay: the same batch again
    assert dump(engine) == once
    for seed in range(3):  # re-delivered in other batches and orders
        write_in_batches(engine, records, seed)
        assert dump(engine) == once


def test_rows_say_what_became_of_each_record(engine: Engine) -> None:
    write_in_batches(engine, sample_records(), seed=7)
    with engine.connect() as conn:
        current = {r.incident_id: (r.version, r.status) for r in conn.execute(select(t.incidents))}
        members = {r.report_id for r in conn.execute(select(t.incident_members))}
        episodes = conn.execute(select(t.alert_episodes.c.starts_at, t.alert_episodes.c.status)).all()
        faults = conn.execute(select(t.faults.c.offset)).scalars().all()
    assert current == {"inc-a": (3, "corroborated"), "inc-b": (2, "merged")}
    assert members == {"inc-a-r0", "inc-a-r1"}  # the corroborated version's; the merged incident holds none
    assert len(episodes) == 3 and sorted(s for _, s in episodes) == ["firing", "firing", "resolved"]
    assert faults == [40]  # the broken record kept, not dropped

    kept = queries.report(engine, "in.army", "r-1")
    assert kept is not None and (kept["outcome"], kept["revision"], kept["repeats"]) == ("accepted", 2, 1)
    gone = queries.report(engine, "in.army", "r-2")
    assert gone is not None and (gone["outcome"], gone["retraction_reason"]) == ("retracted", "filed twice")
    again = queries.report(engine, "in.army", "r-3")
    assert again is not None and (again["outcome"], again["duplicate_of"], again["rule"]) == ("duplicate", "r-1", "resubmission")
    broken = queries.report(engine, "in.army", "r-broken")
    assert broken is not None and broken["outcome"] == "dead_lettered"
    assert broken["rejections"][0]["problems"][0]["path"] == "$.casualties.killed"
    assert queries.report(engine, "in.army", "never") is None

    page = queries.incidents(engine, queries.IncidentQuery(limit=1))
    assert [i["incident_id"] for i in page.items] == ["inc-a"] and page.cursor is None
    assert queries.incidents(engine, queries.IncidentQuery(statuses=["merged"])).items[0]["incident_id"] == "inc-b"
    assert queries.incidents(engine, queries.IncidentQuery(sectors=["poonch"])).items[0]["incident_id"] == "inc-a"
    assert queries.incidents(engine, queries.IncidentQuery(sectors=["Uri"])).items == []
    first = queries.incident(engine, "inc-a", version=1)
    assert first is not None and first["status"] == "claimed"
    series = queries.fragility(engine, "in-pk-2025-05-10", None, None, "grid", 10)
    assert [p["index"] for p in series] == [10, 20, 30]
    firing = queries.alerts(engine, True, None, 10)
    assert sorted(a["labels"]["sector"] for a in firing) == ["Poonch", "Uri"]


def test_pages_follow_one_another_without_gaps_or_repeats(engine: Engine) -> None:
    many = [record(Role.INCIDENTS, n, incident(f"inc-{n:03}", n % 7).model_dump_json().encode()) for n in range(25)]
    store.write(engine, fold(many))
    seen: list[str] = []
    cursor = None
    while True:
        page = queries.incidents(engine, queries.IncidentQuery(limit=4, cursor=cursor))
        seen += [i["incident_id"] for i in page.items]
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"inc-{n:03}" for n in range(25)] and len(seen) == 25
