"""PostGIS in the archive (docs/archive.md "PostGIS"), on a real PostgreSQL with Debian's PostGIS: no
geometry without the extension; once an operator creates it, the next start adds a point per report
and incident that matches its lat/lon, the declared schema still compares equal, and the page's spatial
query finds exactly the incidents within its radius."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from schemas.incident import Centre
from schemas.topics import Role
from services.archive import store
from services.archive import tables as t
from services.archive.geometry import declared
from services.archive.rows import fold
from tests.support.archive import record, sample_records
from tests.support.incidents import incident
from tests.support.postgres import postgres_server

DOC = Path(__file__).resolve().parents[2] / "docs" / "archive.md"
EXAMPLE = re.compile(r"<!-- example: postgis -->\n```sql\n(?P<sql>.*?)```", re.DOTALL)
KRISHNA_GHATI = (33.77, 74.09)  # the page's centre (lat, lon) and radius
RADIUS_M = 25_000
# SQLAlchemy reflects PostGIS's types as unknown (the archive never reads them through SQLAlchemy's types).
pytestmark = pytest.mark.filterwarnings("ignore:Did not recognize type 'geometry'")


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine on the mean Earth radius: within 0.5 % of PostGIS's spheroid, enough away from the edge."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


@pytest.fixture
def engine() -> Iterator[Engine]:
    with postgres_server() as url:
        engine = store.open_engine(url)
        yield engine
        engine.dispose()


def geometry_columns(engine: Engine) -> set[str]:
    found = inspect(engine)
    return {table for table in ("reports", "incidents") if "geom" in {c["name"] for c in found.get_columns(table)}}


def placed(incident_id: str, hours: float, lat: float, lon: float) -> bytes:
    located = incident(incident_id, hours).model_copy(update={"location": Centre(lat=lat, lon=lon, radius_km=2)})
    return located.model_dump_json().encode()


# Offsets from Krishna Ghati chosen well inside or well outside 25 km (0.1° of latitude is ~11 km).
PLACES = {"inc-near": (33.80, 74.12), "inc-edge-in": (33.95, 74.09), "inc-edge-out": (34.05, 74.09),
          "inc-far": (34.40, 74.60), "inc-pk-side": (33.65, 73.98)}


def test_geometry_follows_the_extension_and_matches_lat_lon(engine: Engine) -> None:
    store.migrate(engine)
    assert geometry_columns(engine) == set()  # no PostGIS, no geometry: the declared schema only

    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION postgis"))  # what an operator does (the tests' user is a superuser)
    store.migrate(engine)
    store.migrate(engine)  # every start: nothing more to add
    assert geometry_columns(engine) == {"reports", "incidents"}
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": declared})
        assert compare_metadata(context, t.metadata) == []

    records = sample_records()
    records += [record(Role.INCIDENTS, 100 + n, placed(name, n, *where)) for n, (name, where) in enumerate(PLACES.items())]
    store.write(engine, fold(records))
    store.write(engine, fold(records))  # a replay: the generated columns follow the rows

    with engine.connect() as conn:
        for query in ("SELECT lat, lon, ST_Y(geom), ST_X(geom), ST_SRID(geom) FROM reports",
                      "SELECT lat, lon, ST_Y(geom), ST_X(geom), ST_SRID(geom) FROM incidents"):
            rows = conn.execute(text(query)).all()
            assert rows
            for lat, lon, y, x, srid in rows:
                if lat is None or lon is None:
                    assert (y, x, srid) == (None, None, None)
                else:
                    assert (y, x, srid) == (pytest.approx(lat), pytest.approx(lon), 4326)
        assert conn.execute(text("SELECT count(*) FROM incidents WHERE geom IS NOT NULL")).scalar() == len(PLACES)


def test_the_documented_spatial_query_finds_the_incidents_within_its_radius(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION postgis"))
    store.migrate(engine)
    records = [record(Role.INCIDENTS, n, placed(name, n, *where)) for n, (name, where) in enumerate(PLACES.items())]
    store.write(engine, fold(records))
    found = EXAMPLE.search(DOC.read_text(encoding="utf-8"))
    assert found, "docs/archive.md has no `<!-- example: postgis -->` sql block"
    with engine.connect() as conn:
        answered = [row.incident_id for row in conn.execute(text(found["sql"]))]
    expected = [name for name, (lat, lon) in PLACES.items() if distance_m(*KRISHNA_GHATI, lat, lon) < RADIUS_M]
    assert answered == expected == ["inc-near", "inc-edge-in", "inc-pk-side"]
