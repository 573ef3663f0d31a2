"""Grafana's PostgreSQL macros and the dashboard's `ceasefire` variable, filled in as Grafana does
before a query leaves it, so the tests can run the dashboard's SQL against a real PostgreSQL.

Only what the dashboard uses (deploy/grafana/record.py); anything else left in a query is an error, so
a new macro cannot reach a test unexpanded:

- `$__timeFilter(col)` → `col BETWEEN '<from>' AND '<to>'`
- `$__timeFrom()` → `'<from>'`, `$__timeTo()` → `'<to>'`
  (Grafana's backend writes both ends in UTC as RFC 3339 to the second: `2025-05-10T00:00:00Z`)
- `${ceasefire:regex}` → the picked ceasefire regex-escaped; several → `(a|b)`; "All" → the
  variable's custom all value `.*`, which Grafana leaves unformatted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

ALL = ".*"  # deploy/grafana/dashboard.py: ceasefire_variable().all_value
REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")  # the characters Grafana's regexEscape escapes
TIME_FILTER = re.compile(r"\$__timeFilter\(([^()]*)\)")
LEFT_OVER = re.compile(r"\$__\w+|\$\{[^}]*\}|\$\w+|\[\[\w+")


def grafana_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def regex_value(picked: Sequence[str] | None) -> str:
    """`${ceasefire:regex}`: None is "All"."""
    if picked is None:
        return ALL
    escaped = [REGEX_SPECIAL.sub(lambda m: "\\" + m.group(), value) for value in picked]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand(sql: str, start: datetime, end: datetime, ceasefires: Sequence[str] | None) -> str:
    """`sql` as Grafana sends it for the range [start, end] and the ceasefires picked (None: All)."""
    frm, to = f"'{grafana_time(start)}'", f"'{grafana_time(end)}'"
    text = TIME_FILTER.sub(lambda m: f"{m.group(1).strip()} BETWEEN {frm} AND {to}", sql)
    text = text.replace("$__timeFrom()", frm).replace("$__timeTo()", to)
    text = text.replace("${ceasefire:regex}", regex_value(ceasefires))
    left = LEFT_OVER.findall(text)
    if left:
        raise ValueError(f"Grafana macros or variables this expander does not know: {left}")
    return text


def sql_targets(board: Mapping[str, Any], datasource_uid: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, target) for every query of the dashboard on `datasource_uid`: each panel's (rows' inner
    panels included) and each annotation's."""
    for panel in board["panels"]:
        for inner in (panel, *panel.get("panels", [])):
            for target in inner.get("targets", []):
                if target["datasource"]["uid"] == datasource_uid:
                    yield f"panel {inner['title']!r}", target
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation["datasource"]["uid"] == datasource_uid:
            yield f"annotation {annotation['name']!r}", annotation["target"]
