"""Memory while as many reports as fit in a time slice pass through, then recovery from that state.

Memory: one worker runs `ingest correlate` (the stages that hold state with an event-time retention:
dedup 14 days, correlation 6 h plus 14 days of remembered identities; the alert stage is left out: at
its rate it would take the slice alone). The caller sizes the workload to fit the slice at the rate
this run measured, spread over 30 days of event time like the 1,000,000-report target, so retention
and expiry run as they would; it is *not* 1,000,000 reports, and the page says so. Reports are loaded
a few chunks ahead of the worker; every 0.5 s the harness samples the worker's and the broker's RSS
(/proc) and the reports finished. The projection to 1,000,000 reports is a straight line through the
samples of the second half of the reports: an upper bound, since retention caps what is held.

Recovery. The memory worker is SIGKILLed where the slice ends (mid-stream if it had not finished).
   The last tenth of the reports is held back from the memory run and loaded after it: kill 1 comes
   when half of it is done, so it always lands mid-stream.
1. Kill 1: its local RocksDB is compared with its changelogs read to the fetch high watermark.
2. Restart with local state kept: seconds from process start to its first finished record, and
   Faust's own recovery time (only the changelog tail after the persisted offset is read). It
   finishes what was left, goes idle, one commit interval passes, and it is SIGKILLed (kill 2).
3. The state before the kill is the changelogs folded to their high watermark (what any new owner
   rebuilds); the local RocksDB at kill 2 is compared with it as well.
4. Local state wiped, restart: the full rebuild (recovery seconds; changelog records ÷ that is the
   rebuild rate); idle; stopped cleanly; its RocksDB is compared, key by key, with step 3.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.procs import Worker, bench_settings, load, rss_mb, wait_for
from bench.workload import START, THEATRES, Workload
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.settings import Settings

SAMPLE_SECONDS = 0.5
CHUNK = 5_000
SENTINEL = (None, b"bench: a record only validation sees")
TABLES = ("dedup", "correlation")
SKIP_KEYS = {b"~fence", b'"~fence"', b"__faust\0offset__"}  # fence tombstones; Faust's own offset entry
TARGET_REPORTS = 1_000_000
JOIN_GRACE_SECONDS = 10.0
CRASH_SHARE = 0.1  # the last tenth of the reports: loaded after the memory run, the kill lands halfway through  # the slice is sized for processing; the group join comes on top
MIN_REPORTS_TO_PROJECT = 20_000
RESTART_CAP_S = 600.0  # a restart after a kill rebuilds every changelog record: minutes at 1,000,000 reports
State = dict[tuple[str, int], dict[bytes, bytes]]  # (table, partition) -> key -> value


def read_state(data_dir: Path) -> State:
    """Every RocksDB partition store under `data_dir`, read-only."""
    state: State = {}
    for path in sorted(data_dir.rglob("*.db")):
        named = re.fullmatch(r"(.+)-(\d+)\.db", path.name)
        if named is None or named[1] not in TABLES:
            continue
        db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True),
                             access_type=rocksdict.AccessType.read_only())
        try:
            state[(named[1], int(named[2]))] = {k: v for k, v in db.items() if k not in SKIP_KEYS}
        finally:
            db.close()
    return state


async def changelog_state(bootstrap: str, app_id: str) -> tuple[State, dict[str, int]]:
    """The tables as their changelogs say, read to the fetch high watermark; and records per table."""
    state: State = {}
    records: dict[str, int] = {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20,
                                max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        await consumer.topics()  # metadata of every topic; assign() narrows it, so assign all at once
        table_of = {f"{app_id}-{table}-changelog": table for table in TABLES}
        tps = [TopicPartition(topic, p) for topic in table_of for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records = {table_of[topic]: 0 for topic in {tp.topic for tp in tps}}
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=20000)
            for tp, messages in batch.items():
                table = table_of[tp.topic]
                fold = state.setdefault((table, tp.partition), {})
                records[table] += len(messages)
                for m in messages:
                    if m.key in SKIP_KEYS:
                        continue
                    if m.value is None:
                        fold.pop(m.key, None)
                    else:
                        fold[m.key] = m.value
            caught = True
            for tp in tps:
                high = consumer.highwater(tp)
                caught = caught and high is not None and await consumer.position(tp) >= high
            if caught and not batch:
                break
    finally:
        await consumer.stop()
    return state, records


def _kind(table: str, key: bytes) -> str:
    """dedup: id / fp / ~watermark; correlation: r (report) / i (incident) / s (seen) / ~meta."""
    try:
        text = str(orjson.loads(key))  # the tables' str keys are stored JSON-encoded
    except orjson.JSONDecodeError:
        text = key.decode(errors="replace")
    if table == "dedup":
        return "dedup:" + text.split("/", 1)[-1].split("\x1f", 1)[0]
    return "correlation:" + (text.split("\x1f")[1] if text.count("\x1f") >= 1 else text)


def compare(reference: State, other: State) -> dict[str, Any]:
    """Key by key, per table and partition; what differs, by kind of entry, with a few examples."""
    ref = {(t, p, k): v for (t, p), d in reference.items() for k, v in d.items()}
    got = {(t, p, k): v for (t, p), d in other.items() for k, v in d.items()}
    kinds: dict[str, Counter[str]] = {"missing": Counter(), "extra": Counter(), "different": Counter()}
    examples: dict[str, list[str]] = {"missing": [], "extra": [], "different": []}

    def note(what: str, key: tuple[str, int, bytes], detail: str = "") -> None:
        kinds[what][_kind(key[0], key[2])] += 1
        if len(examples[what]) < 4:
            examples[what].append(f"{key[0]}-{key[1]} {key[2].decode(errors='replace')!r}{detail}"[:300])

    for key, value in ref.items():
        if key not in got:
            note("missing", key)
        elif got[key] != value:
            note("different", key, f": {value.decode(errors='replace')[:100]} → {got[key].decode(errors='replace')[:100]}")
    for key in got.keys() - ref.keys():
        note("extra", key)
    return {
        "equal": ref == got,
        "entries_reference": len(ref),
        "entries_other": len(got),
        **{what: sum(counter.values()) for what, counter in kinds.items()},
        "by_kind": {what: dict(counter) for what, counter in kinds.items() if counter},
        "examples": {what: ex for what, ex in examples.items() if ex},
    }


def projection(samples: list[tuple[float, int, float, float]]) -> dict[str, Any]:
    """Least squares over the samples of the second half of the reports (after start-up): MB per 100K reports, and
    the straight line out to 1,000,000 reports (an upper bound: retention caps what is held)."""
    if not samples or samples[-1][1] < MIN_REPORTS_TO_PROJECT:
        return {"note": f"fewer than {MIN_REPORTS_TO_PROJECT:,} reports: start-up dominates, no projection"}
    tail = [s for s in samples if s[1] >= samples[-1][1] // 2]
    if len(tail) < 3 or tail[-1][1] == tail[0][1]:
        return {}
    out: dict[str, Any] = {}
    for name, column in (("worker", 2), ("broker", 3)):
        xs, ys = [s[1] for s in tail], [s[column] for s in tail]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
        out[f"{name}_mb_per_100k_reports"] = round(slope * 100_000, 1)
        out[f"{name}_projected_rss_mb_at_1m"] = round(ys[-1] + slope * (TARGET_REPORTS - xs[-1]), 0)
    return out


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
        await wait_for(worker.probe_path.exists, 120, "memory worker up", [worker], tick=sample)
        deadline = time.time() + cap_seconds + JOIN_GRACE_SECONDS
        cut = int(len(workload) * (1 - CRASH_SHARE))  # the rest is loaded for the crash: kill 1 lands mid-stream
        complete = True
        try:
            for i in range(0, cut, CHUNK):  # keep only a few chunks ahead of the worker
                await load(settings.bootstrap, reports, workload.records[i : min(i + CHUNK, cut)])
                await wait_for(lambda i=i: worker.done(reports)[0] >= i - 2 * CHUNK, deadline - time.time(),
                               "memory run", [worker], every=0.1, tick=sample)

            def finished() -> bool:
                probe = worker.probe()
                if probe["done"].get(reports, [0])[0] < cut:
                    return False
                return all(probe["done"].get(settings.topic(r), [0])[0] >= probe["sent"].get(settings.topic(r), [0])[0]
                           for r in (Role.BY_SOURCE, Role.ACCEPTED_BATCHES))

            await wait_for(finished, deadline - time.time(), "memory run", [worker], every=0.1, tick=sample)
        except TimeoutError:
            complete = False
        sample()
        count, first, last = worker.done(reports)
        processed = {"reports": int(count), "reports_loaded": cut, "seconds": round(last - first, 1),
                     "complete": complete, "reports_per_second": round(count / max(1e-9, last - first), 1)}
        if complete:
            await load(settings.bootstrap, reports, workload.records[cut:])
            half = cut + (len(workload) - cut) // 2
            await wait_for(lambda: worker.done(reports)[0] >= half, 120, "crash point", [worker], every=0.02)
    finally:
        worker.kill()  # kill 1: wherever the slice ended
    memory = {
        **processed,
        "event_days": workload.days,
        "event_days_covered": round(workload.days * min(1.0, count / max(1, len(workload))), 2),
        "worker_peak_rss_mb": round(max(s[2] for s in samples), 1),
        "broker_peak_rss_mb": round(max(s[3] for s in samples), 1),
        "projection": projection(samples),
        "samples": [[round(t, 1), n, round(w, 1), round(b, 1)] for t, n, w, b in samples],
    }
    recovery = await _recovery(settings, workdir, killed_busy=True)
    return {"memory": memory, "recovery": recovery}


async def _start_and_first_record(
    settings: Settings, workdir: Path, name: str, cap: float, extra: Sequence[tuple[bytes | None, bytes]] = ()
) -> tuple[Worker, float]:
    await load(settings.bootstrap, settings.topic(Role.REPORTS), [SENTINEL, *extra])
    worker = Worker(settings, ("ingest", "correlate"), workdir, name=name).start()
    reports = settings.topic(Role.REPORTS)
    await wait_for(lambda: worker.done(reports)[0] >= 1, cap, f"{name}: first record", [worker])
    return worker, worker.done(reports)[1] - worker.started_at


def fresh_report(name: str) -> tuple[bytes | None, bytes]:
    """A valid report no run has sent: after a clean restart it is the first the correlate stage sees,
    so the time to its correlation says when the restarted worker correlates again (its ceasefire's
    state built), not only when it validates."""
    theatre = THEATRES[0]
    doc = {
        "report_id": f"bench-{name}-{uuid.uuid4().hex[:12]}",
        "source": "un.unmogip",
        "source_party": "NEUTRAL",
        "accused_party": theatre.parties[0],
        "ceasefire_id": theatre.ceasefire_id,
        "observed_at": (START + timedelta(days=30)).isoformat(),
        "location": {"lat": theatre.box[0], "lon": theatre.box[1], "precision_km": 2},
        "violation_type": "small_arms",
        "casualties": {"killed": 0, "injured": 0},
        "description": "Bench: the first report after a clean restart.",
    }
    return theatre.ceasefire_id.encode(), orjson.dumps(doc)


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records of `topics` the consumer group has not committed yet: the fetch high watermark minus the
    committed offset, per partition (the embedded broker's ListOffsets answer is wrong)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                fetch_max_wait_ms=20)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)  # no group join: read the group's offsets, never commit
        committed = {tp: (await consumer.committed(tp)) or 0 for tp in tps}
        for tp, offset in committed.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + 10
        while any(consumer.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100, max_records=1)
        return sum(max(0, (consumer.highwater(tp) or 0) - committed[tp]) for tp in tps)
    finally:
        await consumer.stop()


async def _idle(worker: Worker, settings: Settings, quiet_s: float = 1.5) -> None:
    """Everything loaded is finished and nothing moved for `quiet_s`, and the group has committed every
    record of its input topics. The probe alone is not enough after a kill: the restarted worker's
    counts of records done include the dead worker's backlog, which its counts of records sent do not."""
    topics = [settings.topic(r) for r in (Role.REPORTS, Role.BY_SOURCE, Role.ACCEPTED_BATCHES)]

    def idle() -> bool:
        probe = worker.probe()
        drained = all(probe["done"].get(t, [0])[0] >= probe["sent"].get(t, [0])[0] for t in topics[1:])
        newest = max((row[2] for row in probe["done"].values()), default=0.0)
        return drained and time.time() - newest > quiet_s

    deadline = time.monotonic() + 600
    while True:
        await wait_for(idle, max(1.0, deadline - time.monotonic()), "idle before the kill", [worker], every=0.2)
        if await group_lag(settings.bootstrap, settings.app_id, topics) == 0:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("idle before the kill: the group still has uncommitted input")
        await asyncio.sleep(1.0)
    await asyncio.sleep(3.0)


