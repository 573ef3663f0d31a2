"""How correlation state is stored: the entries of the `correlation` table, one ceasefire's under
`<ceasefire_id>␟` (services/runtime/ceasefire_state.py adds that prefix), read in one place.

| key | value | what |
|---|---|---|
| `r␟<source>␟<report_id>` | `held_entry` JSON | a held report and the incident it is in |
| `i␟<incident_id>` | `{"version", "from", "merged_into", "content", "batch", "at"}` | an incident's stored version (or where it was merged), the version stored before its batch; the content of its newest record, its batch and the batch's event time (services/correlate/catchup.py) |
| `e␟<incident_id>` | `{"version", "from", "members", "content", "batch", "at"}` | an eviction marker: its reports go, their identities are remembered |
| `s␟<digest>` | expiry, µs | a remembered identity (services/correlate/seen.py) |
| `~meta` | `{"watermark_us", "horizon_us", "seq"}` | the ceasefire's event-time progress |
| `~published` | `{"batch"}` | the newest batch whose records were published: stored after them, before the rest |
| `~reserved` | `{"batch"}` | the newest batch whose reservations were all stored: the last of them, before its records go out |

`Correlator.take_changes` returns these entries and `Correlator(persisted)` rebuilds from them;
`version_entries` splits a batch's changes into what is stored before its incidents are published and
after (docs/link-rule.md, "Crash safety").
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import orjson

from schemas.report import ViolationType
from services.correlate.link import HeldReport
from services.correlate.seen import SEEN_PREFIX

REPORT_PREFIX = "r\x1f"
INCIDENT_PREFIX = "i\x1f"
EVICTION_PREFIX = "e\x1f"
META_KEY = "~meta"
PUBLISHED_KEY = "~published"
RESERVED_KEY = "~reserved"
__all__ = ["EVICTION_PREFIX", "INCIDENT_PREFIX", "META_KEY", "PUBLISHED_KEY", "REPORT_PREFIX", "RESERVED_KEY", "SEEN_PREFIX", "held_entry",
           "held_from_entry", "report_entry_key", "version_entries"]


def report_entry_key(key: tuple[str, str]) -> str:
    """The entry of the held report `(source, report_id)`."""
    return REPORT_PREFIX + key[0] + "\x1f" + key[1]


# What an entry keeps of a held report: its constructor's fields but the three that are rebuilt
# (the published record, the datetime kept beside `observed_us`, the incident: stored as its id).
STORED_FIELDS = tuple(
    f.name for f in fields(HeldReport) if f.init and f.name not in ("record", "observed", "incident")
)
_stored = attrgetter(*STORED_FIELDS)
_LEADING = tuple(f.name for f in fields(HeldReport) if f.init)[: len(STORED_FIELDS)]
if _LEADING != STORED_FIELDS:
    raise TypeError("HeldReport's stored fields must come first: held_from_entry passes them by position")


def held_entry(held: HeldReport, iid: str) -> str:
    """A held report as its correlation-table entry (`r␟<source>␟<report_id>`, docs/link-rule.md)."""
    doc = dict(zip(STORED_FIELDS, _stored(held), strict=True))  # orjson writes enums and datetimes itself
    doc["incident"] = iid
    return orjson.dumps(doc).decode()


_SINCE: dict[str, Any] = {"revision": 1}  # fields added since entries were first written: their value in older entries
_VIOLATION, _INGESTED, _LINKED = (STORED_FIELDS.index(n) for n in ("violation_type", "ingested_at", "linked_to"))


def held_from_entry(doc: dict[str, Any]) -> tuple[HeldReport, str]:
    """The held report and its incident id back from a parsed `held_entry`."""
    # in the constructor's order (the fields come first); entries from before revisions have none
    values = [doc[name] if name in doc else _SINCE[name] for name in STORED_FIELDS]
    values[_VIOLATION] = ViolationType(values[_VIOLATION])
    values[_INGESTED] = datetime.fromisoformat(values[_INGESTED])
    if values[_LINKED] is not None:
        values[_LINKED] = tuple(values[_LINKED])
    return HeldReport(*values), doc["incident"]


def version_entries(changes: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str | None]]:
    """Split `take_changes()` into version reservations and the rest.

    The shell stores the reservations *before* it publishes the batch's incident records, and the
    rest after. A reservation raises an incident's stored version and changes nothing else (a merge
    is stored only with the rest): whatever a crash tears, every version ever published is stored,
    and re-processing the batch publishes above it, never one (incident, version) with two contents.
    The last reservation is `~reserved` (the batch's number): stored, it says every reservation of
    the batch was, so its records may have gone out (services/correlate/catchup.py).
    """
    reservations: dict[str, str] = {}
    rest: dict[str, str | None] = {}
    for key, value in changes.items():
        if key.startswith(EVICTION_PREFIX) and value is not None:  # published in this batch, maybe
            doc = orjson.loads(value)
            iid = INCIDENT_PREFIX + key[len(EVICTION_PREFIX) :]
            reservations[iid] = orjson.dumps({k: v for k, v in doc.items() if k != "members"} | {"merged_into": None}).decode()
        elif key.startswith(INCIDENT_PREFIX) and value is not None:
            doc = orjson.loads(value)
            reservations[key] = orjson.dumps({**doc, "merged_into": None}).decode()
            if doc["merged_into"] is None:
                continue
        rest[key] = value
    if reservations and (batch := changes.get(PUBLISHED_KEY)) is not None:
        reservations[RESERVED_KEY] = batch
    return reservations, rest
