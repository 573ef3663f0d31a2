"""`make soak`: minutes at a steady rate with two replicas of each stage, one replica SIGKILLed and
restarted every minute (issue 21). Not part of `make test`.

On the embedded broker: `ceasefire worker ingest|correlate|alert` twice each (separate processes in one
group, as the production stack runs them, each with its own local state). The bench workload (30 days'
density, ~10 % repeats, ~3 % garbage) is posted at `--rate` reports a second. Every `--kill-every`
seconds the next replica in turn is SIGKILLed and started again 5 s later on its own local state (a
container restart). Every 5 s the harness samples each worker's RSS (/proc) and the group's lag on every
stage input (fetch high watermark minus committed offset). After the load, it waits for the lag to reach
0, then checks the books: every posted record accepted, a duplicate or dead-lettered, exactly once.

Figures go to bench/results/soak-<utc time>.json and .md: per-minute lag and RSS, memory growth from the
second minute to the end (per stage, median of the replicas), books. Exit 1 if the books do not balance,
the lag does not come back to 0, or the lag in any minute exceeds `--max-lag-seconds` of load.

    python -m bench.soak --minutes 5 --rate 100
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.procs import rss_mb
from bench.workload import build
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.broker import EmbeddedBroker, free_port
from services.runtime.settings import PROJECT_ROOT, Settings

RESULTS = PROJECT_ROOT / "bench" / "results"
STAGES = ("ingest", "correlate", "alert")
INPUTS = (Role.REPORTS, Role.BY_SOURCE, Role.ACCEPTED_BATCHES, Role.BY_CEASEFIRE)
SAMPLE_SECONDS = 5.0
RESTART_AFTER_SECONDS = 5.0
PARTITIONS = 4


@dataclass
class Replica:
    name: str  # ingest-1, ingest-2, …
    stage: str
    settings: Settings
    log: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    def start(self) -> None:
        env = {**self.settings.environment(os.environ), "PYTHONPATH": str(PROJECT_ROOT)}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "services.console.cli", "worker", self.stage, "--loglevel", "warning"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def rss(self) -> float:
        return rss_mb(self.process.pid) if self.process is not None and self.process.poll() is None else 0.0


@dataclass
class Samples:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, elapsed: float, sent: int, lag: int, replicas: list[Replica]) -> None:
        rss = {r.name: round(r.rss, 1) for r in replicas}
        self.rows.append({"t": round(elapsed, 1), "sent": sent, "lag": lag, "rss_mb": rss})


async def group_lag(settings: Settings, consumer: AIOKafkaConsumer) -> int:
    """Records of every stage input not yet committed by the group (fetch high watermark: docs/broker.md)."""
    tps = [TopicPartition(settings.topic(role), p) for role in INPUTS for p in range(settings.partitions)]
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(0, (await consumer.position(tp)) - 1))
    ends: dict[TopicPartition, int] = {}
    while len(ends) < len(tps):
        await consumer.getmany(*[tp for tp in tps if tp not in ends], timeout_ms=200, max_records=1)
        ends.update({tp: hw for tp in tps if (hw := consumer.highwater(tp)) is not None})
    lag = 0
    async with _group_reader(settings) as reader:
        for tp in tps:
            lag += ends[tp] - ((await reader.committed(tp)) or 0)
    return lag


class _group_reader:  # noqa: N801 - used as a context manager name
    def __init__(self, settings: Settings) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.app_id, enable_auto_commit=False)

    async def __aenter__(self) -> AIOKafkaConsumer:
        await self.consumer.start()
        return self.consumer

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()


async def books(settings: Settings, posted: int) -> dict[str, int]:
    """Where each posted record ended: by its origin (partition, offset) in the reports topic."""
    places: dict[str, set[tuple[int, int]]] = {"accepted": set(), "duplicate": set(), "dead_lettered": set()}
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 << 20)
    await consumer.start()
    try:
        for role, place in ((Role.ACCEPTED, "accepted"), (Role.DUPLICATES, "duplicate"), (Role.DEAD_LETTERS, "dead_lettered")):
            tps = [TopicPartition(settings.topic(role), p) for p in range(settings.partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batch = await consumer.getmany(timeout_ms=300, max_records=20000)
                for messages in batch.values():
                    for m in messages:
                        places[place].add(_origin(role, m.value, dict(m.headers or ())))
                positions = [await consumer.position(tp) for tp in tps]
                if not batch and all(at >= (consumer.highwater(tp) or 0) for at, tp in zip(positions, tps, strict=True)):
                    break
    finally:
        await consumer.stop()
    every = set().union(*places.values())
    twice = sum(len(a & b) for a, b in itertools.combinations(places.values(), 2))
    return {"posted": posted, **{k: len(v) for k, v in places.items()}, "with_an_outcome": len(every), "booked_twice": twice}


def _origin(role: Role, value: bytes | None, headers: dict[str, bytes]) -> tuple[int, int]:
    if role == Role.DUPLICATES:
        origin = orjson.loads(value or b"{}")["origin"]
        return int(origin["partition"]), int(origin["offset"])
    if role == Role.DEAD_LETTERS:
        return int(headers["__connect.errors.partition"]), int(headers["__connect.errors.offset"])
    partition, offset = headers["ceasefire.origin"].decode().split(":")
    return int(partition), int(offset)


async def soak(minutes: float, rate: float, kill_every: float, workdir: Path) -> dict[str, Any]:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        base = Settings(broker=broker.url, partitions=PARTITIONS, store="rocksdb://").isolated("soak")
        await ensure_topics(base)
        replicas = [
            Replica(f"{stage}-{n}", stage, base.model_copy(update={"data_dir": workdir / f"{stage}-{n}", "web_port": free_port()}),
                    workdir / f"{stage}-{n}.log")
            for n in (1, 2) for stage in STAGES
        ]
        for replica in replicas:
            replica.start()
        workload = build(int(rate * minutes * 60), days=minutes * 60 * rate / 33_000)  # ~23 reports a minute of event time
        producer = AIOKafkaProducer(bootstrap_servers=base.bootstrap, linger_ms=5)
        lag_reader = AIOKafkaConsumer(bootstrap_servers=base.bootstrap, enable_auto_commit=False)
        await producer.start()
        await lag_reader.start()
        samples, began, sent, next_kill, victims = Samples(), time.monotonic(), 0, kill_every, itertools.cycle(replicas)
        next_sample, restarts = 0.0, []
        try:
            for key, value in workload.records:
                await producer.send(base.topic(Role.REPORTS), value, key=key)
                sent += 1
                elapsed = time.monotonic() - began
                ahead = sent / rate - elapsed
                if ahead > 0:
                    await asyncio.sleep(ahead)
                if elapsed >= next_kill:
                    victim = next(victims)
                    victim.kill()
                    restarts.append((elapsed + RESTART_AFTER_SECONDS, victim))
                    next_kill += kill_every
                for when, replica in [r for r in restarts if r[0] <= elapsed]:
                    replica.start()
                    restarts.remove((when, replica))
                if elapsed >= next_sample:
                    samples.add(elapsed, sent, await group_lag(base, lag_reader), replicas)
                    next_sample += SAMPLE_SECONDS
            await producer.flush()
            for _, replica in restarts:
                replica.start()
            drained_at = None
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                lag = await group_lag(base, lag_reader)
                samples.add(time.monotonic() - began, sent, lag, replicas)
                if lag == 0:
                    drained_at = time.monotonic() - began
                    break
                await asyncio.sleep(SAMPLE_SECONDS)
            ledger = await books(base, sent)
        finally:
            await producer.stop()
            await lag_reader.stop()
            for replica in replicas:
                replica.stop()
        return {
            "minutes": minutes, "rate": rate, "kill_every_s": kill_every, "records": sent,
            "kills": {r.name: r.kills for r in replicas},
            "load_seconds": round(sent / rate, 1), "drained_at_s": None if drained_at is None else round(drained_at, 1), "books": ledger, "samples": samples.rows,
        }


def summary(result: dict[str, Any], max_lag_seconds: float) -> tuple[str, bool]:
    rows = result["samples"]
    load_end = result["load_seconds"]
    during = [r for r in rows if r["t"] <= load_end]
    max_lag = max((r["lag"] for r in during), default=0)
    per_minute = {}
    for r in during:
        per_minute.setdefault(int(r["t"] // 60), []).append(r)
    growth = {}
    for stage in STAGES:
        def median_rss(r: dict[str, Any], stage: str = stage) -> float:
            values = [v for k, v in r["rss_mb"].items() if k.startswith(stage) and v > 0]
            return statistics.median(values) if values else 0.0
        after_first = [median_rss(r) for r in during if r["t"] >= 60] or [median_rss(r) for r in during]
        growth[stage] = (round(after_first[0], 1), round(after_first[-1], 1))
    b = result["books"]
    balanced = b["with_an_outcome"] == b["posted"] and b["booked_twice"] == 0
    bounded = max_lag <= result["rate"] * max_lag_seconds
    ok = balanced and bounded and result["drained_at_s"] is not None
    lines = [
        f"# Soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", "",
        f"{result['records']} records at {result['rate']:g}/s for {result['minutes']:g} min on the embedded broker; "
        f"two replicas of each stage; one SIGKILLed and restarted every {result['kill_every_s']:g} s "
        f"(kills: {result['kills']}).", "",
        f"- books: {b['posted']} posted, {b['accepted']} accepted + {b['duplicate']} duplicates + "
        f"{b['dead_lettered']} dead-lettered = {b['with_an_outcome']} with an outcome; {b['booked_twice']} with two"
        f" → {'balanced' if balanced else 'NOT BALANCED'}",
        f"- lag: at most {max_lag} records during the load ({max_lag / result['rate']:.1f} s of load; bound "
        f"{max_lag_seconds:g} s) → {'bounded' if bounded else 'NOT BOUNDED'}; back to 0 at {result['drained_at_s']} s "
        f"(load ended at {load_end} s)",
        "- RSS, median of a stage's replicas, from the second minute to the end of the load: "
        + ", ".join(f"{s} {a} → {z} MiB" for s, (a, z) in growth.items()),
        "", "| minute | max lag | " + " | ".join(sorted(rows[0]["rss_mb"])) + " |",
        "|---|---|" + "---|" * len(rows[0]["rss_mb"]),
    ]
    for minute, group in sorted(per_minute.items()):
        last = group[-1]["rss_mb"]
        lines.append(f"| {minute} | {max(r['lag'] for r in group)} | " + " | ".join(f"{last[k]:.0f}" for k in sorted(last)) + " |")
    return "\n".join(lines) + "\n", ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=100.0, help="reports a second")
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds between kills")
    parser.add_argument("--max-lag-seconds", type=float, default=30.0, help="lag bound, in seconds of load")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(os.environ["SOAK_DIR"]) if "SOAK_DIR" in os.environ else Path(tempfile.mkdtemp(prefix=f"soak-{stamp}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(soak(args.minutes, args.rate, args.kill_every, workdir))
    text, ok = summary(result, args.max_lag_seconds)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"soak-{stamp}.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    (RESULTS / f"soak-{stamp}.md").write_text(text)
    print(text)
    print(f"figures: bench/results/soak-{stamp}.json, .md; worker logs: {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
