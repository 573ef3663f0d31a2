"""Catch-up after an outage: a backlog read by a worker that starts after it, against the same reports
posted to a running worker (docs/event-time.md).

Backlog run: the reports are loaded while no worker runs (a 30-minute outage at 50 reports/s is
90,000 reports), then one worker (every stage) starts. Timed from its start: the backlog read (ingest
done with every record), correlated (the last incident version sent before the idle flush), and the
idle flush (every ingest partition idle, the reports held for the last partitions released). Its peak
RSS, sampled every 0.2 s, includes the reports correlate holds behind the low watermark.
Reference run: a worker started and settled first, then the same records loaded as fast as the broker
takes them (the live-paced run of the tests, at this size, would take the outage's 30 minutes).
Equality: the final incidents (report sets), alert episodes (fingerprint, start, end, severity) and the
fragility grid series of the two runs, up to the last report's event time.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.procs import Worker, bench_settings, load, read_timestamps, rss_mb, wait_for
from bench.scenarios.throughput import WARM_UP, probe_sum, settle
from bench.workload import Workload
from schemas.alert import Alert
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident
from schemas.report import AcceptedReport
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.settings import Settings

QUIET_SECONDS = 3.0  # nothing new sent for this long after the idle rule: the run is over


async def _outputs(settings: Settings) -> dict[str, Any]:
    def values(role: Role) -> list[bytes]:
        return [v for _, v, _ in rows[role] if v is not None]

    rows = {role: await read_timestamps(settings.bootstrap, settings.topic(role))
            for role in (Role.ACCEPTED, Role.INCIDENTS, Role.ALERTS, Role.FRAGILITY)}
    last: dict[str, datetime] = {}  # per ceasefire: after its last report, a quiet ceasefire's time runs on
    for value in values(Role.ACCEPTED):
        report = AcceptedReport.model_validate_json(value)
        last[report.ceasefire_id] = max(report.observed_at, last.get(report.ceasefire_id, report.observed_at))
    newest: dict[str, Incident] = {}
    for value in values(Role.INCIDENTS):
        incident = Incident.model_validate_json(value)
        if incident.incident_id not in newest or incident.version > newest[incident.incident_id].version:
            newest[incident.incident_id] = incident
    incidents = {frozenset((r.source, r.report_id) for r in i.reports) for i in newest.values() if i.status != "merged"}
    episodes: dict[tuple[str, datetime], tuple[datetime | None, str]] = {}
    for value in values(Role.ALERTS):
        alert = Alert.model_validate_json(value)
        if alert.updated_at <= last[alert.labels["ceasefire"]]:
            episodes[alert.fingerprint, alert.starts_at] = (alert.ends_at, alert.labels["severity"])
    series = {}
    for value in values(Role.FRAGILITY):
        snapshot = FragilitySnapshot.model_validate_json(value)
        if snapshot.kind == "grid" and snapshot.as_of <= last[snapshot.ceasefire_id]:
            series[snapshot.ceasefire_id, snapshot.as_of] = snapshot.index
    return {"incidents": incidents, "episodes": episodes, "series": series}


async def _run(broker: str, workdir: Path, workload: Workload, backlog: bool, cap: float) -> dict[str, Any]:
    settings = bench_settings(broker, workdir)
    await ensure_topics(settings)
    reports, incidents = settings.topic(Role.REPORTS), settings.topic(Role.INCIDENTS)
    if backlog:
        await load(settings.bootstrap, reports, workload.records)
    worker = Worker(settings, ("ingest", "correlate", "alert"), workdir, name="catchup").start()
    started, peak = time.time(), 0.0

    def sample() -> None:
        nonlocal peak
        peak = max(peak, rss_mb(worker.pid))

    try:
        if not backlog:
            await settle(settings, [worker])
            started = time.time()
            await load(settings.bootstrap, reports, workload.records)
        total = len(workload.records) + (0 if backlog else len(WARM_UP))
        await wait_for(lambda: probe_sum([worker], "done", reports)[0] >= total, cap, "backlog read", [worker], 0.2, sample)
        read_at = probe_sum([worker], "done", reports)[2]
        marks: list[float] = []

        def quiet() -> bool:
            sent, _, last = probe_sum([worker], "sent", incidents)
            marks.append(last)
            return sent > 0 and time.time() - last > settings.idle_seconds + QUIET_SECONDS

        await wait_for(quiet, cap, "idle flush", [worker], 0.2, sample)
        flushed_at = probe_sum([worker], "sent", incidents)[2]
    finally:
        worker.stop()
    out = await _outputs(settings)
    return {
        "reports": len(workload.records),
        "backlog_read_s": round(read_at - started, 2),
        "last_incident_s": round(flushed_at - started, 2),
        "worker_peak_rss_mb": round(peak, 1),
        "outputs": out,
    }


async def measure(broker: str, workdir: Path, workload: Workload, cap: float = 600) -> dict[str, Any]:
    backlog = await _run(broker, workdir, workload, True, cap)
    reference = await _run(broker, workdir, workload, False, cap)
    a, b = backlog.pop("outputs"), reference.pop("outputs")
    return {
        "backlog": backlog,
        "posted_to_a_running_worker": reference,
        "incidents": len(a["incidents"]),
        "alert_episodes": len(a["episodes"]),
        "fragility_points": len(a["series"]),
        "same_incidents": a["incidents"] == b["incidents"],
        "same_alert_episodes": a["episodes"] == b["episodes"],
        "same_fragility_series": a["series"] == b["series"],
    }
