"""The benchmark mix's accepted reports in the order the correlate stage reads them, without a broker.

For the pure engine benchmarks (bench/correlate_engine.py, bench/alert_engine.py): the mix as the
throughput scenarios build it, validated and deduplicated as ingest would, then interleaved as the
by-source partitions reach correlate (`order="mix"` keeps the mix's order instead).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from bench.workload import START, build
from schemas.ceasefire import Registry
from schemas.report import AcceptedReport
from services.ingest.batches import source_partition
from services.ingest.dedup import DedupState
from services.ingest.validate import Rules, validate
from services.runtime.settings import Settings
from services.store import MemoryStore

PARTITIONS = 4  # Settings.partitions: by-source partitions of ingest
CHUNK = 250  # accepted reports of one by-source partition in a row
INGESTED_AT = START + timedelta(days=1)  # fixed, so that runs are identical (it is in every published record)


def accepted_stream(registry: Registry, order: str, records: int) -> list[AcceptedReport]:
    """The reports ingest would accept from the `records`-record mix, in correlate's order."""
    settings = Settings()
    rules = Rules(registry, max_bytes=settings.max_report_bytes, max_future=settings.max_future)
    dedup = DedupState(MemoryStore(), settings.dedup_retention_hours * 3600)
    reports: list[AcceptedReport] = []
    for _, value in build(records, days=records / 1_000_000 * 30).records:  # as bench/__main__.py sizes it
        verdict = validate(value, rules, INGESTED_AT)
        if not isinstance(verdict, list) and dedup.decide(verdict).outcome == "accepted":
            reports.append(verdict)
    return reports if order == "mix" else list(_by_partition(reports))


def _by_partition(reports: list[AcceptedReport]) -> Iterator[AcceptedReport]:
    """Dedup works through the by-source partitions a batch at a time, so one partition's reports of the
    next ~40 minutes of event time come before another's."""
    runs: list[list[AcceptedReport]] = [[] for _ in range(PARTITIONS)]
    for report in reports:
        runs[source_partition(report.source, PARTITIONS)].append(report)
    for start in range(0, max(len(run) for run in runs), CHUNK):
        for run in runs:
            yield from run[start : start + CHUNK]
