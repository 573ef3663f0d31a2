"""The `ceasefire` command: run, worker, broker, post (names are a contract: see README)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from services.runtime.broker import BrokerError, EmbeddedBroker
from services.runtime.settings import Settings

ALL_STAGES = ("ingest", "correlate", "alert")


def _settings(broker: str | None, **overrides: object) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if broker:
        values["broker"] = broker if "://" in broker else f"kafka://{broker}"
    return Settings(**values)


def _fail(message: str) -> None:
    click.echo(f"ceasefire: {message}", err=True)
    sys.exit(2)


@click.group()
def main() -> None:
    """ceasefire-monitor: ceasefire violation reports in, incidents, alerts and fragility out."""


@main.command()
@click.option("--port", type=int, default=0, help="listen port (default: CEASEFIRE_BROKER_PORT or a free one)")
def broker(port: int) -> None:
    """Run the embedded broker (Tansu, memory only) in the foreground until Ctrl-C."""
    settings = Settings()
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)  # taken by sigtimedwait below, never by a handler
    try:
        with EmbeddedBroker(port=port or settings.broker_port) as running:
            click.echo(f"broker listening: {running.url}  (export CEASEFIRE_BROKER={running.url})")
            while signal.sigtimedwait(stop, 0.5) is None:
                code = running.exited()
                if code is not None:  # the broker is gone: say so and exit, so a supervisor acts
                    _fail(f"the embedded broker on {running.url} exited (code {code})")
    except BrokerError as exc:
        _fail(str(exc))


@main.command()
@click.argument("services", nargs=-1, required=True, type=click.Choice(ALL_STAGES))
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER)")
@click.option("--web-port", type=int, help="web server port for /metrics (default: CEASEFIRE_WEB_PORT)")
@click.option("--loglevel", default="info", show_default=True)
def worker(services: tuple[str, ...], broker_url: str | None, web_port: int | None, loglevel: str) -> None:
    """Run the named services only (scale out by starting more workers)."""
    from services.runtime.runner import run_worker

    settings = _settings(broker_url, web_port=web_port)
    if settings.broker is None:
        _fail("worker needs a broker: pass --broker or set CEASEFIRE_BROKER (see `ceasefire broker`)")
    try:
        sys.exit(run_worker(settings, services, loglevel=loglevel))
    except BrokerError as exc:
        _fail(str(exc))


@main.command()
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER, else an embedded broker)")
@click.option("--demo/--no-demo", default=False, help="feed the bundled demo scenario")
@click.option("--live/--no-live", default=True, help="show the live view (off: plain logs)")
def run(broker_url: str | None, demo: bool, live: bool) -> None:
    """All services in one process, with the embedded broker unless one is named."""
    from services.console.live import run_all

    settings = _settings(broker_url)
    try:
        sys.exit(run_all(settings, ALL_STAGES, demo=demo, live=live))
    except BrokerError as exc:
        _fail(str(exc))


@main.command()
@click.argument("file", type=click.File("rb"))
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER)")
@click.option(
    "--sign", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="sign each record with this key file (its name is the key id, its content the secret)",
)
def post(file: click.utils.LazyFile, broker_url: str | None, key_file: Path | None) -> None:
    """Publish JSON Lines reports (FILE or - for stdin) to the ingest topic; print how many were sent."""
    from services.console.post import post_lines
    from services.ingest.signature import read_key_file

    settings = _settings(broker_url)
    if settings.broker is None:
        _fail("post needs a broker: pass --broker or set CEASEFIRE_BROKER")
    try:
        key = None if key_file is None else read_key_file(key_file)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    lines = [line.rstrip(b"\r\n") for line in file if line.strip()]
    try:
        sent = asyncio.run(post_lines(settings, lines, key=key))
    except BrokerError as exc:
        _fail(str(exc))
    signed = "" if key is None else f", signed with key {key[0]}"
    click.echo(f"sent {sent} report{'' if sent == 1 else 's'} to {settings.topic_reports}{signed}")


@main.command("report-status")
@click.argument("source")
@click.argument("report_id")
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER)")
@click.option("--json", "as_json", is_flag=True, help="print the standing as JSON (as GET /reports/SOURCE/REPORT_ID)")
def report_status(source: str, report_id: str, broker_url: str | None, as_json: bool) -> None:
    """What became of one report: accepted, duplicate (of what), dead-lettered (every reason), retracted;
    its current revision and the incident it is in. Exit 1 when no record names it."""
    from schemas.source import load_sources, spelling
    from services.console.status import find_standing, print_standing
    from services.console.terminal import terminal_console

    settings = _need_broker(broker_url)
    spelled = spelling(load_sources(settings.sources_path), source)
    found = None

    async def lookup() -> None:
        nonlocal found
        found = await find_standing(settings, spelled, report_id)

    _read(lookup)
    sys.exit(print_standing(terminal_console(), found, spelled, report_id, as_json))


@main.command()
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER)")
@click.option("--follow", "-f", is_flag=True, help="keep printing new versions as they come")
@click.option("--ceasefire", "ceasefire_id", help="only this ceasefire")
@click.option("--status", type=click.Choice(["claimed", "mutual", "corroborated", "merged", "withdrawn"]), multiple=True)
@click.option("--json", "as_json", is_flag=True, help="print the records as JSON Lines")
@click.option("--explain", "explain_id", help="print why the reports of this incident were merged, as a tree, and each revised report's revisions")
def incidents(
    broker_url: str | None,
    follow: bool,
    ceasefire_id: str | None,
    status: tuple[str, ...],
    as_json: bool,
    explain_id: str | None,
) -> None:
    """Incidents as they are published: one line per version."""
    from services.console.terminal import show_incidents

    settings = _need_broker(broker_url)
    _read(lambda: show_incidents(settings, follow, ceasefire_id, set(status), as_json, explain_id))


@main.command()
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER)")
@click.option("--follow", "-f", is_flag=True, help="keep printing alerts as they come")
@click.option("--ceasefire", "ceasefire_id", help="only this ceasefire")
@click.option("--min-severity", type=click.Choice(["warning", "critical"]), default="warning", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the records as JSON Lines")
def alerts(broker_url: str | None, follow: bool, ceasefire_id: str | None, min_severity: str, as_json: bool) -> None:
    """Subscribe to the alert stream; each (fingerprint, version) printed once."""
    from services.console.terminal import show_alerts

    settings = _need_broker(broker_url)
    _read(lambda: show_alerts(settings, follow, ceasefire_id, min_severity, as_json))


@main.command()
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER)")
@click.option("--follow", "-f", is_flag=True, help="keep printing new points as they come")
@click.option("--ceasefire", "ceasefire_id", help="only this ceasefire")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d"]),
              help="only points at or after this event time (e.g. 2025-05-12T00:00:00+00:00)")
@click.option("--json", "as_json", is_flag=True, help="print the snapshots as JSON Lines")
def fragility(broker_url: str | None, follow: bool, ceasefire_id: str | None, since: datetime | None, as_json: bool) -> None:
    """The fragility index over event time: a sparkline and one line per point, or JSON Lines."""
    from services.console.terminal import show_fragility

    settings = _need_broker(broker_url)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    _read(lambda: show_fragility(settings, follow, ceasefire_id, since, as_json))


def _read(reading: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a reading command: a lost broker is one line and exit 2, Ctrl-C a quiet stop."""
    try:
        asyncio.run(reading())
    except BrokerError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        pass


def _need_broker(broker_url: str | None) -> Settings:
    settings = _settings(broker_url)
    if settings.broker is None:
        _fail("a broker is needed: pass --broker or set CEASEFIRE_BROKER")
    return settings


if __name__ == "__main__":
    main()
