"""The two baselines every throughput figure is compared with, measured in the same run.

- limit: raw aiokafka consume → orjson → produce (`getmany` batches of up to 5,000), in its own
  process on uvloop like the workers: the practical ceiling of one Python process for one hop.
- peer: a bare Faust agent forwarding each event (bench/worker.py `peer_hook`), built by the same
  app factory with the same settings (fetch wait, session timeout, uvloop) as our workers.

Both read the same records (the benchmark's report mix) from a reports topic of the same partitions.
`python -m bench.baselines limit BOOTSTRAP SOURCE TARGET COUNT` prints the limit loop's JSON result.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.procs import Worker, bench_settings, load, wait_for
from bench.workload import Workload
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.settings import PROJECT_ROOT


async def limit_loop(bootstrap: str, source: str, target: str, count: int, fetch_wait_ms: int) -> dict[str, float]:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"limit-{source}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_wait_ms,
        max_partition_fetch_bytes=8 << 20,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await consumer.start()
    await producer.start()
    seen, first = 0, 0.0
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            pending = []
            for messages in batch.values():
                for m in messages:
                    try:
                        out = orjson.dumps(orjson.loads(m.value)) if m.value else b""
                    except orjson.JSONDecodeError:
                        out = m.value  # the garbage share of the mix: forwarded as is
                    pending.append(await producer.send(target, out, key=m.key))
            if pending and not first:
                first = time.time()
            await asyncio.gather(*pending)
            seen += len(pending)
            await consumer.commit()
        last = time.time()
    finally:
        await producer.stop()
        await consumer.stop()
    return {"records": seen, "seconds": last - first, "per_second": seen / (last - first), "first": first, "last": last}


async def measure_limit(broker: str, workdir: Path, workload: Workload) -> dict[str, Any]:
    settings = bench_settings(broker, workdir)
    await ensure_topics(settings)
    await load(settings.bootstrap, settings.topic(Role.REPORTS), workload.records)
    command = [
        sys.executable, "-m", "bench.baselines", "limit", settings.bootstrap,
        settings.topic(Role.REPORTS), settings.topic(Role.ACCEPTED), str(len(workload)), str(settings.fetch_max_wait_ms),
    ]
    out = await asyncio.to_thread(subprocess.run, command, capture_output=True, cwd=PROJECT_ROOT, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"limit loop failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(out.stdout)


async def measure_peer(broker: str, workdir: Path, workload: Workload) -> dict[str, Any]:
    """Pre-loaded topic; from the agent's first record in to its last record out."""
    settings = bench_settings(broker, workdir)
    await ensure_topics(settings)
    await load(settings.bootstrap, settings.topic(Role.REPORTS), workload.records)
    worker = Worker(settings, ("peer",), workdir, name="peer").start()
    topic = settings.topic(Role.REPORTS)
    try:
        await wait_for(lambda: worker.done(topic)[0] >= len(workload), 300, "peer forwarded all", [worker])
    finally:
        worker.stop()
    count, first, last = worker.done(topic)
    first_in = worker.probe().get("received", {}).get(topic, [0, first])[1]
    return {"records": count, "seconds": last - first_in, "per_second": count / (last - first_in)}


def main(argv: list[str]) -> None:
    _, bootstrap, source, target, count, wait_ms = argv
    result = uvloop.run(limit_loop(bootstrap, source, target, int(count), int(wait_ms)))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
