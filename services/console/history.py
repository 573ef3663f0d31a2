"""`ceasefire incidents` from the archive: the current state or every version, filtered, as a table,
JSON Lines or CSV (columns after ACLED's export, so the desk's tools read it: docs/archive.md)."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from schemas.incident import Status
from services.archive import queries, store
from services.runtime.settings import Settings

CSV_COLUMNS = (
    "event_id_cnty", "event_date", "year", "time_precision", "event_type", "sub_event_type",
    "actor1", "actor2", "interaction", "admin1", "location", "latitude", "longitude", "geo_precision_km",
    "fatalities", "fatalities_low", "fatalities_high", "injured_low", "injured_high", "severity",
    "source", "source_count", "notes", "ceasefire_id", "status", "version", "first_observed_at",
    "last_observed_at", "timestamp",
)


class NoArchive(RuntimeError):
    pass


def open_archive(settings: Settings) -> Engine:
    """The archive as configured; an embedded SQLite archive must exist already (it is made by a worker
    running `archive`), so a mistyped data dir is said, not answered with an empty file."""
    url = settings.archive_address
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and not Path(parsed.database).exists():
        raise NoArchive(
            f"no archive at {parsed.database}: run a worker with the archive service (`ceasefire run` does), "
            "or set CEASEFIRE_ARCHIVE_URL / CEASEFIRE_DATA_DIR"
        )
    return store.open_engine(url)


@dataclass(frozen=True)
class Selection:
    query: queries.IncidentQuery
    current: bool  # one row per incident; else every version of the chosen incidents
    version_statuses: Sequence[str] = ()


def chosen(engine: Engine, selection: Selection, page_size: int) -> Iterator[dict[str, Any]]:
    """The incidents (or versions) chosen, newest last observation first, read page by page."""
    q = selection.query
    cursor = None
    while True:
        page = queries.incidents(engine, queries.IncidentQuery(
            q.ceasefire, q.since, q.until, q.sectors, q.statuses, q.min_severity, page_size, cursor))
        for item in page.items:
            if selection.current:
                yield item
                continue
            for version in queries.incident_versions(engine, item["incident_id"]):
                if not selection.version_statuses or version["status"] in selection.version_statuses:
                    yield version
        if page.cursor is None:
            return
        cursor = page.cursor


def csv_row(incident: dict[str, Any]) -> dict[str, Any]:
    first, last = incident["first_observed_at"], incident["last_observed_at"]
    c, centre = incident["casualties"], incident.get("location")
    sectors, sources = incident["sectors"], incident["sources"]
    notes = (
        f"{incident['report_count']} report{'s' if incident['report_count'] != 1 else ''} from "
        f"{', '.join(sources)}; {incident['status']}"
        + ("; reciprocal accusations" if incident.get("reciprocal") else "")
        + (f"; merged into {incident['merged_into']}" if incident.get("merged_into") else "")
    )
    return {
        "event_id_cnty": incident["incident_id"],
        "event_date": first[:10],
        "year": first[:4],
        "time_precision": 1,  # ACLED: 1 = the day is known (here the minute is)
        "event_type": "Ceasefire violation",
        "sub_event_type": ";".join(incident["violation_types"]),
        "actor1": ";".join(incident["accused_parties"]),
        "actor2": ";".join(incident["reporting_parties"]),
        "interaction": incident["status"],
        "admin1": ";".join(sectors),
        "location": sectors[0] if sectors else "",
        "latitude": "" if centre is None else centre["lat"],
        "longitude": "" if centre is None else centre["lon"],
        "geo_precision_km": "" if centre is None else centre["radius_km"],
        "fatalities": _figure(c["killed_high"]),
        "fatalities_low": _figure(c["killed_low"]),
        "fatalities_high": _figure(c["killed_high"]),
        "injured_low": _figure(c["injured_low"]),
        "injured_high": _figure(c["injured_high"]),
        "severity": incident["severity"],
        "source": ";".join(sources),
        "source_count": len(sources),
        "notes": notes,
        "ceasefire_id": incident["ceasefire_id"],
        "status": incident["status"],
        "version": incident["version"],
        "first_observed_at": first,
        "last_observed_at": last,
        "timestamp": incident.get("ordered_at") or last,
    }


def _figure(value: int | None) -> Any:
    return "" if value is None else value  # no figure given is not zero


def write_csv(items: Iterator[dict[str, Any]], out: io.TextIOBase | Any = None) -> int:
    out = out or sys.stdout
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for item in items:
        writer.writerow(csv_row(item))
        count += 1
    return count


def write_json(items: Iterator[dict[str, Any]]) -> int:
    count = 0
    for item in items:
        sys.stdout.write(orjson.dumps(item).decode() + "\n")
        count += 1
    return count


def write_table(console: Console, items: Iterator[dict[str, Any]], current: bool) -> int:
    table = Table(title="incidents (current)" if current else "incident versions", expand=False)
    for name in ("incident", "v", "status", "first observed (UTC)", "last observed (UTC)", "sectors", "severity",
                 "killed", "reports", "sources"):
        table.add_column(name, overflow="fold")
    count = 0
    for item in items:
        c = item["casualties"]
        killed = "" if c["killed_high"] is None else (
            str(c["killed_high"]) if c["killed_low"] == c["killed_high"] else f"{c['killed_low']}–{c['killed_high']}")
        table.add_row(
            item["incident_id"], str(item["version"]), item["status"], item["first_observed_at"][:16].replace("T", " "),
            item["last_observed_at"][:16].replace("T", " "), ", ".join(item["sectors"]) or "—", str(item["severity"]),
            killed, str(item["report_count"]), ", ".join(item["sources"]),
        )
        count += 1
    console.print(table)
    console.print(f"{count} {'incident' if current else 'version'}{'' if count == 1 else 's'}")
    return count


def print_incidents(
    settings: Settings,
    ceasefire_id: str | None,
    statuses: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    sectors: Sequence[str],
    current: bool,
    output: str,
) -> int:
    """The `incidents` command on the archive; returns the exit code (2: no archive)."""
    from services.console.terminal import terminal_console

    try:
        engine = open_archive(settings)
    except NoArchive as missing:
        sys.stderr.write(f"ceasefire: {missing}\n")
        return 2
    everything = Status.__args__  # type: ignore[attr-defined]  # a version of a merged incident is history too
    query = queries.IncidentQuery(ceasefire_id, since, until, sectors, statuses if current else everything)
    items = chosen(engine, Selection(query, current, () if current else statuses), settings.api_max_limit)
    try:
        if output == "csv":
            write_csv(items)
        elif output == "json":
            write_json(items)
        else:
            write_table(terminal_console(), items, current)
    finally:
        engine.dispose()
    return 0
