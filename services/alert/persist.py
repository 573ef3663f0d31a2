"""How alerting state is stored: the entries of the `alerting` table, one ceasefire's under
`<ceasefire_id>␟` (services/runtime/ceasefire_state.py adds that prefix), read in one place.

| key | value | what |
|---|---|---|
| `incident␟<incident_id>` | `IncidentSummary` JSON | what the rules keep of an incident |
| `alert␟<fingerprint>` | `Episode` JSON | an alert's current episode |
| `watermark` | RFC 3339 | the engine's event time |
| `last_violation` | RFC 3339 | the newest violation, for the fragility index |
| `journal…` | services/alert/journal.py | one batch's changes, stored first (crash safety) |

`AlertEngine.take_changes` writes them (None deletes) and `AlertEngine(store=…)` reads them back
through `read`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.alert.episodes import Episode
from services.alert.journal import Journal, replay
from services.alert.recent import IncidentSummary

SEP = "\x1f"
INCIDENT = "incident" + SEP
ALERT = "alert" + SEP
WATERMARK = "watermark"
LAST_VIOLATION = "last_violation"


def incident_key(incident_id: str) -> str:
    return INCIDENT + incident_id


def alert_key(fingerprint: str) -> str:
    return ALERT + fingerprint


def write_time(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


@dataclass
class Stored:
    """An engine's state as read back from its entries (the journal applied)."""

    summaries: list[IncidentSummary] = field(default_factory=list)
    episodes: list[Episode] = field(default_factory=list)
    watermark: datetime | None = None
    last_violation_at: datetime | None = None


def read(persisted: Iterable[tuple[str, str]]) -> tuple[Stored, Journal]:
    entries, journal = replay(persisted)
    stored = Stored()
    for key, value in entries.items():
        if key.startswith(INCIDENT):
            stored.summaries.append(IncidentSummary.model_validate_json(value))
        elif key.startswith(ALERT):
            stored.episodes.append(Episode.model_validate_json(value))
        elif key == WATERMARK:
            stored.watermark = datetime.fromisoformat(value)
        elif key == LAST_VIOLATION:
            stored.last_violation_at = datetime.fromisoformat(value)
    return stored, journal
