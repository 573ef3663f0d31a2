"""Local table state written against another Kafka cluster is not trusted (issue 16, item 6).

Measured before: a worker stopped cleanly against the embedded broker (memory-only), then started
with its data dir against a new one, ruled every re-posted report a duplicate of one the new cluster
never saw (all 208 valid reports of a scenario lost). Two checks catch it, each tested alone:
- the cluster id the state was written against (runner.prepare_local_state), and
- per partition, a local offset at or past the changelog's end (tables.FencedTable), for a cluster
  rebuilt under the same id (Apache Kafka's image has one constant default id): forged here by
  writing the new cluster's id into the data dir before the start.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.topics import Role
from services.runtime.broker import EmbeddedBroker
from services.runtime.runner import CLUSTER_FILE, FAUST_APPDIR
from services.runtime.settings import Settings
from tests.support.kafka import eventually, produce, read_topic
from tests.support.mixed import group_stable, rebalance_done
from tests.support.reports import encode, report
from tests.support.worker import WorkerProcess, isolated_settings

pytestmark = pytest.mark.asyncio
REPORTS = 60


def reports() -> list[tuple[bytes | None, bytes | None]]:
    """Distinct reports (no two alike by identity or content), one minute apart."""
    return [
        (None, encode(report(report_id=f"c-{n}", observed_at=f"2025-05-10T12:{n:02d}:00Z", description=f"n{n}")))
        for n in range(REPORTS)
    ]


async def ingest_all(settings: Settings, tmp_path: Path, name: str, workers: list) -> WorkerProcess:
    """Start an ingest worker, post the reports once it serves, wait until each is booked."""
    worker = WorkerProcess(settings, ("ingest",), tmp_path / f"{name}.log").start()
    workers.append(worker)
    await worker.wait_serving()
    await eventually(lambda: group_stable(settings, 1), timeout=60, what="group stable")

    async def assigned() -> bool:
        return rebalance_done(worker)

    await eventually(assigned, timeout=60, what="assignment finished")
    await produce(settings.bootstrap, settings.topic(Role.REPORTS), reports())

    async def booked() -> bool:
        return worker.sum_metric("ceasefire_reports_total") >= REPORTS

    await eventually(booked, timeout=60, what=f"{REPORTS} reports booked")
    return worker


@pytest.mark.parametrize("cluster_id", ["new", "forged-same"])
async def test_state_of_another_cluster_is_rebuilt_not_trusted(
    broker: EmbeddedBroker, workers: list, tmp_path: Path, cluster_id: str
) -> None:
    first = isolated_settings(broker.url, tmp_path / "state")
    worker = await ingest_all(first, tmp_path, "first", workers)
    assert worker.sum_metric("ceasefire_reports_total", outcome="accepted") == REPORTS
    assert worker.stop() == 0  # a clean stop: the state would be kept against the same cluster

    with EmbeddedBroker(log_path=tmp_path / "broker-b.log") as other:
        if cluster_id == "forged-same":
            (first.data_dir / FAUST_APPDIR / CLUSTER_FILE).write_text(other.cluster_id)
        second = first.model_copy(update={"broker": other.url})
        again = await ingest_all(second, tmp_path, "second", workers)
        assert again.sum_metric("ceasefire_reports_total", outcome="duplicate") == 0
        assert again.sum_metric("ceasefire_reports_total", outcome="accepted") == REPORTS
        accepted = await read_topic(second.bootstrap, second.topic(Role.ACCEPTED), REPORTS)
        assert len(accepted) == REPORTS
        assert again.stop() == 0
