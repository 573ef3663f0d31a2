"""Processes the harness drives: worker processes with a probe, RSS sampling, loading topics.

No pytest here: `make bench` must run without the test tooling.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.runtime.settings import PROJECT_ROOT, Settings

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def bench_settings(broker_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """A topic set and consumer group of their own; web off (the probe replaces scraping)."""
    settings = Settings(broker=broker_url, web_port=0, store="rocksdb://").isolated("b")
    return settings.model_copy(update={"data_dir": data_dir / settings.app_id, **overrides})


def settings_env(settings: Settings) -> dict[str, str]:
    return {**settings.environment(os.environ), "PYTHONPATH": str(PROJECT_ROOT)}


def rss_mb(pid: int) -> float:
    """Resident set size now, from /proc (no psutil needed)."""
    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_KB / 1024
    except (OSError, IndexError):
        return 0.0


@dataclass
class Worker:
    """One `python -m bench.worker` process; `stages` may be ("peer",) for the peer baseline."""

    settings: Settings
    stages: tuple[str, ...]
    workdir: Path
    name: str = "worker"
    profile: Path | None = None  # cProfile from the first record received to `stop_profile()`
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    probe_path: Path = field(init=False)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.probe_path = self.workdir / f"{self.name}-{tag}.probe.json"
        self.log_path = self.workdir / f"{self.name}-{tag}.log"

    def start(self) -> Worker:
        profiling = ["--profile", str(self.profile)] if self.profile is not None else []
        command = [sys.executable, "-m", "bench.worker", str(self.probe_path), *profiling, *self.stages]
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        self.process = subprocess.Popen(
            command,
            env=settings_env(self.settings),
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def probe(self) -> dict[str, Any]:
        try:
            return orjson.loads(self.probe_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {"done": {}, "sent": {}}

    def done(self, topic: str) -> list[float]:
        return self.probe()["done"].get(topic, [0, 0.0, 0.0])

    def sent(self, topic: str) -> int:
        return int(self.probe()["sent"].get(topic, [0])[0])

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {tail}")

    async def stop_profile(self, timeout: float = 30.0) -> None:
        """Ask the worker to write its profile now (the window ends here, shutdown excluded)."""
        assert self.profile is not None
        stop = self.profile.with_suffix(".stop")
        stop.touch()
        try:
            await wait_for(self.profile.exists, timeout, f"{self.name}: profile written", [self])
        finally:
            stop.unlink(missing_ok=True)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


async def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    workers: Sequence[Worker] = (),
    every: float = 0.05,
    tick: Callable[[], None] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            worker.check_alive()
        if tick is not None:
            tick()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(every)


async def load(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]]) -> float:
    """Produce `records` as fast as the broker takes them; returns records/s (the producer's rate)."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1024 * 1024, max_request_size=4 * 1024 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(records) / (time.perf_counter() - started)


async def topic_size(bootstrap: str, topic: str) -> int:
    """Records in `topic`, by the fetch high watermark (the broker's ListOffsets answer is wrong)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 10
        while not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
            partitions = consumer.partitions_for_topic(topic)
            if time.monotonic() > deadline:
                return 0
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while any(consumer.highwater(tp) is None for tp in tps):
            await consumer.getmany(timeout_ms=100, max_records=1)
        return sum(consumer.highwater(tp) or 0 for tp in tps)
    finally:
        await consumer.stop()


async def read_timestamps(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None, float]]:
    """(key, value, broker-side record timestamp in s) of every record of `topic`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20, max_partition_fetch_bytes=8 << 20
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[tuple[bytes | None, bytes | None, float]] = []
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=20000)
            for messages in batch.values():
                out.extend((m.key, m.value, m.timestamp / 1000) for m in messages)
            caught = True
            for tp in tps:
                highwater = consumer.highwater(tp)
                caught = caught and highwater is not None and await consumer.position(tp) >= highwater
            if caught and not batch:
                return out
    finally:
        await consumer.stop()
