"""Every SQL query of the Grafana dashboard (the row "The record" and the alert episodes' annotations)
returns rows from a real PostgreSQL that a real archive worker filled.

A worker running every stage, archive included, on a PostgreSQL from Debian's packages
(tests/support/postgres.py) processes the demo scenario; once the archive has caught up, each query,
with Grafana's macros and the `ceasefire` variable filled in as Grafana would (tests/support/grafana_sql.py)
for the week of the scenario, goes through SQLAlchemy. Each must answer rows with the columns its panel
reads; a range before the scenario and a ceasefire not in it must answer none (the filters filter).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, text

from deploy.grafana import dashboard, record
from schemas.incident import GONE
from services.console.post import post_lines
from services.runtime.settings import PROJECT_ROOT
from tests.support.grafana_sql import expand, sql_targets
from tests.support.kafka import eventually
from tests.support.postgres import postgres_server
from tests.support.worker import WorkerProcess, isolated_settings

STAGES = ("ingest", "correlate", "alert", "archive")
SCENARIO = PROJECT_ROOT / "deploy" / "demo" / "scenario.jsonl"
CEASEFIRE = "in-pk-2025-05-10"
OTHER = "in-pk-2021-02-25"  # the registry's earlier ceasefire: the one scenario line naming it is refused
# The dashboard's time range: the week of the scenario (its reports are observed 10–16 May 2025).
START, END = datetime(2025, 5, 10, tzinfo=UTC), datetime(2025, 5, 17, tzinfo=UTC)
BEFORE = (datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC))
# The columns each query's panel or annotation reads (Grafana finds them by name), by query.
NEEDED = {
    record.MAP_SQL.strip(): {"time", "lat", "lon", "status", "severity"},
    record.LATEST_SQL.strip(): {
        "last observed", "incident", "status", "severity", "sources", "sectors", "killed", "injured"
    },
    record.FRAGILITY_SQL.strip(): {"time", "metric", "value"},
    record.EPISODES_SQL.strip(): {"time", "timeend", "text", "tags"},
}


def queries() -> list[tuple[str, dict[str, Any]]]:
    board = json.loads(dashboard.OUTPUT.read_text())
    return list(sql_targets(board, record.ARCHIVE_UID))


def run(
    engine: Engine, sql: str, window: tuple[datetime, datetime], ceasefires: Sequence[str] | None
) -> list[dict[str, Any]]:
    """The rows Grafana would get for this range and these ceasefires (None: All), by column name."""
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(text(expand(sql, *window, ceasefires))).mappings()]


def test_the_dashboard_has_the_sql_queries_this_test_knows() -> None:
    assert sorted(target["rawSql"] for _, target in queries()) == sorted(NEEDED)


async def test_every_archive_query_returns_rows(broker, workers, tmp_path: Path) -> None:
    with postgres_server() as url:
        # A short idle time: correlate releases the reports it holds for event time soon after the last.
        settings = isolated_settings(
            broker.url, tmp_path / "state", archive_url=SecretStr(url), idle_seconds=2.0
        )
        worker = WorkerProcess(settings, STAGES, tmp_path / "worker.log").start()
        workers.append(worker)
        await worker.wait_serving(timeout=60)
        lines = [line for line in SCENARIO.read_bytes().splitlines() if line.strip()]
        await post_lines(settings, lines)

        async def caught_up() -> bool:
            """Every line counted, none held for event time, no stage and not the archive behind."""
            try:
                samples = worker.scrape()
            except OSError:
                return False

            def values(metric: str) -> list[float]:
                return [value for (name, _), value in samples.items() if name == metric]

            lags = values("ceasefire_consumer_lag_records"), values("ceasefire_archive_lag_records")
            return (
                sum(values("ceasefire_reports_total")) >= len(lines)
                and not any(values("ceasefire_held_reports"))
                and all(lag and not any(lag) for lag in lags)
            )

        await eventually(caught_up, timeout=120, what=f"{len(lines)} scenario lines processed and archived")

        engine = create_engine(url)
        try:
            targets = queries()
            answers: dict[str, list[dict[str, Any]]] = {}

            async def every_query_has_rows() -> bool:
                # The archive's lag is measured after each poll: the last alert or fragility point
                # may still be on its way when it reads 0.
                for where, target in targets:
                    answers[where] = run(engine, target["rawSql"], (START, END), [CEASEFIRE])
                return all(answers.values())

            try:
                await eventually(every_query_has_rows, timeout=30, interval=0.5, what="rows for every query")
            except TimeoutError:
                empty = [where for where, rows in answers.items() if not rows]
                pytest.fail(f"SQL queries with no rows: {empty}")

            for where, target in targets:
                sql, rows = target["rawSql"], answers[where]
                missing = NEEDED[sql] - set(rows[0])
                assert not missing, f"{where}: no column {sorted(missing)} in {sorted(rows[0])}"
                assert len(run(engine, sql, (START, END), None)) >= len(rows), f"{where}: All"
                assert run(engine, sql, (START, END), [OTHER]) == [], f"{where}: another ceasefire"
                assert run(engine, sql, BEFORE, [CEASEFIRE]) == [], f"{where}: a range before the scenario"
                assert all(row.get("status") not in GONE for row in rows), f"{where}: an incident gone"
                assert all(row.get("time") is None or START <= row["time"] <= END for row in rows), where
            located = answers["panel 'Incidents on the map'"]
            assert all(row["lat"] is not None and row["lon"] is not None for row in located)
        finally:
            engine.dispose()
            worker.stop()
