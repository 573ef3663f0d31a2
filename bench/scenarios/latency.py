"""Latency at a steady rate: from a report's send to its first incident record and to its alert record.

One worker runs the whole topology, settled on empty topics. A paced producer sends the report mix
at `rate` reports/s (sends spread evenly, every 10 ms), noting each report's send time (wall clock,
the same clock as the broker-side CreateTime the worker's producer stamps on its records). Then:
- to incident: for each accepted report, the CreateTime of the first incident record listing it,
  minus its send time;
- to alert: for each alert record that starts an episode (the alert begins firing), its CreateTime
  minus the send time of the newest report its newest incident gained since the alert's previous
  record (`alert_delays`): the report that made it fire. Records that event time moves are not timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from bench.procs import Worker, bench_settings, read_timestamps, wait_for
from bench.scenarios.throughput import WARM_UP, probe_sum, settle, stage_settings
from bench.workload import Workload
from schemas.topics import Role
from services.runtime.admin import ensure_topics

TICK_SECONDS = 0.01


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"count": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99), "max_ms": round(ordered[-1] * 1000, 1)}


async def paced_send(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]], rate: float) -> dict[str, float]:
    """Send at `rate`/s; returns report_id → send time for the valid reports."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent_at: dict[str, float] = {}
    per_tick = rate * TICK_SECONDS
    start = time.monotonic()
    try:
        owed, i = 0.0, 0
        pending = []
        while i < len(records):
            owed += per_tick
            while owed >= 1 and i < len(records):
                key, value = records[i]
                now = time.time()
                pending.append(await producer.send(topic, value, key=key))
                if value[:1] == b"{":
                    with contextlib.suppress(orjson.JSONDecodeError, KeyError):
                        sent_at.setdefault(orjson.loads(value)["report_id"], now)
                owed -= 1
                i += 1
            tick_end = start + (i / rate)
            await asyncio.sleep(max(0.0, tick_end - time.monotonic()))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent_at


STAGES = ("ingest", "correlate", "alert")


async def measure(
    broker: str, workdir: Path, workload: Workload, rate: float, drain_cap: float = 120, per_stage: bool = False
) -> dict[str, Any]:
    """One worker for the whole topology, or (`per_stage`) one process per stage, as deployed."""
    settings = bench_settings(broker, workdir)
    await ensure_topics(settings)
    if per_stage:
        workers = [Worker(stage_settings(settings, s), (s,), workdir, name=f"latency-{int(rate)}-{s}").start()
                   for s in STAGES]
    else:
        workers = [Worker(settings, STAGES, workdir, name=f"latency-{int(rate)}").start()]
    try:
        await settle(settings, workers)
        begun = time.monotonic()
        sent_at = await paced_send(settings.bootstrap, settings.topic(Role.REPORTS), workload.records, rate)
        achieved = len(workload) / (time.monotonic() - begun)
        by_ceasefire = settings.topic(Role.BY_CEASEFIRE)

        def drained() -> bool:
            return probe_sum(workers, "done", settings.topic(Role.REPORTS))[0] >= len(workload) + len(WARM_UP) and probe_sum(
                workers, "done", by_ceasefire)[0] >= probe_sum(workers, "sent", by_ceasefire)[0]

        kept_up = True
        try:
            await wait_for(drained, drain_cap, "pipeline drained", workers, every=0.1)
        except TimeoutError:
            kept_up = False
        lag_at_end = time.time() - probe_sum(workers, "done", by_ceasefire)[2]
    finally:
        for worker in workers:
            worker.stop()
    accepted = await read_timestamps(settings.bootstrap, settings.topic(Role.ACCEPTED))
    accepted_at = {orjson.loads(value)["report_id"]: ts for _, value, ts in accepted}  # type: ignore[arg-type]
    incidents = await read_timestamps(settings.bootstrap, settings.topic(Role.INCIDENTS))
    alerts = await read_timestamps(settings.bootstrap, settings.topic(Role.ALERTS))
    first_seen: dict[str, float] = {}
    members: dict[str, list[str]] = {}
    for _, value, ts in incidents:
        doc = orjson.loads(value)  # type: ignore[arg-type]
        ids = [r["report_id"] for r in doc["reports"]]
        members.setdefault(doc["incident_id"], [])
        members[doc["incident_id"]] = list(dict.fromkeys(members[doc["incident_id"]] + ids))
        for report_id in ids:
            if report_id not in first_seen or ts < first_seen[report_id]:
                first_seen[report_id] = ts
    to_incident = [first_seen[r] - sent for r, sent in sent_at.items() if r in first_seen]
    # the two halves: ingest (send → accepted record) and correlate (accepted → incident record)
    to_accepted = [accepted_at[r] - sent for r, sent in sent_at.items() if r in accepted_at]
    accepted_to_incident = [first_seen[r] - accepted_at[r] for r in accepted_at if r in first_seen]
    to_alert = alert_delays(alerts, members, first_seen, sent_at)
    return {
        "processes": "one per stage" if per_stage else "one",
        "rate_asked": rate,
        "rate_achieved": round(achieved, 1),
        "reports": len(workload),
        "kept_up": kept_up,
        "seconds_behind_at_end": round(max(0.0, lag_at_end), 2) if not kept_up else 0.0,
        "to_incident": percentiles(to_incident),
        "to_accepted": percentiles(to_accepted),
        "accepted_to_incident": percentiles(accepted_to_incident),
        "to_alert": percentiles(to_alert),
        "reports_without_incident": sum(1 for r in sent_at if r not in first_seen and "-re" not in r),
    }


