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
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.ingest.validate import Reason
from services.runtime.context import Context
from services.runtime.post import post_lines
from services.runtime.runner import broker_for, run_worker, with_free_web_port
from services.runtime.settings import PROJECT_ROOT, Settings

DEMO_SCENARIO = PROJECT_ROOT / "deploy" / "demo" / "scenario.jsonl"
DEMO_PACE_SECONDS = 20.0
OUTCOMES = ("accepted", "duplicate", "dead_lettered")


def run_all(settings: Settings, stages: Sequence[str], demo: bool, live: bool) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded = settings.broker is None
    with broker_for(with_free_web_port(settings), log_path=settings.data_dir / "broker.log") as s:
        if embedded:
            # A memory-only broker is a new cluster each time: local table state from an earlier
            # run would be wrong for it, so this run gets a fresh state directory.
            s = s.model_copy(update={"data_dir": Path(tempfile.mkdtemp(prefix="run-", dir=settings.data_dir))})
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


def render(ctx: Context, counts: dict[str, float], rates: dict[str, float], reasons: dict[str, float]) -> Group:
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
    where = Text(
        f"broker {s.broker}   metrics http://{s.web_host}:{s.web_port}/metrics   Ctrl-C stops everything",
        style="dim",
    )
    return Group(Panel.fit(Group(table, dead), title="ceasefire-monitor"), where)


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
