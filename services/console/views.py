"""How incidents, alerts and the fragility series read to a person: one line per record, the merge
explanation tree, a sparkline per ceasefire."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from rich.markup import escape
from rich.tree import Tree

from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident, ReportLink


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """"1 report", "2 reports": a person reads counts, not "report(s)"."""
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


STATUS_STYLE = {"claimed": "yellow", "mutual": "bold magenta", "corroborated": "bold red", "merged": "dim", "withdrawn": "dim"}


def casualty_text(incident: Incident) -> str:
    c = incident.casualties
    parts = []
    for label, low, high in (("killed", c.killed_low, c.killed_high), ("injured", c.injured_low, c.injured_high)):
        if low is not None:
            parts.append(f"{label} {low}" if low == high else f"{label} {low}–{high}")
    return ", ".join(parts) or "no casualty figures"


def incident_line(incident: Incident) -> str:
    when = incident.last_observed_at.strftime("%Y-%m-%d %H:%M")
    style = STATUS_STYLE.get(incident.status, "")
    where = ", ".join(incident.sectors) or "no sector"
    head = f"{when}Z {incident.incident_id} v{incident.version} [{style}]{incident.status}[/]"
    if incident.status == "merged":
        return f"{head} into {incident.merged_into}"
    return (
        f"{head} {escape(where)} · {incident.severity.name.lower()} · "
        f"{plural(incident.report_count, 'report')} from {', '.join(incident.sources)} · {casualty_text(incident)}"
        + (" · late" if incident.late else "")
    )


def _link_label(link: ReportLink) -> str:
    accused = f"→{link.accused_party}" if link.accused_party else "(unattributed)"
    head = f"{link.source}/{link.report_id} [{link.source_party}{accused}] {link.violation_type.value}"
    head += f" at {link.observed_at.strftime('%H:%M')}Z"
    if link.linked_to is None:
        return escape(head) + " [dim](first report)[/]"
    km = "same sector" if link.distance_km is None else f"{link.distance_km:.1f} km"
    minutes = f"{link.gap_minutes:.0f} min" if link.gap_minutes is not None else "?"
    return escape(head) + f" [dim]({km}, {minutes}){' late' if link.late else ''}[/]"


def explain(incident: Incident) -> Tree:
    """Which report linked to which, with distance and time gap: why these reports are one incident."""
    root = Tree(incident_line(incident))  # markup already, its free text escaped: printed, not shown raw
    nodes: dict[tuple[str, str], Tree] = {}
    pending = sorted(incident.reports, key=lambda r: (r.linked_to is not None, r.observed_at))
    for _ in range(len(pending) + 1):  # parents first; links form a tree over the reports
        rest = []
        for link in pending:
            parent = root if link.linked_to is None else nodes.get(link.linked_to)
            if parent is None:
                rest.append(link)
                continue
            nodes[(link.source, link.report_id)] = parent.add(_link_label(link))
        pending = rest
        if not rest:
            break
    for link in pending:  # a parent that was evicted: show the link anyway
        nodes[(link.source, link.report_id)] = root.add(_link_label(link) + " [dim](parent no longer held)[/]")
    return root


Revisions = dict[tuple[str, str], dict[int, tuple[ReportLink, str]]]  # report → revision → (as held, in incident)


def revisions_seen(history: Revisions, incident: Incident) -> None:
    """Note the revision of each report an incident record holds (`history` grows over the topic)."""
    for link in incident.reports:
        history.setdefault((link.source, link.report_id), {}).setdefault(link.revision, (link, incident.incident_id))


def revision_history(history: Revisions, versions: Iterable[Incident]) -> Tree | None:
    """Each report that was ever in the incident and was revised: every revision seen, what it said and
    which incident held it (a correction can move a report out; a retraction ends its line)."""
    keys = sorted({(r.source, r.report_id) for incident in versions for r in incident.reports})
    revised = [key for key in keys if len(history.get(key, {})) > 1]
    if not revised:
        return None
    tree = Tree("[bold]revisions[/]")
    for key in revised:
        node = tree.add(escape(f"{key[0]}/{key[1]}"))
        for revision, (link, incident_id) in sorted(history[key].items()):
            where = link.sector or (f"{link.lat:.3f},{link.lon:.3f}" if link.lat is not None else "?")
            killed = "?" if link.killed is None else link.killed
            node.add(escape(f"r{revision}: {link.observed_at.strftime('%Y-%m-%d %H:%M')}Z {where} · "
                            f"{link.violation_type.value} · killed {killed} · in {incident_id}"))
    return tree


SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}


def alert_line(alert: Alert) -> str:
    labels = alert.labels
    where = labels.get("sector") or labels.get("incident") or ""
    style = "bold red" if labels.get("severity") == "critical" else "yellow"
    state = "green" if alert.status == "resolved" else style
    return (
        f"{alert.updated_at.strftime('%Y-%m-%d %H:%M')}Z [{state}]{alert.status:<8}[/] "
        f"[{style}]{labels.get('severity', ''):<8}[/] {labels.get('alertname', '')} "
        f"{labels.get('ceasefire', '')} {escape(where)} v{alert.version} — {escape(alert.annotations.summary)}"
    )


BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], top: float = 100.0) -> str:
    """One character per value, from ▁ (0) to █ (`top`): the fragility index's scale is 0–100."""
    last = len(BARS) - 1
    return "".join(BARS[min(last, max(0, round(v / top * last)))] for v in values)


def fragility_series(snapshots: Iterable[FragilitySnapshot]) -> dict[str, list[tuple[datetime, float]]]:
    """Each ceasefire's index by `as_of`, in event-time order: its grid series (`kind: "grid"`) once it
    has one, else the snapshots as published; a snapshot repeated or re-sent after a crash counts once,
    the last one read for an `as_of`."""
    series: dict[str, dict[datetime, float]] = {}
    gridded: set[str] = set()  # ceasefires with points on the event-time grid: only those are shown
    for snapshot in snapshots:
        if snapshot.kind == "grid" and snapshot.ceasefire_id not in gridded:
            gridded.add(snapshot.ceasefire_id)
            series[snapshot.ceasefire_id] = {}
        if snapshot.kind == "grid" or snapshot.ceasefire_id not in gridded:
            series.setdefault(snapshot.ceasefire_id, {})[snapshot.as_of] = snapshot.index
    return {cid: sorted(points.items()) for cid, points in sorted(series.items())}


SPARK_WIDTH = 60


def peaks(values: list[float], width: int = SPARK_WIDTH) -> list[float]:
    """At most `width` values, each the highest of its run of consecutive ones: a long series fits a
    line, and no peak of fragility is averaged away."""
    if len(values) <= width:
        return values
    step = len(values) / width
    return [max(values[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]


def fragility_lines(ceasefire_id: str, points: list[tuple[datetime, float]]) -> list[str]:
    """A person's view of one ceasefire's series: a sparkline, then one line per point."""
    first, last = points[0][0], points[-1][0]
    head = (
        f"[bold]{escape(ceasefire_id)}[/]  {sparkline(peaks([index for _, index in points]))}  "
        f"({plural(len(points), 'point')}, {_utc(first)} → {_utc(last)}, now {points[-1][1]:.1f})"
    )
    return [head, *(f"  {_utc(at)}  {index:5.1f}  {sparkline([index])}" for at, index in points)]


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