def alert_delays(
    alerts: list[tuple[bytes | None, bytes | None, float]],
    members: dict[str, list[str]],
    first_seen: dict[str, float],
    sent_at: dict[str, float],
) -> list[float]:
    """Send → alert for the alerts a report started: a firing record that begins an episode (the
    fingerprint's first record, or its first since it resolved), timed from the newest report its
    newest incident gained since the fingerprint's previous record (each report's first incident
    record). Other records move with event time as well as with reports (a repeat falls due, a count
    changes when a hold runs out) and would be timed from whatever report came last: before, the
    p99 was about the run's length."""
    delays: list[float] = []
    previous: dict[str, tuple[float, str]] = {}  # fingerprint -> CreateTime and status of its last record
    for _, value, ts in sorted(alerts, key=lambda alert: alert[2]):
        doc = orjson.loads(value)  # type: ignore[arg-type]
        since, before = previous.get(doc["fingerprint"], (float("-inf"), "resolved"))
        previous[doc["fingerprint"]] = ts, doc["status"]
        ids = doc["annotations"].get("incident_ids") or []
        if doc["status"] != "firing" or before != "resolved" or not ids:
            continue
        causes = [sent_at[r] for r in members.get(ids[0], [])
                  if r in sent_at and r in first_seen and since < first_seen[r] <= ts]
        if causes:
            delays.append(ts - max(causes))
    return delays


async def profile_paced(broker: str, workdir: Path, workload: Workload, rate: float, path: Path) -> dict[str, Any]:
    """The whole topology in one worker under cProfile while the report mix is sent at `rate`/s: where
    a paced run's time goes (the p99 bar is missed at 500/s). Never a latency figure: the profiler
    slows the worker ~2×, so this run falls behind where the unprofiled one keeps up."""
    settings = bench_settings(broker, workdir)
    await ensure_topics(settings)
    worker = Worker(settings, STAGES, workdir, name=f"latency-profile-{int(rate)}", profile=path).start()
    reports = settings.topic(Role.REPORTS)
    try:
        await settle(settings, [worker])
        began = time.monotonic()
        await paced_send(settings.bootstrap, reports, workload.records, rate)
        seconds = time.monotonic() - began
        await worker.stop_profile()
        done = worker.done(reports)[0]
    finally:
        worker.stop()
    return {"file": path, "seconds": round(seconds, 1), "rate": rate, "records_done": int(done)}

