"""The `ceasefire` command: run, worker, broker, post (names are a contract: see README)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import ValidationError

from services.runtime.broker import BrokerError, EmbeddedBroker
from services.runtime.settings import Settings

ALL_STAGES = ("ingest", "correlate", "alert", "archive")


def _settings(broker: str | None = None, **overrides: object) -> Settings:
    """The settings, or exit 2 naming each bad one (a half-configured TLS/SASL connection included)."""
    values = {k: v for k, v in overrides.items() if v is not None}
    if broker:
        values["broker"] = broker if "://" in broker else f"kafka://{broker}"
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        _fail(f"bad configuration: {problems}")


def _fail(message: str) -> NoReturn:
    click.echo(f"ceasefire: {message}", err=True)
    sys.exit(2)


@click.group()
def main() -> None:
    """ceasefire-monitor: ceasefire violation reports in, incidents, alerts and fragility out."""


@main.command()
@click.option("--port", type=int, default=0, help="listen port (default: CEASEFIRE_BROKER_PORT or a free one)")
def broker(port: int) -> None:
    """Run the embedded broker (Tansu, memory only) in the foreground until Ctrl-C."""
    settings = _settings()
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
@click.option("--wait", is_flag=True, help="then say what became of each record: accepted, duplicate or dead-lettered (exit 1 if any was)")
@click.option("--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="with --wait: seconds to wait for every record to be ruled on (exit 2 if not)")
def post(file: click.utils.LazyFile, broker_url: str | None, key_file: Path | None, wait: bool, timeout: float) -> None:
    """Publish JSON Lines reports (FILE or - for stdin) to the ingest topic; print how many were sent."""
    from services.console.post import post_lines
    from services.console.views import plural
    from services.ingest.signature import read_key_file

    settings = _settings(broker_url)
    if settings.broker is None:
        _fail("post needs a broker: pass --broker or set CEASEFIRE_BROKER")
    try:
        key = None if key_file is None else read_key_file(key_file)
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    lines = [(number, line.rstrip(b"\r\n")) for number, line in enumerate(file, 1) if line.strip()]
    signed = "" if key is None else f", signed with key {key[0]}"
    if wait:
        _post_and_wait(settings, lines, key, timeout, signed)
    try:
        sent = asyncio.run(post_lines(settings, [line for _, line in lines], key=key))
    except BrokerError as exc:
        _fail(str(exc))
    click.echo(f"sent {plural(sent, 'report')} to {settings.topic_reports}{signed}")


def _post_and_wait(settings: Settings, lines: list[tuple[int, bytes]], key: tuple[str, str] | None, timeout: float, signed: str) -> None:
    """`post --wait`: send, then one line per record on what became of it, a summary, and the exit code."""
    from services.console.terminal import terminal_console
    from services.console.verdicts import post_and_wait
    from services.console.views import plural

    try:
        verdicts = asyncio.run(post_and_wait(settings, lines, key, timeout))
    except BrokerError as exc:
        _fail(str(exc))
    console = terminal_console()
    console.print(f"sent {plural(len(lines), 'report')} to {settings.topic_reports}{signed}", markup=False)
    for line in verdicts.lines():
        console.print(line)
    console.print(verdicts.summary(timeout), markup=False)
    sys.exit(verdicts.exit_code())


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


def _event_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """RFC 3339 with an offset, as the read API takes it; a bare date is that day's start in UTC."""
    from services.archive.params import BadParameter, time_param

    if value is None:
        return None
    if len(value) == 10:
        value += "T00:00:00Z"
    try:
        return time_param({param.name or "time": [value]}, param.name or "time")
    except BadParameter as bad:
        raise click.BadParameter(bad.message) from None


@main.command()
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER); for --follow and --explain")
@click.option("--follow", "-f", is_flag=True, help="read the incidents topic and keep printing new versions as they come")
@click.option("--ceasefire", "ceasefire_id", help="only this ceasefire")
@click.option("--status", type=click.Choice(["claimed", "mutual", "corroborated", "merged", "withdrawn"]), multiple=True)
@click.option("--since", callback=_event_time, help="last observed at or after (RFC 3339, or a date: UTC)")
@click.option("--until", callback=_event_time, help="first observed before (RFC 3339, or a date: UTC)")
@click.option("--sector", "sectors", multiple=True, help="only incidents one of whose reports names this sector")
@click.option("--current", is_flag=True, help="one row per incident, its current version (default: every version)")
@click.option("--format", "output", type=click.Choice(["table", "json", "csv"]), default=None,
              help="table (default), JSON Lines, or CSV with ACLED-like columns (docs/archive.md)")
@click.option("--json", "as_json", is_flag=True, help="the same as --format json")
@click.option("--explain", "explain_id", help="print why the reports of this incident were merged, as a tree, and each revised report's revisions")
def incidents(
    broker_url: str | None,
    follow: bool,
    ceasefire_id: str | None,
    status: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    sectors: tuple[str, ...],
    current: bool,
    output: str | None,
    as_json: bool,
    explain_id: str | None,
) -> None:
    """Incidents from the archive (every version, or --current), filtered; --follow and --explain read
    the incidents topic instead."""
    output = output or ("json" if as_json else "table")
    if follow or explain_id:
        from services.console.terminal import show_incidents

        if output == "csv":
            _fail("--format csv reads the archive: leave out --follow and --explain")
        settings = _need_broker(broker_url)
        _read(lambda: show_incidents(settings, follow, ceasefire_id, set(status), output == "json", explain_id))
        return
    from services.console.history import print_incidents

    if since and until and until <= since:
        _fail("--until must be later than --since")
    sys.exit(print_incidents(_settings(broker_url), ceasefire_id, status, since, until, sectors, current, output))


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


@main.command("dead-letters")
@click.option("--broker", "broker_url", help="Kafka URL (default: CEASEFIRE_BROKER)")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d"]),
              help="only records dead-lettered at or after this time (e.g. 2025-05-12T00:00:00+00:00; UTC if no offset)")
@click.option("--reason", help="only records with this reason (e.g. not_json, schema, stale_revision)")
@click.option("--json", "as_json", is_flag=True, help="print JSON Lines, the original key and value in base64")
@click.option("--follow", "-f", is_flag=True, help="keep printing new dead letters as they come")
def dead_letters(broker_url: str | None, since: datetime | None, reason: str | None, as_json: bool, follow: bool) -> None:
    """Every rejected record: when, why in plain words, each problem, the report it names, its bytes."""
    from services.console.deadletters import REASON_WORDS, show_dead_letters

    settings = _need_broker(broker_url)
    if reason is not None and reason not in REASON_WORDS:
        _fail(f"no reason {reason!r}; the reasons are: {', '.join(sorted(REASON_WORDS))}")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    _read(lambda: show_dead_letters(settings, since, reason, as_json, follow))


def _read(reading: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a reading command: no broker at the start is one line and exit 2; a broker lost while
    reading one line and exit 69, as for a worker (README); Ctrl-C a quiet stop."""
    from services.console.follow import BrokerLost
    from services.runtime.watchdog import EXIT_BROKER_LOST

    try:
        asyncio.run(reading())
    except BrokerLost as exc:
        click.echo(f"ceasefire: {exc}", err=True)
        sys.exit(EXIT_BROKER_LOST)
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
