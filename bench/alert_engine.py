"""Alert engine cost: incident versions per second through `AlertEngine`, slice by slice. No broker.

The workload is the benchmark's full-mode mix (20,000 records over 0.6 days, as the throughput
scenario builds it): validated and deduplicated as ingest would, interleaved as the by-source
partitions reach the accepted topic (`--order mix` keeps the mix's order instead), correlated by one
`Correlator` per ceasefire as the correlate stage does (merged versions first, eviction every 300 s of
event time), and cut into batches of ~200 incident versions with the correlator's watermark. Each
batch is fed as the alert agent feeds it: `observe` per version, `advance` to the watermark, then
`fragility()` and `take_changes()` per touched ceasefire. The rate per slice of 2,000 versions shows
whether the cost grows with the incidents held (it should not).

    .venv/bin/python -m bench.alert_engine [--records N] [--order partitioned|mix]
        [--output FILE] [--cache FILE] [--repeat N]

`--output` writes everything the engines returned (alerts, changes, snapshots), one JSON line per
call, so that two versions of the engine can be compared byte for byte. `--cache` keeps the incident
batches (building them takes longer than the engine should). `--repeat` plays them N times with
fresh engines and keeps each slice's fastest run: the machine may be busy with something else.
"""

from __future__ import annotations

import argparse
import gc
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

import orjson

from bench.accepted import accepted_stream
from schemas.ceasefire import Registry, load_registry
from schemas.incident import Incident, IncidentBatch
from services.alert.rules import AlertEngine
from services.correlate.state import Correlator
from services.runtime.settings import Settings

FULL_RECORDS = 20_000  # bench/__main__.py FULL.throughput_reports
BATCH_VERSIONS = 200
SLICE = 2_000
EVICT_EVERY = timedelta(seconds=300)  # services/correlate/agent.py EVICT_EVERY_SECONDS
Batch = tuple[list[Incident], dict[str, datetime]]  # incident versions, watermark per ceasefire


def incident_batches(records: int, registry: Registry, order: str) -> list[Batch]:
    """What the correlate stage would hand the alert stage: versions in batches of ~200."""
    correlators: dict[str, Correlator] = {}
    evicted_at: dict[str, datetime] = {}
    batches: list[Batch] = []
    pending: list[Incident] = []
    touched: set[str] = set()
    for report in accepted_stream(registry, order, records):
        cid = report.ceasefire_id
        correlator = correlators.get(cid)
        if correlator is None:
            ceasefire = registry.get(cid)
            assert ceasefire is not None
            correlator = correlators[cid] = Correlator(ceasefire)
        changed = correlator.add(report)
        changed.sort(key=lambda incident: incident.status != "merged")
        pending.extend(changed)
        touched.add(cid)
        if len(pending) >= BATCH_VERSIONS:
            batches.append((pending, _close(correlators, touched, evicted_at)))
            pending, touched = [], set()
    if pending:
        batches.append((pending, _close(correlators, touched, evicted_at)))
    return batches


def _close(
    correlators: dict[str, Correlator], touched: set[str], evicted_at: dict[str, datetime]
) -> dict[str, datetime]:
    """End a correlate batch: evict as the stage does, and the touched ceasefires' watermarks."""
    watermarks = {}
    for cid in sorted(touched):
        correlator = correlators[cid]
        watermark = correlator.watermark
        assert watermark is not None
        if watermark - evicted_at.setdefault(cid, watermark) >= EVICT_EVERY:
            evicted_at[cid] = watermark
            correlator.evict()
        correlator.take_changes()
        watermarks[cid] = watermark
    return watermarks


def load(records: int, registry: Registry, order: str, cache: Path | None) -> list[Batch]:
    """The incident batches, from `cache` when it was written for the same records and order."""
    tag = orjson.dumps({"records": records, "order": order})
    if cache is not None and cache.exists():
        lines = cache.read_bytes().splitlines()
        if lines and lines[0] == tag:
            found = [IncidentBatch.model_validate_json(line) for line in lines[1:]]
            return [(list(b.incidents), dict(b.watermarks)) for b in found]
    batches = incident_batches(records, registry, order)
    if cache is not None:
        encoded = (IncidentBatch(incidents=i, watermarks=w).model_dump_json().encode() for i, w in batches)
        cache.write_bytes(b"\n".join([tag, *encoded]))
    return batches


