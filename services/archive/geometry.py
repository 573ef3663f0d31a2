"""PostGIS, when the database has it: a point geometry beside each report's and incident's lat/lon.

Optional by design (docs/archive.md "PostGIS"): the schema the migrations declare is the same on SQLite
and PostgreSQL, and an operator who wants spatial queries runs `CREATE EXTENSION postgis` in the
archive's database (it needs a superuser; the archive's own user need not be one). Each start of the
archive then adds what is missing. The columns are generated from lat/lon by PostgreSQL itself, so the
writer never names them and a replay cannot put them out of step.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

TABLES = ("reports", "incidents")
COLUMN = "geom"  # not in tables.metadata: migrations/env.py leaves it out of autogenerate's comparison
SRID = 4326  # WGS 84: the lat/lon of the report schema
POSTGIS_TABLES = {"spatial_ref_sys"}  # the extension's own, in the same schema


def has_postgis(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")).first() is not None


def add_geometry(conn: Connection) -> bool:
    """Add the generated point columns and their GiST indexes where PostGIS is installed; idempotent.
    Returns whether the archive has them."""
    if not has_postgis(conn):
        return False
    point = (
        f"CASE WHEN lat IS NULL OR lon IS NULL THEN NULL "
        f"ELSE ST_SetSRID(ST_MakePoint(lon, lat), {SRID}) END"
    )
    for table in TABLES:
        conn.execute(text(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {COLUMN} geometry(Point, {SRID}) "
            f"GENERATED ALWAYS AS ({point}) STORED"
        ))
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_{table}_{COLUMN} ON {table} USING gist ({COLUMN})"))
    return True


def declared(_object: Any, name: str | None, kind: str, reflected: bool, _compare_to: Any) -> bool:
    """Alembic's include_object: compare the declared schema only, never this module's columns and
    indexes or PostGIS's own table (autogenerate would otherwise drop them)."""
    if not reflected:
        return True
    if kind == "table":
        return name not in POSTGIS_TABLES
    return not (kind in {"column", "index"} and (name == COLUMN or name in {f"ix_{table}_{COLUMN}" for table in TABLES}))
