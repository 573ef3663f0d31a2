"""Throughput: each stage alone, the whole topology (one process; one process per stage), scale-out.

Method. Per stage: one topic set, used in turn. The reports topic is pre-loaded; `ingest` runs alone
until it has finished every report; then `correlate` runs alone on the accepted topic ingest filled,
then `alert` alone on the by-ceasefire topic correlate filled. Each stage is timed from its first
record received to its last record finished (the probe in bench/worker.py), and its figure is in
*reports* per second: reports in the mix for ingest, accepted reports for correlate and alert (the
alert stage reads IncidentBatch records that carry those reports' incident versions).
End to end and scale-out: workers started and settled on empty topics, then the reports loaded
(~50K/s, never the bottleneck); timed from the first report sent to the last IncidentBatch
finished by the alert stage. A stage that has not finished within its cap is reported with the
share it did finish (`complete: false`), never extrapolated silently.
Profiles (full mode): after the timed runs, each stage runs again under cProfile in a worker of its
own consumer group (so it reads the same input records from the start) for a fixed time; the profile covers its first record received to the end of that time (start-up excluded),
and a profiled run is never a throughput figure.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.procs import Worker, bench_settings, load, wait_for
from bench.workload import Workload
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.settings import Settings

SETTLE_SECONDS = 1.0  # after the warm-up: late joiners of the other stages' groups
CHAIN = (("ingest", Role.REPORTS, Role.BY_SOURCE), ("correlate", Role.ACCEPTED_BATCHES, Role.ACCEPTED_BATCHES),
         ("alert", Role.BY_CEASEFIRE, Role.BY_CEASEFIRE))


WARM_UP = [(f"warm-{p}".encode(), b"bench: warm-up, dead-lettered") for p in range(16)]


async def settle(settings: Settings, workers: list[Worker]) -> None:
    """Workers up and partitions assigned: warm-up records (garbage: validation only) are all finished."""
    await wait_for(lambda: all(w.probe_path.exists() for w in workers), 120, "workers up", workers)
    await load(settings.bootstrap, settings.topic(Role.REPORTS), WARM_UP)
    topic = settings.topic(Role.REPORTS)
    await wait_for(lambda: probe_sum(workers, "done", topic)[0] >= len(WARM_UP), 120, "warm-up", workers)
    await asyncio.sleep(SETTLE_SECONDS)


def probe_sum(workers: list[Worker], kind: str, topic: str) -> tuple[int, float, float]:
    """Count, earliest first and latest last of `kind` (received/done/sent) over workers' probes."""
    count, first, last = 0, float("inf"), 0.0
    for worker in workers:
        row = worker.probe().get(kind, {}).get(topic)
        if row:
            count += int(row[0])
            first, last = min(first, row[1]), max(last, row[2])
    return count, first, last


def stage_settings(base: Settings, stage: str) -> Settings:
    """A consumer group (and table namespace) per stage, on the shared topics."""
    return base.model_copy(update={"app_id": f"{base.app_id}-{stage}", "data_dir": base.data_dir / stage})


async def profile_stage(base: Settings, workdir: Path, stage: str, path: Path, seconds: float) -> dict[str, Any]:
    """One stage under cProfile, in its own consumer group, on the input the per-stage runs left."""
    settings = stage_settings(base, stage).model_copy(update={"app_id": f"{base.app_id}-{stage}-profile",
                                                               "data_dir": base.data_dir / f"{stage}-profile"})
    worker = Worker(settings, (stage,), workdir, name=f"profile-{stage}", profile=path).start()
    topic = base.topic(next(first for name, first, _ in CHAIN if name == stage))
    try:
        await wait_for(lambda: worker.done(topic)[0] >= 1, 120, f"profile {stage}: first record", [worker])
        await asyncio.sleep(seconds)
        await worker.stop_profile()
        received = probe_sum([worker], "received", topic)[0]
        done = worker.done(topic)[0]
    finally:
        worker.stop()
    return {"file": path, "seconds": seconds, "records_received": received, "records_done": int(done)}