async def _recovery(settings: Settings, workdir: Path, killed_busy: bool) -> dict[str, Any]:
    log_1, _ = await changelog_state(settings.bootstrap, settings.app_id)
    kill_1 = compare(log_1, read_state(settings.data_dir))
    worker, kept_s = await _start_and_first_record(settings, workdir, "restart-kept", RESTART_CAP_S)
    await _idle(worker, settings)
    kept_recovery = worker.probe().get("recovery_seconds")
    worker.kill()  # kill 2, idle
    local_2 = read_state(settings.data_dir)
    log_2, changelog = await changelog_state(settings.bootstrap, settings.app_id)
    kill_2 = compare(log_2, local_2)
    shutil.rmtree(settings.data_dir)
    worker, wiped_s = await _start_and_first_record(settings, workdir, "restart-wiped", 600)
    await _idle(worker, settings)
    wiped_recovery = worker.probe().get("recovery_seconds")
    worker.stop()  # a clean stop: the next start keeps the local state (runner.prepare_local_state)
    after = read_state(settings.data_dir)
    worker, clean_s = await _start_and_first_record(
        settings, workdir, "restart-clean", RESTART_CAP_S, [fresh_report("restart-clean")]
    )
    accepted = settings.topic(Role.ACCEPTED_BATCHES)
    await wait_for(lambda: worker.done(accepted)[0] >= 1, RESTART_CAP_S, "restart-clean: first correlation", [worker])
    clean_correlation_s = worker.done(accepted)[1] - worker.started_at
    clean_recovery = worker.probe().get("recovery_seconds")
    worker.stop()
    records = sum(changelog.values())
    return {
        "killed_while_busy": killed_busy,
        # After a SIGKILL the runtime rebuilds from the changelogs on purpose (docs/broker.md, "Local
        # state after a crash"); the local-state fast path is a restart after a clean stop.
        "clean_restart_first_record_s": round(clean_s, 2),
        # ... and to the first batch the correlate stage processed (its ceasefire's state built)
        "clean_restart_first_correlation_s": round(clean_correlation_s, 2),
        "clean_restart_recovery_s": clean_recovery and round(clean_recovery, 2),
        "kept_state_first_record_s": round(kept_s, 2),
        "kept_state_recovery_s": kept_recovery and round(kept_recovery, 2),
        "wiped_state_first_record_s": round(wiped_s, 2),
        "wiped_state_recovery_s": wiped_recovery and round(wiped_recovery, 2),
        "changelog_records": changelog,
        "rebuild_records_per_second": round(records / wiped_recovery, 1) if wiped_recovery else None,
        # The bar: the rebuilt tables equal the changelogs read to their high watermark before the kill.
        "state": compare(log_2, after),
        # Where a SIGKILLed worker's own RocksDB stood against its changelogs (Faust writes RocksDB first).
        "local_vs_changelog_at_kill_1": kill_1,
        "local_vs_changelog_at_kill_2": kill_2,
        "rebuilt_vs_local_at_kill_2": compare(local_2, after),
    }
