"""`ceasefire fragility` against the real broker: the published snapshots, each (ceasefire, as_of) once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.topics import Role
from services.alert.rules import AlertEngine
from services.runtime.admin import ensure_topics
from tests.support.ceasefires import three_parties
from tests.support.kafka import produce
from tests.support.worker import isolated_settings, settings_env

pytestmark = pytest.mark.asyncio
T0 = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)


def run(settings, *args: str) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run(
        [sys.executable, "-m", "services.console.cli", "fragility", *args],
        capture_output=True, text=True, timeout=60, check=False, env=settings_env(settings),
    )


async def test_the_series_as_published_each_point_once(broker, tmp_path: Path) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state")
    await ensure_topics(settings)
    base = AlertEngine(three_parties("abc")).fragility()
    points = [(0, 5.0), (1, 60.0), (1, 60.0), (2, 90.0)]  # the second hour repeated, as the heartbeat does
    records = [
        (b"abc", base.model_copy(update={"as_of": T0 + timedelta(hours=h), "index": i}).model_dump_json().encode())
        for h, i in points
    ]
    await produce(settings.bootstrap, settings.topic(Role.FRAGILITY), records)

    as_json = run(settings, "--json")
    assert as_json.returncode == 0, as_json.stderr
    indexes = [orjson.loads(line)["index"] for line in as_json.stdout.splitlines()]
    assert indexes == [5.0, 60.0, 90.0]

    since = run(settings, "--json", "--since", "2025-05-10T13:00:00+00:00")
    assert [orjson.loads(line)["index"] for line in since.stdout.splitlines()] == [60.0, 90.0]

    person = run(settings, "--ceasefire", "abc")
    assert person.returncode == 0, person.stderr
    assert "▁▅▇" in person.stdout and "3 points" in person.stdout  # 5, 60, 90 on the 0–100 scale
