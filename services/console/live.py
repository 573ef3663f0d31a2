"""`ceasefire run`: every stage in one process, the demo feeder, and a live terminal view (rich)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import faust
from pydantic import SecretStr
from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from sqlalchemy.engine import make_url

from schemas.incident import Severity
from services.console.board import (
    Screen,
    changes_table,
    firing_now,
    firing_table,
    latest_changes,
    status_line,
)
from services.console.post import post_lines
from services.ingest.validate import Reason
from services.runtime.collectors import COMPONENTS
from services.runtime.context import Context
from services.runtime.runner import broker_for, run_worker, with_free_web_port
from services.runtime.settings import PROJECT_ROOT, Settings

DEMO_SCENARIO = PROJECT_ROOT / "deploy" / "demo" / "scenario.jsonl"
DEMO_PACE_SECONDS = 20.0
OUTCOMES = ("accepted", "duplicate", "dead_lettered")


def archive_shown(settings: Settings) -> str:
    """Where the archive is, for the status line: a SQLite file's path; a database's host and name
    only (its URL may hold a password)."""
    url = make_url(settings.archive_address)
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=True)


def run_all(settings: Settings, stages: Sequence[str], demo: bool, live: bool) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded = settings.broker is None
    with broker_for(with_free_web_port(settings), log_path=settings.data_dir / "broker.log") as s:
        if embedded:
            # A memory-only broker is a new cluster each time: local table state from an earlier
            # run would be wrong for it, so this run gets a fresh state directory.
            # The archive stays where the desk looks for it (the data dir, not this run's state): an
            # earlier run's archive, of another cluster, is moved aside by the archive service.
            fresh = Path(tempfile.mkdtemp(prefix="run-", dir=settings.data_dir))
            s = s.model_copy(update={"data_dir": fresh, "archive_url": s.archive_url or SecretStr(s.archive_address)})
        hooks = []
        if demo:
            hooks.append(_demo_feeder)
        if live:
            hooks.append(_live_view)
        try:
            return run_worker(
                s, stages, hooks, loglevel="warning" if live else "info",
                logfile=settings.data_dir / "run.log" if live else None,
            )
        finally:
            if embedded:
                shutil.rmtree(s.data_dir, ignore_errors=True)


def _demo_feeder(app: faust.App, ctx: Context) -> None:
    @app.task
    async def feed_demo() -> None:
        lines = [line for line in DEMO_SCENARIO.read_bytes().splitlines() if line.strip()]
        await post_lines(ctx.settings, lines, pace_seconds=DEMO_PACE_SECONDS)


class Rates:
    """Per-outcome rate over the last few seconds, from counter samples."""

    def __init__(self, horizon: float = 5.0) -> None:
        self.samples: deque[tuple[float, dict[str, float]]] = deque()
        self.horizon = horizon

    def update(self, counts: dict[str, float]) -> dict[str, float]:
        now = time.monotonic()
        self.samples.append((now, counts))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.horizon:
            self.samples.popleft()
        then, old = self.samples[0]
        span = max(now - then, 1e-9)
        return {k: (counts[k] - old.get(k, 0.0)) / span if now > then else 0.0 for k in counts}


def _counts(ctx: Context) -> tuple[dict[str, float], dict[str, float]]:
    get = ctx.prometheus.get_sample_value
    outcomes = {
        o: get("ceasefire_reports_total", {"outcome": o, "reason": ""}) or 0.0 for o in ("accepted", "duplicate")
    }
    reasons = {
        r.value: get("ceasefire_reports_total", {"outcome": "dead_lettered", "reason": r.value}) or 0.0
        for r in Reason
    }
    outcomes["dead_lettered"] = sum(reasons.values())
    return outcomes, reasons


def _fragility(ctx: Context) -> Table | None:
    alert = ctx.stages.get("alert")
    if alert is None or not alert.snapshots:
        return None
    table = Table(title="fragility (0–100) and its components (0–1)")
    table.add_column("ceasefire")
    table.add_column("index", justify="right")
    for name in COMPONENTS:
        table.add_column(name, justify="right")
    table.add_column("as of (event time)")
    for ceasefire_id, snap in sorted(alert.snapshots.items()):
        style = "bold red" if snap.index >= 75 else "yellow" if snap.index >= 50 else "green"
        parts = [f"{getattr(snap.components, n):.2f}" for n in COMPONENTS]
        table.add_row(ceasefire_id, f"[{style}]{snap.index:.1f}[/]", *parts, snap.as_of.strftime("%Y-%m-%d %H:%M"))
    return table


def _sectors(ctx: Context) -> Table | None:
    correlate = ctx.stages.get("correlate")
    if correlate is None or not correlate.correlators:
        return None
    counts: dict[tuple[str, str], dict[str, int]] = {}
    worst: dict[tuple[str, str], int] = {}
    for ceasefire_id, correlator in correlate.correlators.items():
        for incident in correlator.incidents():
            for sector in incident.sectors or ["(no sector)"]:
                key = (ceasefire_id, sector)
                row = counts.setdefault(key, {"claimed": 0, "mutual": 0, "corroborated": 0})
                row[incident.status] = row.get(incident.status, 0) + 1
                worst[key] = max(worst.get(key, 0), int(incident.severity))
    table = Table(title="incidents held, per sector")
    for column in ("ceasefire", "sector", "claimed", "mutual", "corroborated", "worst rung"):
        table.add_column(column, justify="right" if column not in ("ceasefire", "sector") else "left")
    for (ceasefire_id, sector), row in sorted(counts.items(), key=lambda kv: -sum(kv[1].values()))[:12]:
        rung = Severity(worst[(ceasefire_id, sector)]).name.lower()
        table.add_row(ceasefire_id, sector, *(str(row[s]) for s in ("claimed", "mutual", "corroborated")), rung)
    return table


def _alerts(ctx: Context) -> list[Table]:
    """The alerts firing now (as each ceasefire's engine holds them) and the latest changes."""
    alert = ctx.stages.get("alert")
    if alert is None:
        return []
    firing = firing_now(a for engine in list(alert.engines.values()) for a in engine.firing())
    fragility = {ceasefire_id: snap.index for ceasefire_id, snap in alert.snapshots.items()}
    changes = latest_changes(alert.recent)
    return [firing_table(firing, fragility), *([changes_table(changes)] if changes else [])]


def render(ctx: Context, counts: dict[str, float], rates: dict[str, float], reasons: dict[str, float]) -> Screen:
    s = ctx.settings
    table = Table(title="reports", expand=False)
    table.add_column("outcome")
    table.add_column("total", justify="right")
    table.add_column("per second", justify="right")
    for outcome in OUTCOMES:
        table.add_row(outcome, f"{counts[outcome]:,.0f}", f"{rates[outcome]:,.1f}")
    table.add_row("[bold]read[/bold]", f"[bold]{sum(counts.values()):,.0f}[/bold]", f"{sum(rates.values()):,.1f}")
    dead = Table(title="dead letters by reason")
    dead.add_column("reason")
    dead.add_column("total", justify="right")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        if n:
            dead.add_row(reason, f"{n:,.0f}")
    where = status_line([
        ("broker", str(s.broker)), ("metrics", f"http://{s.web_host}:{s.web_port}/metrics"), ("archive", archive_shown(s)),
    ])
    pipeline = [t for t in (_fragility(ctx), _sectors(ctx)) if t is not None] + _alerts(ctx)
    return Screen(Panel.fit(Group(Columns([table, dead]), *pipeline), title="ceasefire-monitor"), where)


def _live_view(app: faust.App, ctx: Context) -> None:
    @app.task
    async def show_live() -> None:
        rates = Rates()
        counts, reasons = _counts(ctx)
        with Live(render(ctx, counts, rates.update(counts), reasons), console=Console(), auto_refresh=False) as live:
            while True:
                await asyncio.sleep(0.5)
                counts, reasons = _counts(ctx)
                live.update(render(ctx, counts, rates.update(counts), reasons), refresh=True)
