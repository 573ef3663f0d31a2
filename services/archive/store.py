"""The archive's database: open (with migrations), tie to one Kafka cluster, and write a batch of rows
in one transaction, idempotently (docs/archive.md).

Every write is an upsert on the topic's key, guarded by the record's own order (a revision, a version):
a replayed or re-delivered record, or an older one arriving after a newer, leaves the row as it was.
Synchronous SQLAlchemy Core: the worker calls it in a thread, one batch at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, delete, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from services.archive import tables as t
from services.archive.geometry import add_geometry
from services.archive.rows import Rows, incident_row, member_rows, record_time

log = logging.getLogger("ceasefire.archive")
MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x63656173  # PostgreSQL advisory lock: one archive worker migrates at a time
CHUNK = 500  # keys in one IN (...) list


class ArchiveMismatch(RuntimeError):
    """The archive holds the history of another Kafka cluster."""


def open_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL (readers beside the writer) and a wait instead of 'locked'."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (Alembic), holding a lock so concurrent workers wait;
    with PostGIS in the database, add the geometry columns (geometry.py)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if add_geometry(conn):
            log.info("PostGIS: reports and incidents have a point geometry (column %s)", "geom")


def bind_cluster(engine: Engine, cluster_id: str) -> None:
    """Tie the archive to the Kafka cluster it records; refuse another one's history."""
    with engine.begin() as conn:
        stored = conn.execute(select(t.meta.c.value).where(t.meta.c.name == "cluster_id")).scalar()
        if stored is None:
            conn.execute(t.meta.insert().values(name="cluster_id", value=cluster_id))
        elif stored != cluster_id:
            raise ArchiveMismatch(f"the archive records Kafka cluster {stored}; the broker is cluster {cluster_id}")


def set_aside(url: str, cluster_id: str) -> Path | None:
    """An embedded archive (SQLite file) written against another cluster is moved aside, not reused:
    the embedded broker is memory-only, so each of its runs is a new cluster. Returns the new name."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    if not path.exists():
        return None
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            has_meta = engine.dialect.has_table(conn, t.meta.name)
            stored = conn.execute(select(t.meta.c.value).where(t.meta.c.name == "cluster_id")).scalar() if has_meta else None
    finally:
        engine.dispose()
    if stored is None or stored == cluster_id:
        return None
    aside = path.with_name(f"{path.stem}.{stored}{path.suffix}")
    for suffix in ("", "-wal", "-shm"):
        moved = Path(str(path) + suffix)
        if moved.exists():
            moved.rename(Path(str(aside) + suffix))
    return aside


def _insert(conn: Connection, table: Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _upsert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], guard: str | None = None) -> None:
    """Insert or update on the primary key; with `guard`, update only a row whose guard column is not
    above the incoming one (so an older record never overwrites a newer)."""
    if not rows:
        return
    keys = [c.name for c in table.primary_key.columns]
    stmt = _insert(conn, table)
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    where = table.c[guard] <= stmt.excluded[guard] if guard else None
    conn.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates, where=where), list(rows))


def _add_new(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows whose key is not there yet: their content is fixed by their key."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _stored_versions(conn: Connection, table: Table, key: str, ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(ids):
        found.update(conn.execute(select(table.c[key], table.c.version).where(table.c[key].in_(chunk))).all())
    return found


def write(engine: Engine, rows: Rows) -> None:
    """One batch, one transaction."""
    with engine.begin() as conn:
        _upsert(conn, t.reports, list(rows.reports.values()), guard="revision")
        _add_new(conn, t.report_revisions, rows.revisions)
        _add_new(conn, t.duplicates, rows.duplicates)
        _add_new(conn, t.dead_letters, rows.dead_letters)
        _write_incidents(conn, rows)
        _add_new(conn, t.incident_versions, rows.versions)
        _upsert(conn, t.alerts, list(rows.alerts.values()), guard="version")
        _upsert(conn, t.alert_episodes, list(rows.episodes.values()), guard="version")
        _upsert(conn, t.fragility, list(rows.fragility.values()))
        _add_new(conn, t.faults, [
            {"topic_role": str(record.role), "partition": record.partition, "offset": record.offset,
             "error": error, "value": record.value, "at": record_time(record)}
            for record, error in rows.faults
        ])


def _write_incidents(conn: Connection, rows: Rows) -> None:
    """The current version of each incident, and its members, move only forward."""
    if not rows.incidents:
        return
    stored = _stored_versions(conn, t.incidents, "incident_id", sorted(rows.incidents))
    newer = [i for i in rows.incidents.values() if stored.get(i.incident_id, 0) < i.version]
    if not newer:
        return
    _upsert(conn, t.incidents, [incident_row(i) for i in newer], guard="version")
    ids = [i.incident_id for i in newer]
    for chunk in _chunks(ids):
        conn.execute(delete(t.incident_members).where(t.incident_members.c.incident_id.in_(chunk)))
    members = [row for incident in newer for row in member_rows(incident)]
    if members:
        conn.execute(t.incident_members.insert(), members)
