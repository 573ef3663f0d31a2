"""Every report gets a receipt any worker can show: accepted (with its incident), duplicate (of what),
dead-lettered (every reason, the accepted revision still in force), retracted — through the read API
and `ceasefire report-status`, on the embedded broker."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from schemas.topics import Role
from tests.support.kafka import eventually, produce
from tests.support.reports import encode, report
from tests.support.worker import WorkerProcess, isolated_settings, settings_env


def get(worker: WorkerProcess, path: str) -> tuple[int, dict[str, Any]]:
    url = f"http://{worker.settings.web_host}:{worker.settings.web_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_receipts_for_accepted_duplicate_dead_lettered_and_retracted(broker, workers, tmp_path: Path) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state", partitions=2)
    worker = WorkerProcess(settings, ("ingest", "correlate", "archive"), tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving()
    first = report(report_id="kept", casualties={"killed": 1})
    records = [
        first,
        first,  # the same again: a repeat
        {**first, "report_id": "kept-again"},  # the same content under a new id: a resubmission
        {**first, "revision": 2, "casualties": {"killed": 3}},  # a correction
        {**first, "casualties": {"killed": 9}},  # revision 1 again, other content: stale
        {**first, "report_id": "gone", "observed_at": "2025-05-10T19:40:00+05:30"},  # not a resubmission of kept
        {**first, "report_id": "gone", "observed_at": "2025-05-10T19:40:00+05:30", "revision": 2, "status": "retracted",
         "retraction_reason": "duplicate filing"},
        {**first, "report_id": "broken", "casualties": {"killed": "three"}},  # dead-lettered by validation
        {**first, "source": "IN.ARMY", "report_id": "shouting", "source_party": "PK", "accused_party": "IN"},
    ]
    await produce(settings.bootstrap, settings.topic(Role.REPORTS), [(b"office", encode(d)) for d in records])

    async def settled() -> bool:
        return worker.sum_metric("ceasefire_reports_total") >= len(records) and get(worker, "/reports/in.army/gone")[1].get("outcome") == "retracted"

    await eventually(settled, timeout=60, what="every record ruled on")

    async def placed() -> bool:  # correlation takes revision 2 once event time passes it
        incident = get(worker, "/reports/in.army/kept")[1].get("incident")
        return incident is not None and incident["revision"] == 2

    await eventually(placed, timeout=60, what="the kept report's revision 2 placed in its incident")
    status, kept = get(worker, "/reports/in.army/kept")
    assert status == 200
    assert (kept["outcome"], kept["revision"], kept["repeats"]) == ("accepted", 2, 1)
    assert kept["incident"]["revision"] == 2 and kept["incident"]["incident_id"].startswith("inc-")
    assert [(r["reason"], r["revision"]) for r in kept["rejections"]] == [("stale_revision", 1)]

    status, again = get(worker, "/reports/IN.Army/kept-again")  # any case of the source
    assert (status, again["outcome"], again["duplicate_of"], again["rule"]) == (200, "duplicate", "kept", "resubmission")

    _, gone = get(worker, "/reports/in.army/gone")
    assert (gone["outcome"], gone["revision"], gone["retraction_reason"], gone["incident"]) == ("retracted", 2, "duplicate filing", None)

    _, broken = get(worker, "/reports/in.army/broken")
    assert broken["outcome"] == "dead_lettered" and broken["revision"] is None
    assert broken["rejections"][0]["problems"][0]["path"] == "$.casualties.killed"

    _, shouting = get(worker, "/reports/in.army/shouting")
    assert shouting["outcome"] == "dead_lettered" and shouting["rejections"][0]["reason"] == "party_mismatch"

    assert worker.sum_metric("ceasefire_revisions_total", kind="revised") == 1
    assert worker.sum_metric("ceasefire_revisions_total", kind="retracted") == 1
    assert get(worker, "/reports/in.army/never-sent")[0] == 404
    assert get(worker, "/reports/in.army/bad%20id")[0] == 400

    shown = subprocess.run(
        [sys.executable, "-m", "services.console.cli", "report-status", "in.army", "kept", "--json"],
        env=settings_env(settings), capture_output=True, timeout=60, check=True,
    )
    assert json.loads(shown.stdout)["outcome"] == "accepted"
    missing = subprocess.run(
        [sys.executable, "-m", "services.console.cli", "report-status", "in.army", "never-sent"],
        env=settings_env(settings), capture_output=True, timeout=60, check=False,
    )
    assert missing.returncode == 1
