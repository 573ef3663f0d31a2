"""Gauges that belong to a partition's state follow the partition: after a rebalance no worker keeps
series for ceasefires it gave up, and a survivor of a dead worker reports them again."""

from __future__ import annotations

from pathlib import Path

import yaml

from schemas.topics import Role
from services.runtime.broker import free_port
from tests.support.kafka import eventually, produce
from tests.support.reports import encode, report
from tests.support.worker import WorkerProcess, isolated_settings

CEASEFIRES = [f"cf-{n}" for n in range(8)]
STAGES = ("ingest", "correlate", "alert")


def write_registry(path: Path) -> Path:
    """Eight ceasefires with other party codes (A, B), so they spread over four partitions."""
    path.write_text(
        yaml.safe_dump(
            {
                "ceasefires": [
                    {
                        "id": cid,
                        "name": f"test ceasefire {cid}",
                        "effective_from": "2025-01-01T00:00:00Z",
                        "parties": [{"code": "AA", "name": "Alpha"}, {"code": "BB", "name": "Beta"}],
                        "sectors": [{"name": "North", "lat": 10.0, "lon": 20.0, "radius_km": 30}],
                    }
                    for cid in CEASEFIRES
                ]
            }
        )
    )
    return path


def write_sources(path: Path) -> Path:
    """The one source the test posts as, registered for party AA in each of those ceasefires."""
    source = {"id": "observer.one", "name": "Observer One", "kind": "media", "parties": dict.fromkeys(CEASEFIRES, "AA")}
    path.write_text(yaml.safe_dump({"sources": [source]}))
    return path


def fragility_ceasefires(worker: WorkerProcess) -> set[str]:
    try:
        samples = worker.scrape()
    except OSError:
        return set()
    return {dict(labels)["ceasefire"] for (name, labels), _ in samples.items() if name == "ceasefire_fragility_index"}


async def test_state_gauges_follow_partitions(broker, workers, tmp_path: Path) -> None:
    registry = write_registry(tmp_path / "registry.yaml")
    sources = write_sources(tmp_path / "sources.yaml")
    first = isolated_settings(broker.url, tmp_path / "a", registry_path=registry, sources_path=sources, partitions=4)
    a = WorkerProcess(first, STAGES, tmp_path / "a.log").start()
    workers.append(a)
    await a.wait_serving()
    docs = [
        report(
            report_id=f"{cid}-{n}",
            source="observer.one",
            source_party="AA",
            accused_party="BB",
            ceasefire_id=cid,
            observed_at=f"2025-05-10T1{n}:00:00Z",
            location={"lat": 10.0, "lon": 20.0},
            evidence=[],
        )
        for cid in CEASEFIRES
        for n in range(2)
    ]
    await produce(first.bootstrap, first.topic(Role.REPORTS), [(None, encode(d)) for d in docs])

    async def a_has_all() -> bool:
        return fragility_ceasefires(a) == set(CEASEFIRES)

    await eventually(a_has_all, timeout=90, what="worker A reports every ceasefire")

    second = first.model_copy(update={"data_dir": tmp_path / "b", "web_port": free_port()})
    b = WorkerProcess(second, STAGES, tmp_path / "b.log").start()
    workers.append(b)
    await b.wait_serving()

    async def split() -> bool:
        on_a, on_b = fragility_ceasefires(a), fragility_ceasefires(b)
        return bool(on_a) and bool(on_b) and on_a.isdisjoint(on_b) and on_a | on_b == set(CEASEFIRES)

    await eventually(split, timeout=90, what="ceasefires split between A and B with no stale series")

    b.kill()
    await eventually(a_has_all, timeout=90, what="A reports every ceasefire again after B died")