async def per_stage(
    broker: str, workdir: Path, workload: Workload, cap_seconds: float, profile: tuple[Path, float] | None = None,
) -> dict[str, Any]:
    base = bench_settings(broker, workdir)
    await ensure_topics(base)
    await load(base.bootstrap, base.topic(Role.REPORTS), workload.records)
    results: dict[str, Any] = {}
    expected = {"reports": len(workload)}
    reports_in = len(workload)
    for stage, first_role, last_role in CHAIN:
        worker = Worker(stage_settings(base, stage), (stage,), workdir, name=f"stage-{stage}").start()
        first_topic, last_topic = base.topic(first_role), base.topic(last_role)
        want_first = expected[first_role.value]
        try:
            def finished(worker: Worker = worker, first_topic: str = first_topic, last_topic: str = last_topic,
                         want_first: int = want_first) -> bool:
                probe = worker.probe()
                done = probe.get("done", {})
                if done.get(first_topic, [0])[0] < want_first:
                    return False
                if last_topic == first_topic:
                    return True
                return done.get(last_topic, [0])[0] >= probe.get("sent", {}).get(last_topic, [1])[0]

            complete = True
            try:
                await wait_for(finished, cap_seconds, f"{stage} alone", [worker])
            except TimeoutError:
                complete = False
        finally:
            worker.stop()
        probe = worker.probe()
        _, first, _ = probe_sum([worker], "received", first_topic)
        done_count, _, last = probe_sum([worker], "done", last_topic)
        share = done_count / max(1, probe.get("sent", {}).get(last_topic, [want_first])[0]) if stage == "ingest" else (
            done_count / max(1, want_first))
        if complete:
            share = 1.0
        seconds = last - first
        results[stage] = {
            "reports": reports_in,
            "input_records": want_first,
            "seconds": round(seconds, 3),
            "complete": complete,
            "share_done": round(share, 4),
            "reports_per_second": round(reports_in * share / seconds, 1) if seconds > 0 else None,
            "sent": {topic.rsplit(".", 1)[-1]: int(v[0]) for topic, v in probe.get("sent", {}).items()},
        }
        if stage == "ingest":
            expected["accepted"] = results[stage]["sent"].get("accepted", 0)
            expected["accepted_batches"] = results[stage]["sent"].get("accepted_batches", 0)
            reports_in = expected["accepted"]
        elif stage == "correlate":
            expected["by_ceasefire"] = results[stage]["sent"].get("by_ceasefire", 0)
            results[stage]["incident_versions_per_second"] = round(
                results[stage]["sent"].get("incidents", 0) / seconds, 1)
        else:
            results[stage]["incident_versions_in"] = results["correlate"]["sent"].get("incidents", 0)
    if profile is not None:  # (path stem, seconds): one profile per stage, `<stem>.<stage>.prof`
        stem, seconds = profile
        results["profiles"] = {
            stage: await profile_stage(base, workdir, stage, stem.with_suffix(f".{stage}.prof"), seconds)
            for stage, _, _ in CHAIN
        }
    return results


async def topology(
    broker: str, workdir: Path, workload: Workload, layout: list[tuple[str, ...]], per_group: bool, cap_seconds: float,
    partitions: int = 4,
) -> dict[str, Any]:
    """Run `layout` (one tuple of stages per worker process), load the reports, time them through."""
    base = bench_settings(broker, workdir, partitions=partitions)
    await ensure_topics(base)
    workers = []
    for i, stages in enumerate(layout):
        settings = stage_settings(base, "-".join(stages)) if per_group else base
        settings = settings.model_copy(update={"data_dir": settings.data_dir / f"w{i}"})
        workers.append(Worker(settings, stages, workdir, name=f"topo-{'-'.join(stages)}-{i}").start())
    try:
        await settle(base, workers)
        loaded = time.time()
        await load(base.bootstrap, base.topic(Role.REPORTS), workload.records)
        topics = {role: base.topic(role) for role in Role}

        def finished() -> bool:
            if probe_sum(workers, "done", topics[Role.REPORTS])[0] < len(workload) + len(WARM_UP):
                return False
            for role in (Role.BY_SOURCE, Role.ACCEPTED_BATCHES, Role.BY_CEASEFIRE):
                if probe_sum(workers, "done", topics[role])[0] < probe_sum(workers, "sent", topics[role])[0]:
                    return False
            return True

        complete = True
        try:
            await wait_for(finished, cap_seconds, "topology", workers, every=0.1)
        except TimeoutError:
            complete = False
    finally:
        for worker in workers:
            worker.stop()
    first = loaded  # the warm-up records were received earlier: time from the first real send
    done_batches, _, last = probe_sum(workers, "done", topics[Role.BY_CEASEFIRE])
    sent_batches = probe_sum(workers, "sent", topics[Role.BY_CEASEFIRE])[0]
    # reports correlated (accepted batches done / sent, times accepted / valid), then alerted (batches)
    correlated = (probe_sum(workers, "done", topics[Role.ACCEPTED_BATCHES])[0]
                  / max(1, probe_sum(workers, "sent", topics[Role.ACCEPTED_BATCHES])[0])
                  * probe_sum(workers, "sent", topics[Role.ACCEPTED])[0] / max(1, workload.valid))
    share = 1.0 if complete else done_batches / max(1, sent_batches) * correlated
    seconds = last - first
    return {
        "layout": [list(s) for s in layout],
        "partitions": partitions,
        "reports": len(workload),
        "seconds": round(seconds, 3),
        "load_started_after_first_worker_s": round(loaded - workers[0].started_at, 2),
        "complete": complete,
        "share_done": round(share, 4),
        "reports_per_second": round(len(workload) * share / seconds, 1) if seconds > 0 else None,
        "incident_versions": probe_sum(workers, "sent", topics[Role.INCIDENTS])[0],
    }
