"""A worker that starts on a backlog its group has already partly committed must commit all of it.

This is what every restart after a crash looks like: committed offsets above 0 and thousands of
records behind them. Faust seeks the stream partitions to their committed offsets *while* the
records fetched at resume are being handed to the streams; before the fix in MonitorApp, that seek
rewound Faust's read offsets under the hand-over, the next record looked like a jump, and the
already-delivered range was booked a second time as a "gap": each offset of it twice in the ack
list, so the commit crept forward one offset per commit interval (2.8 s) — lag stuck, nothing lost
(docs/broker.md, "Commit that creeps after a restart").

Each round is a fresh consumer group on the same topics: the race is a matter of timing, so a few
rounds make a regression show (without the fix, 4 runs of 4 failed, in round 0, 1 or 2). Processing
and committing are timed apart, so a slow machine makes the test slower, not flaky.
"""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.settings import Settings
from tests.support.kafka import eventually, produce
from tests.support.mixed import group_lag, mixed_stream, replica
from tests.support.worker import WorkerProcess, isolated_settings

RECORDS = 8_000
COMMITTED = 40  # per input partition: some work done, as when a worker died mid-stream
ROUNDS = 3
PROCESS_SECONDS = 120  # ~7,800 records; a healthy worker needs 10-30 s on 2 busy cores
# Once every record is processed, the next commit (every 2.8 s) must reach the end. The creeping
# commit needed one interval per duplicated offset (20-430 of them in the traces).
COMMIT_SECONDS = 15


async def commit_for_group(settings: Settings, group_id: str, offset: int) -> None:
    """Commit `offset` on every input partition for `group_id`, as a worker that died would have."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=group_id, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic(Role.REPORTS), p) for p in range(settings.partitions)]
        consumer.assign(tps)  # a manual assignment: the commit is made outside any group generation
        await consumer.commit({tp: OffsetAndMetadata(offset, "") for tp in tps})
    finally:
        await consumer.stop()


async def test_worker_on_a_committed_backlog_commits_all_of_it(broker, workers, tmp_path: Path) -> None:
    base = isolated_settings(broker.url, tmp_path / "state")
    await ensure_topics(base)
    stream = mixed_stream(RECORDS)
    await produce(base.bootstrap, base.topic(Role.REPORTS), stream.pairs)
    behind = len(stream.records) - base.partitions * COMMITTED  # records after the committed offsets

    for round_ in range(ROUNDS):
        # A new group on the same input: own internal topics and changelog, so rounds do not mix.
        settings = replica(base.isolated(f"r{round_}"), tmp_path / f"state-{round_}").model_copy(
            update={"topic_reports": base.topic_reports}
        )
        await ensure_topics(settings)
        await commit_for_group(settings, settings.app_id, COMMITTED)
        worker = WorkerProcess(settings, ("ingest",), tmp_path / f"worker-{round_}.log").start()
        workers.append(worker)
        await worker.wait_serving()

        async def processed_everything(w: WorkerProcess = worker) -> bool:
            return w.sum_metric("ceasefire_reports_total") >= behind

        async def committed_everything(s: Settings = settings) -> bool:
            return not any((await group_lag(s)).values())

        await eventually(processed_everything, timeout=PROCESS_SECONDS, what=f"round {round_}: all processed")
        try:
            await eventually(committed_everything, timeout=COMMIT_SECONDS, what="group caught up")
        except TimeoutError:
            raise AssertionError(f"round {round_}: commit stalled, lag {await group_lag(settings)}") from None
        worker.kill()
