"""Memory while many reports over many days of event time pass through, then recovery from that state.

Memory: one worker runs `ingest correlate` (the stages that hold state with an event-time retention:
dedup 14 days, correlation 6 h; the alert stage is left out because at its measured rate it would
need hours for this volume — see the alert throughput). Reports are loaded as fast as the broker
takes them; every 0.5 s the harness samples the worker's and the broker's RSS (/proc) and the
reports the worker has finished.

Recovery, on the state that run left: the pipeline idle, a commit interval waited, the worker is
SIGKILLed. Then:
1. restart with local state kept: seconds from process start to its first processed record (a
   garbage record, loaded before the start, that only the validate step touches: no state change);
   it finishes whatever the capped memory run left, goes idle, is SIGKILLed, and its local RocksDB
   state is read: the state before the kill;
2. local state wiped, restart: the same figure, now including the rebuild of every
   table from its changelog; changelog records ÷ (that time − the kept-state time) is the rebuild rate;
3. stopped, local state read again and compared, table by table, with the state before the kill.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import rocksdict

from bench.procs import Worker, bench_settings, load, rss_mb, topic_size, wait_for
from bench.workload import Workload
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.settings import Settings

SAMPLE_SECONDS = 0.5
CHUNK = 50_000
SENTINEL = (None, b"bench: a record only validation sees")
TABLES = ("dedup", "correlation")


def read_state(data_dir: Path) -> dict[str, dict[bytes, bytes]]:
    """Every RocksDB partition store under `data_dir`, read-only: {store name: {key: value}}."""
    state: dict[str, dict[bytes, bytes]] = {}
    for path in sorted(data_dir.rglob("*.db")):
        options = rocksdict.Options(raw_mode=True)
        db = rocksdict.Rdict(str(path), options=options, access_type=rocksdict.AccessType.read_only())
        try:
            state[path.name] = {k: v for k, v in db.items() if k != b'"~fence"' and k != b"~fence"}
        finally:
            db.close()
    return state


def compare(before: dict[str, dict[bytes, bytes]], after: dict[str, dict[bytes, bytes]]) -> dict[str, Any]:
    keys_before = sum(len(v) for v in before.values())
    keys_after = sum(len(v) for v in after.values())
    merged_before = {(s, k): v for s, d in before.items() for k, v in d.items()}
    merged_after = {(s, k): v for s, d in after.items() for k, v in d.items()}
    missing = sum(1 for k in merged_before if k not in merged_after)
    extra = sum(1 for k in merged_after if k not in merged_before)
    differ = sum(1 for k, v in merged_before.items() if k in merged_after and merged_after[k] != v)
    return {"equal": merged_before == merged_after, "entries_before": keys_before, "entries_after": keys_after,
            "missing": missing, "extra": extra, "different": differ}


async def memory_and_recovery(broker_url: str, broker_pid: int, workdir: Path, workload: Workload,
                              cap_seconds: float) -> dict[str, Any]:
    settings = bench_settings(broker_url, workdir)
    await ensure_topics(settings)
    reports = settings.topic(Role.REPORTS)
    worker = Worker(settings, ("ingest", "correlate"), workdir, name="memory").start()
    samples: list[tuple[float, int, float, float]] = []  # (t, reports done, worker MB, broker MB)
    begun = time.time()

    def sample() -> None:
        if not samples or time.time() - samples[-1][0] - begun >= SAMPLE_SECONDS:
            done = int(worker.done(reports)[0])
            samples.append((time.time() - begun, done, rss_mb(worker.pid), rss_mb(broker_pid)))

    try:
        await wait_for(worker.probe_path.exists, 120, "memory worker up", [worker])
        await asyncio.sleep(3)
        for i in range(0, len(workload), CHUNK):  # keep only a few chunks ahead of the worker
            await load(settings.bootstrap, reports, workload.records[i : i + CHUNK])
            await wait_for(lambda i=i: worker.done(reports)[0] >= i - 2 * CHUNK, cap_seconds, "memory run", [worker],
                           every=0.1, tick=sample)

        def finished() -> bool:
            probe = worker.probe()
            if probe["done"].get(reports, [0])[0] < len(workload):
                return False
            return all(probe["done"].get(settings.topic(r), [0])[0] >= probe["sent"].get(settings.topic(r), [0])[0]
                       for r in (Role.BY_SOURCE, Role.ACCEPTED))

        complete = True
        try:
            await wait_for(finished, cap_seconds - (time.time() - begun), "memory run", [worker], every=0.1, tick=sample)
        except TimeoutError:
            complete = False
        sample()
        count, first, last = worker.done(reports)
        processed = {"reports": int(count), "seconds": round(last - first, 1), "complete": complete,
                     "reports_per_second": round(count / max(1e-9, last - first), 1)}
        worker.kill()
    finally:
        worker.kill()
    memory = {
        **processed,
        "event_days": workload.days,
        "worker_peak_rss_mb": round(max(s[2] for s in samples), 1),
        "broker_peak_rss_mb": round(max(s[3] for s in samples), 1),
        "samples": [[round(t, 1), n, round(w, 1), round(b, 1)] for t, n, w, b in samples],
    }
    recovery = await _recovery(settings, workdir)
    return {"memory": memory, "recovery": recovery}


async def _first_record_after_start(settings: Settings, workdir: Path, name: str, cap: float) -> tuple[Worker, float]:
    await load(settings.bootstrap, settings.topic(Role.REPORTS), [SENTINEL])
    worker = Worker(settings, ("ingest", "correlate"), workdir, name=name).start()
    reports = settings.topic(Role.REPORTS)
    await wait_for(lambda: worker.done(reports)[0] >= 1, cap, f"{name}: first record", [worker])
    return worker, worker.done(reports)[1] - worker.started_at


async def _idle(worker: Worker, settings: Settings, quiet_s: float = 3.0) -> None:
    """Everything loaded is finished and nothing moved for `quiet_s`; then one commit interval."""
    topics = [settings.topic(r) for r in (Role.BY_SOURCE, Role.ACCEPTED)]

    def idle() -> bool:
        probe = worker.probe()
        drained = all(probe["done"].get(t, [0])[0] >= probe["sent"].get(t, [0])[0] for t in topics)
        newest = max((row[2] for row in probe["done"].values()), default=0.0)
        return drained and time.time() - newest > quiet_s

    await wait_for(idle, 1800, "idle before the kill", [worker], every=0.2)
    await asyncio.sleep(4)


async def _recovery(settings: Settings, workdir: Path) -> dict[str, Any]:
    # The memory run may have been cut at its cap: the kept-state restart finishes the rest, and the
    # state compared is the one this restarted worker holds once idle.
    worker, kept_s = await _first_record_after_start(settings, workdir, "restart-kept", 300)
    await _idle(worker, settings)
    worker.kill()
    before = read_state(settings.data_dir)
    changelog = {t: await topic_size(settings.bootstrap, f"{settings.app_id}-{t}-changelog") for t in TABLES}
    shutil.rmtree(settings.data_dir)
    worker, wiped_s = await _first_record_after_start(settings, workdir, "restart-wiped", 1500)
    await _idle(worker, settings)
    worker.stop()
    after = read_state(settings.data_dir)
    records = sum(changelog.values())
    rebuild_s = max(1e-3, wiped_s - kept_s)
    return {
        "kept_state_first_record_s": round(kept_s, 2),
        "wiped_state_first_record_s": round(wiped_s, 2),
        "changelog_records": changelog,
        "rebuild_seconds": round(rebuild_s, 2),
        "rebuild_records_per_second": round(records / rebuild_s, 1),
        "state": compare(before, after),
    }
