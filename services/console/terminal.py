"""The bodies of `ceasefire incidents`, `alerts` and `fragility`: read, filter, print."""

from __future__ import annotations

import sys
from datetime import datetime

from rich.console import Console
from rich.markup import escape

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident
from schemas.topics import Role
from services.console.follow import read_values
from services.console.views import (
    SEVERITY_ORDER,
    Revisions,
    alert_line,
    explain,
    fragility_lines,
    fragility_series,
    incident_line,
    revision_history,
    revisions_seen,
)
from services.runtime.codec import decode
from services.runtime.settings import Settings


def terminal_console() -> Console:
    # Piped output keeps whole lines (rich would wrap at 80 columns).
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)


def _json_line(raw: bytes) -> None:
    """A record for scripts: as published, one per line, flushed (a pipe sees it at once)."""
    sys.stdout.write(raw.decode() + "\n")
    sys.stdout.flush()


async def show_incidents(
    settings: Settings,
    follow: bool,
    ceasefire_id: str | None,
    statuses: set[str],
    as_json: bool,
    explain_id: str | None,
) -> None:
    console = terminal_console()
    latest: Incident | None = None
    history: Revisions = {}
    versions: list[Incident] = []
    async for raw in read_values(settings, settings.topic(Role.INCIDENTS), follow and explain_id is None):
        incident = decode(Incident, raw)
        if explain_id is not None:
            revisions_seen(history, incident)
            if incident.incident_id == explain_id:
                versions.append(incident)
                if latest is None or incident.version > latest.version:
                    latest = incident
            continue
        if (ceasefire_id and incident.ceasefire_id != ceasefire_id) or (statuses and incident.status not in statuses):
            continue
        if as_json:
            _json_line(raw)
        else:
            console.print(incident_line(incident))
    if explain_id is not None:
        if latest is None:
            console.print(escape(f"no incident {explain_id}"))
            raise SystemExit(1)
        console.print(explain(latest))
        revised = revision_history(history, versions)
        if revised is not None:
            console.print(revised)


async def show_alerts(
    settings: Settings, follow: bool, ceasefire_id: str | None, min_severity: str, as_json: bool
) -> None:
    console = terminal_console()
    seen: set[tuple[str, int]] = set()
    floor = SEVERITY_ORDER[min_severity]
    async for raw in read_values(settings, settings.topic(Role.ALERTS), follow):
        alert = decode(Alert, raw)
        if (alert.fingerprint, alert.version) in seen:
            continue
        seen.add((alert.fingerprint, alert.version))
        if ceasefire_id and alert.labels.get("ceasefire") != ceasefire_id:
            continue
        if SEVERITY_ORDER.get(alert.labels.get("severity", ""), 0) < floor:
            continue
        if as_json:
            _json_line(raw)
        else:
            console.print(alert_line(alert))


async def show_fragility(
    settings: Settings, follow: bool, ceasefire_id: str | None, since: datetime | None, as_json: bool
) -> None:
    """The fragility index over event time. For a person: each ceasefire's series once the topic is
    read (a sparkline, then a line per point); with `--follow`, each new point as it comes. JSON: one
    snapshot per (ceasefire, as_of), as published."""
    console = terminal_console()
    seen: set[tuple[str, datetime]] = set()
    snapshots: list[FragilitySnapshot] = []
    async for raw in read_values(settings, settings.topic(Role.FRAGILITY), follow):
        snapshot = decode(FragilitySnapshot, raw)
        if (ceasefire_id and snapshot.ceasefire_id != ceasefire_id) or (since and snapshot.as_of < since):
            continue
        if (snapshot.ceasefire_id, snapshot.as_of) in seen:
            continue  # the processing-time heartbeat repeats the latest snapshot
        seen.add((snapshot.ceasefire_id, snapshot.as_of))
        if as_json:
            _json_line(raw)
        elif follow:
            console.print(fragility_lines(snapshot.ceasefire_id, [(snapshot.as_of, snapshot.index)])[1])
        else:
            snapshots.append(snapshot)
    for cid, points in fragility_series(snapshots).items():
        for line in fragility_lines(cid, points):
            console.print(line)
