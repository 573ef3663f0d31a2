"""`ceasefire incidents` on the archive: current state or every version, filtered, as a table, JSON
Lines or CSV (parsed back with the csv module and checked field by field)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from services.archive import store
from services.archive.rows import fold
from services.console.cli import main
from services.console.history import CSV_COLUMNS
from tests.support.archive import sample_records


@pytest.fixture
def archive(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'archive.sqlite'}"
    engine = store.open_engine(url)
    store.migrate(engine)
    store.write(engine, fold(sample_records()))
    engine.dispose()
    return url


def run(archive: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["incidents", *args], env={"CEASEFIRE_ARCHIVE_URL": archive})
    return result.exit_code, result.stdout, result.stderr


def test_csv_of_the_current_state_reads_back_field_by_field(archive: str) -> None:
    code, out, _ = run(archive, "--current", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 1  # inc-b was merged: not current
    row = rows[0]
    assert row["event_id_cnty"] == "inc-a" and row["version"] == "3" and row["status"] == "corroborated"
    assert (row["event_date"], row["year"], row["time_precision"]) == ("2025-05-10", "2025", "1")
    assert row["event_type"] == "Ceasefire violation" and row["sub_event_type"] == "small_arms"
    assert (row["actor1"], row["actor2"]) == ("PK", "IN;NEUTRAL")
    assert row["admin1"] == "Poonch" and row["location"] == "Poonch"
    assert (row["fatalities"], row["fatalities_low"], row["fatalities_high"]) == ("2", "2", "2")
    assert (row["injured_low"], row["injured_high"]) == ("", "")  # no figure given is not zero
    assert row["source"] == "in.army;un.unmogip" and row["source_count"] == "2"
    assert row["notes"] == "2 reports from in.army, un.unmogip; corroborated"
    assert row["first_observed_at"].startswith("2025-05-10T13:00:00")
    assert (row["latitude"], row["longitude"]) == ("", "")  # these incidents name a sector, no coordinates


def test_every_version_and_the_status_filter(archive: str) -> None:
    code, out, _ = run(archive, "--format", "json")
    versions = [(i["incident_id"], i["version"]) for i in map(json.loads, out.splitlines())]
    assert code == 0 and sorted(versions) == [("inc-a", 1), ("inc-a", 2), ("inc-a", 3), ("inc-b", 1), ("inc-b", 2)]
    _, out, _ = run(archive, "--status", "mutual", "--json")
    assert [json.loads(line)["version"] for line in out.splitlines()] == [2]


def test_filters_by_sector_and_time(archive: str) -> None:
    _, out, _ = run(archive, "--current", "--sector", "POONCH", "--format", "json")
    assert [json.loads(line)["incident_id"] for line in out.splitlines()] == ["inc-a"]
    _, out, _ = run(archive, "--current", "--sector", "Uri", "--format", "json")
    assert out == ""
    _, out, _ = run(archive, "--current", "--since", "2025-05-11", "--format", "json")
    assert out == ""
    code, out, _ = run(archive, "--current", "--until", "2025-05-10T13:00:00+05:30")
    assert code == 0 and "0 incidents" in out
    code, _, err = run(archive, "--since", "yesterday")
    assert code == 2 and "RFC 3339" in err


def test_the_table_counts_what_it_shows(archive: str) -> None:
    code, out, _ = run(archive, "--current")
    assert code == 0 and "inc-a" in out and "1 incident" in out.splitlines()[-1]


def test_no_archive_is_said_in_one_line(tmp_path: Path) -> None:
    code, _, err = run(f"sqlite:///{tmp_path / 'none.sqlite'}", "--current")
    assert code == 2 and err.count("\n") == 1 and "no archive at" in err