def play(batches: list[Batch], registry: Registry, out: IO[bytes] | None) -> list[tuple[int, float, float]]:
    """Feed the batches as the alert agent does; (versions, seconds, CPU seconds) so far, per slice
    of `SLICE` versions. CPU time is this process's: the machine may be busy with something else."""
    engines: dict[str, AlertEngine] = {}
    slices: list[tuple[int, float, float]] = []
    done, spent, cpu = 0, 0.0, 0.0

    def write(kind: str, payload: object) -> None:
        if out is not None:
            out.write(orjson.dumps([kind, payload]) + b"\n")

    for incidents, watermarks in batches:
        started, started_cpu = time.perf_counter(), time.process_time()
        emitted: list[tuple[str, list]] = []
        touched: set[str] = set()
        for incident in incidents:
            engine = engines.get(incident.ceasefire_id)
            if engine is None:
                ceasefire = registry.get(incident.ceasefire_id)
                assert ceasefire is not None
                engine = engines[incident.ceasefire_id] = AlertEngine(ceasefire)
            emitted.append((incident.incident_id, engine.observe(incident)))
            touched.add(incident.ceasefire_id)
        for cid, watermark in watermarks.items():
            emitted.append((cid, engines[cid].advance(watermark)))
            touched.add(cid)
        snapshots = [engines[cid].fragility() for cid in sorted(touched)]
        changes = [engines[cid].take_changes() for cid in sorted(touched)]
        spent += time.perf_counter() - started
        cpu += time.process_time() - started_cpu
        if out is not None:
            for key, alerts in emitted:
                write("alerts", [key, [a.model_dump(mode="json") for a in alerts]])
            for snapshot in snapshots:
                write("fragility", snapshot.model_dump(mode="json"))
            for change in changes:
                write("changes", change)
        done += len(incidents)
        if done >= SLICE * (len(slices) + 1):
            slices.append((done, spent, cpu))
    slices.append((done, spent, cpu))
    return slices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=FULL_RECORDS)
    parser.add_argument("--output", type=Path, help="write every engine output here (JSON lines)")
    parser.add_argument("--order", choices=("partitioned", "mix"), default="partitioned",
                        help="reports as the accepted topic interleaves them (default), or the mix's order")
    parser.add_argument("--cache", type=Path, help="keep the incident batches here between runs")
    parser.add_argument("--repeat", type=int, default=1, help="play this many times, fresh engines each, and "
                        "keep each slice's fastest (the machine may be busy with something else)")
    args = parser.parse_args()
    registry = load_registry(Settings().registry_path)
    started = time.perf_counter()
    batches = load(args.records, registry, args.order, args.cache)
    gc.collect()
    gc.freeze()  # the workload is no engine's state: collections should not walk it (no stage holds it)
    versions = sum(len(incidents) for incidents, _ in batches)
    took = time.perf_counter() - started
    print(f"{versions} incident versions in {len(batches)} batches ({took:.1f} s to build)")
    runs = []
    for n in range(args.repeat):
        if args.output is not None and n == 0:
            with args.output.open("wb") as out:
                runs.append(play(batches, registry, out))
        else:
            runs.append(play(batches, registry, None))
    slices = _slices(runs)
    fastest = f"  fastest of {args.repeat}" if args.repeat > 1 else ""
    print(f"versions        versions/s  (per CPU second){fastest}")
    for lo, hi, wall, cpu in slices:
        print(f"{lo:>6}-{hi:<6} {(hi - lo) / wall:>10,.0f}  ({(hi - lo) / cpu:,.0f})")
    n, wall, cpu = slices[-1][1], sum(piece[2] for piece in slices), sum(piece[3] for piece in slices)
    print(f"total: {n} versions in {wall:.2f} s ({cpu:.2f} s of CPU): "
          f"{n / wall:,.0f} versions/s ({n / cpu:,.0f} per CPU second)")


def _slices(runs: list[list[tuple[int, float, float]]]) -> list[tuple[int, int, float, float]]:
    """Per slice: its first and last version, and the fastest run's seconds and CPU seconds on it."""
    out = []
    for k, (hi, _, _) in enumerate(runs[0]):
        lo = runs[0][k - 1][0] if k else 0
        if hi > lo:
            wall = min(run[k][1] - (run[k - 1][1] if k else 0.0) for run in runs)
            cpu = min(run[k][2] - (run[k - 1][2] if k else 0.0) for run in runs)
            out.append((lo, hi, wall, cpu))
    return out


if __name__ == "__main__":
    main()
