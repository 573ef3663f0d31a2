"""The bodies of `ceasefire incidents` and `ceasefire alerts`: read, filter, print."""

from __future__ import annotations

import sys

from rich.console import Console

from schemas.alert import Alert
from schemas.incident import Incident
from schemas.topics import Role
from services.console.follow import read_values
from services.console.views import SEVERITY_ORDER, alert_line, explain, incident_line
from services.runtime.codec import decode
from services.runtime.settings import Settings


def _console() -> Console:
    # Piped output keeps whole lines (rich would wrap at 80 columns).
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 240)


async def show_incidents(
    settings: Settings,
    follow: bool,
    ceasefire_id: str | None,
    statuses: set[str],
    as_json: bool,
    explain_id: str | None,
) -> None:
    console = _console()
    latest: Incident | None = None
    async for raw in read_values(settings, settings.topic(Role.INCIDENTS), follow and explain_id is None):
        incident = decode(Incident, raw)
        if explain_id is not None:
            if incident.incident_id == explain_id and (latest is None or incident.version > latest.version):
                latest = incident
            continue
        if (ceasefire_id and incident.ceasefire_id != ceasefire_id) or (statuses and incident.status not in statuses):
            continue
        if as_json:
            sys.stdout.write(raw.decode() + "\n")
            sys.stdout.flush()
        else:
            console.print(incident_line(incident))
    if explain_id is not None:
        if latest is None:
            console.print(f"no incident {explain_id}")
            raise SystemExit(1)
        console.print(explain(latest))


async def show_alerts(
    settings: Settings, follow: bool, ceasefire_id: str | None, min_severity: str, as_json: bool
) -> None:
    console = _console()
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
            sys.stdout.write(raw.decode() + "\n")
            sys.stdout.flush()
        else:
            console.print(alert_line(alert))
