"""The wiring: one Faust app carrying the stages named on the command line.

Faust settings that matter on the embedded broker (docs/broker.md): a short session timeout (the
broker holds a JoinGroup for half of it), at-least-once (no idempotent producer there), explicit topic
creation, raw bytes on every topic (models are decoded in `codec`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

import faust

from services.runtime import allocator, fixes
from services.runtime.collectors import StateCollector
from services.runtime.context import Context
from services.runtime.kafka_security import faust_credentials

Installer = Callable[[faust.App, Context], None]

# Stage name (as on the command line) → module with `install(app, ctx)`; imported only when named.
STAGES: dict[str, str] = {
    "ingest": "services.ingest.agent",
    "correlate": "services.correlate.agent",
    "alert": "services.alert.agent",
    "archive": "services.archive.agent",
}


AGENTLESS = frozenset({"archive"})  # stages with no Faust agent: their own Kafka consumers


def faust_group(app_id: str, stages: Sequence[str]) -> str:
    """The Faust app id (its consumer group). A worker running only agentless stages subscribes to no
    topic of the stages: on the embedded broker it cannot join the group of workers that do (every
    join answered InconsistentGroupProtocol, and Faust waits for ever: docs/broker.md, G1), and it has
    nothing to take from that group, so it gets a group of its own."""
    return f"{app_id}.archive" if set(stages) <= AGENTLESS else app_id


def archive_group(app_id: str) -> str:
    """The consumer group of the archive's own consumer (services/archive/writer.py)."""
    return f"{app_id}-archive"


def create_app(ctx: Context, stages: Sequence[str]) -> faust.App:
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    s = ctx.settings
    if s.broker is None:
        raise ValueError("no broker URL: start the embedded broker first or set CEASEFIRE_BROKER")
    app = fixes.create_app(
        faust_group(s.app_id, stages),
        prometheus=ctx.prometheus,
        sensor_prefix="ceasefire_faust",
        broker=s.broker,
        broker_credentials=faust_credentials(s),
        store=s.store,
        datadir=str(s.data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        broker_session_timeout=s.session_timeout_seconds,
        broker_heartbeat_interval=s.heartbeat_seconds,
        consumer_auto_offset_reset="earliest",
        topic_partitions=s.partitions,
        topic_replication_factor=s.replication_factor,
        topic_allow_declare=s.create_topics,  # off: the topic init made the changelogs (deploy/kafka/init.sh)
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=s.web_port != 0,
        web_bind=s.web_host,
        web_host=s.web_host,
        web_port=s.web_port or 6066,
        # Only our routes (the read API, served by the archive) and /metrics: Faust's own views would
        # list the tables and read any table entry (/table/…) and answer 500 for a topic route (/router/…).
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        consumer_max_fetch_size=8 * 1024 * 1024,
        # Events an agent may hold unprocessed (Faust's default). At 65,536 a lagging stage could hold
        # tens of thousands of decoded events ahead of itself (not measured apart: see allocator.py
        # for what the soak run's growth really was).
        stream_buffer_maxsize=4096,
        broker_max_poll_records=5000,
        producer_acks=-1,  # all in-sync replicas (Faust's default, said here: production's min ISR is 2)
        producer_linger_ms=0,  # Faust's default; 5 ms cost every awaited send 7 ms instead of 0.7 (docs/performance.md)
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=4 * 1024 * 1024,
        fetch_max_wait_ms=s.fetch_max_wait_ms,
        # Faust's RocksDB defaults (64 MB memtables x3 and a 2 GB block cache per partition store)
        # are sized for a dedicated server; 4 partitions of 3 tables would allow gigabytes. The cache
        # and the memtables' total are the worker's, shared by every partition (store_memory).
        table_options={"write_buffer_size": s.rocksdb_write_buffer_mb << 20, "max_write_buffer_number": 2},
        store_memory=fixes.StoreMemory(s.rocksdb_block_cache_mb, s.rocksdb_memtables_mb) if s.store.startswith("rocksdb") else None,
    )
    allocator.fix_mmap_threshold()

    @app.timer(allocator.TRIM_EVERY_SECONDS)
    async def give_back_memory() -> None:
        allocator.trim()

    ctx.prometheus.register(StateCollector(app, ctx))
    for name in dict.fromkeys(stages):
        installer: Installer = importlib.import_module(STAGES[name]).install
        installer(app, ctx)
    if "alert" in stages:  # the alert stream to Alertmanager, when CEASEFIRE_ALERTMANAGER_URL is set
        importlib.import_module("services.notify.agent").install(app, ctx)
    return app
