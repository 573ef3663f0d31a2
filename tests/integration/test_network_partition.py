"""A network partition between a worker and the broker (issue 21): worker A runs on another host (a
network namespace joined by a veth link: tests/support/netns.py), worker B beside the broker, both with
every stage. A is cut off for longer than the session timeout while reports keep coming: its
partitions move to B. When the link heals, A rejoins. Afterwards A is alive, the pipeline finishes (no
event time left stalled), every posted record has exactly one outcome, the incidents equal the batch
definition: what A had queued reaches the broker after the heal, after B's records, and is not restored.
No incident or alert version is published with two different contents: once A finds another owner's
fence it publishes nothing until it rejoins (docs/faults.md "Network partition")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from schemas.alert import Alert
from schemas.ceasefire import Registry
from schemas.incident import Incident
from schemas.topics import Role
from services.runtime.admin import ensure_topics
from services.runtime.broker import EmbeddedBroker
from tests.support.faults import (
    PARTITIONS,
    STAGE_INPUTS,
    books_balance,
    finished,
    incidents_by_definition,
    post,
    standing,
    stream,
)
from tests.support.kafka import eventually, read_topic
from tests.support.mixed import replica
from tests.support.netns import Host, namespaces_available
from tests.support.outcomes import outputs
from tests.support.worker import WorkerProcess, isolated_settings

STAGES = ("ingest", "correlate", "alert")


def owned(worker: WorkerProcess) -> set[tuple[str, str]]:
    """The input partitions a worker reports lag for: the ones it owns now."""
    try:
        samples = worker.scrape()
    except OSError:
        return set()
    return {(dict(labels)["topic"], dict(labels)["partition"]) for (name, labels) in samples if name == "ceasefire_consumer_lag_records"}


async def test_a_worker_cut_off_from_the_broker_loses_nothing_and_forks_no_version(
    registry: Registry, workers, tmp_path: Path
) -> None:
    unavailable = namespaces_available()
    if unavailable:
        pytest.skip(unavailable)
    records, _ = stream(3000, seed=5)
    thirds = [records[: 1000], records[1000:2000], records[2000:]]
    with Host("a") as host, EmbeddedBroker(host=host.gateway, log_path=tmp_path / "broker.log") as broker:
        settings = isolated_settings(broker.url, tmp_path / "a", partitions=PARTITIONS, batch_max=100, batch_records_max=4)
        await ensure_topics(settings)
        a = WorkerProcess(settings.model_copy(update={"web_host": host.address}), STAGES, tmp_path / "a.log",
                          prefix=host.prefix).start()
        b = WorkerProcess(replica(settings, tmp_path / "b"), STAGES, tmp_path / "b.log").start()
        workers.extend([a, b])
        await a.wait_serving(timeout=60)
        await b.wait_serving(timeout=60)
        every = {(settings.topic(role), str(p)) for role in STAGE_INPUTS for p in range(PARTITIONS)}

        async def split() -> bool:
            return bool(owned(a)) and bool(owned(b)) and owned(a) | owned(b) == every

        await eventually(split, timeout=60, what="the partitions split between A and B")
        await post(settings, thirds[0])

        async def some_done_by_a() -> bool:
            return a.sum_metric("ceasefire_reports_total", outcome="accepted") > 0

        await eventually(some_done_by_a, timeout=60, what="A accepting reports")
        host.cut()
        cut_at = time.monotonic()
        await post(settings, thirds[1])

        async def b_has_all() -> bool:
            return owned(b) == every

        await eventually(b_has_all, timeout=60, what="B owning every partition while A is cut off")
        while time.monotonic() - cut_at < 3 * settings.session_timeout_seconds + 2:
            await eventually(b_has_all, timeout=10, what="B keeping every partition")
        host.heal()
        await post(settings, thirds[2])

        async def done() -> bool:
            return await finished(settings, [a, b])

        try:
            await eventually(done, timeout=120, what="both workers finished the stream")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {await standing(settings, [a, b])}") from None
        assert a.alive, "A did not survive the partition"
        await books_balance(settings, len(records))
        got, accepted = await outputs(settings)
        assert got.incidents == incidents_by_definition(accepted, registry)
        await assert_no_forked_versions(settings)


async def assert_no_forked_versions(settings) -> None:  # noqa: ANN001
    for role, model, key in ((Role.INCIDENTS, Incident, "incident_id"), (Role.ALERTS, Alert, "fingerprint")):
        contents: dict[tuple[str, int], bytes] = {}
        for record in await read_topic(settings.bootstrap, settings.topic(role)):
            value = model.model_validate_json(record.value or b"")
            earlier = contents.setdefault((getattr(value, key), value.version), record.value or b"")
            assert earlier == record.value, f"{role} {getattr(value, key)} v{value.version} published with two contents"
