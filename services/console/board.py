"""The live view's alerts: those firing now, beside a short log of changes; and a screen that keeps
the status line in sight whatever the terminal's size.

Pure: alert records in, rows out. The alert stage's record log repeats an alert at every change and
keeps a resolved one, so the live view shows the alerts as they stand (one row per fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from schemas.alert import Alert, AlertName
from services.console.views import SEVERITY_ORDER

CHANGES_SHOWN = 6


def firing_now(records: Iterable[Alert]) -> list[Alert]:
    """The newest record of each fingerprint, those firing only: most severe first, then the longest
    firing."""
    newest: dict[str, Alert] = {}
    for alert in records:
        held = newest.get(alert.fingerprint)
        if held is None or alert.version > held.version:
            newest[alert.fingerprint] = alert
    firing = [a for a in newest.values() if a.status == "firing"]
    return sorted(firing, key=lambda a: (-SEVERITY_ORDER.get(a.severity, 0), a.starts_at, a.fingerprint))


def latest_changes(records: Iterable[Alert], shown: int = CHANGES_SHOWN) -> list[Alert]:
    """The newest changes, each record once, latest event time first."""
    unique = {(a.fingerprint, a.version): a for a in records}
    return sorted(unique.values(), key=lambda a: (a.updated_at, a.version), reverse=True)[:shown]


def where(alert: Alert) -> str:
    labels = alert.labels
    return labels.get("sector") or labels.get("incident") or labels["ceasefire"]


def current_summary(alert: Alert, fragility: Mapping[str, float]) -> str:
    """What the alert says now: FragilityHigh's record keeps the index it fired with; the index moves."""
    index = fragility.get(alert.labels["ceasefire"])
    if alert.alertname == AlertName.FRAGILITY_HIGH and index is not None:
        return f"Ceasefire fragility {index:.1f}/100 now"
    return alert.annotations.summary


def change_text(alert: Alert) -> str:
    """A change in words; a resolution says how long it fired, not the figures it fired with."""
    if alert.status == "resolved" and alert.ends_at is not None:
        return f"resolved after {_duration(alert.ends_at - alert.starts_at)}"
    return alert.annotations.summary


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _style(alert: Alert) -> str:
    return "green" if alert.status == "resolved" else "bold red" if alert.severity == "critical" else "yellow"


def firing_table(firing: Sequence[Alert], fragility: Mapping[str, float]) -> Table:
    table = Table(title=f"alerts firing now ({len(firing)})")
    for column in ("since (event time)", "severity", "alert", "where", "now"):
        table.add_column(column)
    for alert in firing:
        table.add_row(
            _when(alert.starts_at), f"[{_style(alert)}]{alert.severity}[/]", alert.alertname,
            escape(where(alert)), escape(current_summary(alert, fragility)),
        )
    if not firing:
        table.add_row("", "", "[dim]none[/]", "", "")
    return table


def changes_table(changes: Sequence[Alert]) -> Table:
    table = Table(title="latest changes")
    for column in ("event time", "status", "alert", "where", ""):
        table.add_column(column)
    for alert in changes:
        table.add_row(
            _when(alert.updated_at), f"[{_style(alert)}]{alert.status}[/]", alert.alertname,
            escape(where(alert)), escape(change_text(alert)),
        )
    return table


def _when(at: datetime) -> str:
    return at.strftime("%m-%d %H:%M")


def status_line(parts: Sequence[tuple[str, str]]) -> Text:
    """`broker URL   metrics URL   …`: each part whole (a narrow terminal wraps between parts)."""
    text = Text(style="dim")
    for name, value in parts:
        text.append(f"{name} {value}   ")
    text.append("Ctrl-C stops everything")
    return text


@dataclass
class Screen:
    """The body above the status line, cut to the terminal's height: the status line is never the part
    that falls off (rich's Live crops a view taller than the terminal from the bottom)."""

    body: RenderableType
    status: Text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = max(1, (options.height or console.height) - 1)  # a line for the cursor: no scrolling
        natural = options.update(height=None)
        status = console.render_lines(self.status, natural, pad=False)[-height:]
        room = height - len(status)
        if room > 0:  # as tall as it is, or as the room left; a panel keeps its border either way
            body_height = min(room, len(console.render_lines(self.body, natural, pad=False)))
            yield from _lines(console.render_lines(self.body, options.update(height=body_height), pad=False))
        yield from _lines(status)


def _lines(lines: list[list[Segment]]) -> Iterator[Segment]:
    for line in lines:
        yield from line
        yield Segment.line()
