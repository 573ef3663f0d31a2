"""A `--follow` client whose broker goes away says so in one line and exits 69, as a worker does
(README, `CEASEFIRE_BROKER_LOST_SECONDS`), instead of retrying for ever. Each case owns its broker."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.alert import Alert, Annotations, fingerprint
from schemas.topics import Role
from services.alert.rules import AlertEngine
from services.runtime.admin import ensure_topics
from services.runtime.broker import EmbeddedBroker
from services.runtime.settings import Settings
from services.runtime.watchdog import EXIT_BROKER_LOST
from tests.support.ceasefires import three_parties
from tests.support.incidents import incident
from tests.support.kafka import produce
from tests.support.worker import isolated_settings, settings_env

LOST = 4.0  # CEASEFIRE_BROKER_LOST_SECONDS here
T0 = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)


def a_record(command: str) -> tuple[Role, bytes]:
    """One record the command prints at once with --follow: proof that it is following."""
    if command == "incidents":
        return Role.INCIDENTS, incident().model_dump_json().encode()
    if command == "fragility":
        return Role.FRAGILITY, AlertEngine(three_parties("abc")).fragility().model_dump_json().encode()
    labels = {"alertname": "CeasefireViolation", "ceasefire": "abc", "severity": "warning", "sector": "Poonch"}
    alert = Alert(fingerprint=fingerprint(labels), labels=labels, annotations=Annotations(summary="s", description=""),
                  status="firing", starts_at=T0, updated_at=T0, version=1)
    return Role.ALERTS, alert.model_dump_json().encode()


@pytest.mark.parametrize("command", ["alerts", "incidents", "fragility"])
async def test_a_follow_client_gives_up_on_a_lost_broker_in_one_line(tmp_path: Path, command: str) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    client = None
    try:
        settings: Settings = isolated_settings(broker.url, tmp_path / "state", broker_lost_seconds=LOST)
        await ensure_topics(settings)
        role, value = a_record(command)
        await produce(settings.bootstrap, settings.topic(role), [(None, value)])
        client = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.console.cli", command, "--follow",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=settings_env(settings),
        )
        assert client.stdout is not None and client.stderr is not None
        assert await asyncio.wait_for(client.stdout.readline(), 60), "the client prints the record it follows"
        assert broker.process is not None
        broker.process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(client.wait(), LOST + 20) == EXIT_BROKER_LOST
        lines = (await client.stderr.read()).decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ceasefire: the broker at"), lines
    finally:
        if client is not None and client.returncode is None:
            client.kill()
            await client.wait()
        broker.stop()
