"""Correlate engine cost: microseconds per accepted report through `Correlator.add`, publish and encode.

Pure, no broker. The benchmark's full-mode mix (20,000 records over 0.6 days of event time, as
bench/__main__.py sizes the throughput run) is validated and deduplicated as ingest would, with a
fixed ingestion time so that two runs see the same reports, and handed over in the order of the
accepted topic: by-source partitions, a chunk of each in turn (`--order mix` keeps the mix's order).
Every report goes through the `Correlator` of its ceasefire as the correlate agent feeds it; every
returned incident record is encoded with `services.runtime.codec.encode`; every ~200 reports a batch
closes: eviction every 300 s of event time, `take_changes()` and `version_entries` per touched ceasefire.

    .venv/bin/python -m bench.correlate_engine [--repeats N] [--order partitioned|mix] [--output FILE]

Prints µs per report of the best of `--repeats` runs, in total and split into add (publish
included; publish is timed by wrapping the `publish` the Correlator calls), publish alone, encode
and the batch close, with the process time of each run and the garbage collections. The input
reports are built first and frozen out of the garbage collector (the stage holds one batch of them,
not 17,520). On a shared machine, compare two versions by runs made back to back, alternately.
`--output` writes every encoded record and every change set of the first run, in order, then every
open incident as the read API would serve it, so two versions of the engine can be compared byte
for byte (`cmp`).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

import services.correlate.state as correlate_state
from bench.accepted import accepted_stream
from schemas.ceasefire import Registry, load_registry
from schemas.report import AcceptedReport
from services.correlate.state import Correlator, version_entries
from services.runtime.codec import encode
from services.runtime.settings import Settings

RECORDS = 20_000  # bench/__main__.py FULL.throughput_reports
BATCH_REPORTS = 200
EVICT_EVERY = timedelta(seconds=300)  # services/correlate/agent.py EVICT_EVERY_SECONDS


class Clock:
    """Seconds spent per phase; `publish` is timed by wrapping the function the Correlator calls."""

    def __init__(self) -> None:
        self.add = self.publish = self.encode = self.close = 0.0
        self.cpu = 0.0  # process time of the whole run, timing included: steadier on a shared machine
        self.collections = [0, 0, 0]  # by the garbage collector, per generation

    def wrap_publish(self, publish: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return publish(*args, **kwargs)
            finally:
                self.publish += time.perf_counter() - started

        return timed


def run(reports: list[AcceptedReport], registry: Registry, clock: Clock, out: IO[bytes] | None) -> None:
    """Feed the stream once, as services/correlate/agent.py does, through fresh correlators."""
    correlators: dict[str, Correlator] = {}
    evicted_at: dict[str, datetime] = {}
    touched: set[str] = set()
    perf = time.perf_counter
    for n, report in enumerate(reports, 1):
        correlator = correlators.get(report.ceasefire_id)
        if correlator is None:
            ceasefire = registry.get(report.ceasefire_id)
            assert ceasefire is not None
            correlator = correlators[report.ceasefire_id] = Correlator(ceasefire)
        t0 = perf()
        changed = correlator.add(report)
        t1 = perf()
        encoded = [encode(incident) for incident in changed]
        clock.add += t1 - t0
        clock.encode += perf() - t1
        touched.add(report.ceasefire_id)
        if out is not None:
            for record in encoded:
                out.write(record + b"\n")
        if n % BATCH_REPORTS == 0 or n == len(reports):
            t0 = perf()
            closed = [_close(cid, correlators[cid], evicted_at) for cid in sorted(touched)]
            clock.close += perf() - t0
            touched.clear()
            if out is not None:
                for entry in closed:
                    out.write(orjson.dumps(entry) + b"\n")
    if out is not None:  # what the read API would serve at the end
        for cid in sorted(correlators):
            for incident in correlators[cid].incidents():
                out.write(encode(incident) + b"\n")


def _close(cid: str, correlator: Correlator, evicted_at: dict[str, datetime]) -> dict[str, Any]:
    watermark = correlator.watermark
    assert watermark is not None
    evicted: list[str] = []
    if watermark - evicted_at.setdefault(cid, watermark) >= EVICT_EVERY:
        evicted_at[cid] = watermark
        evicted = correlator.evict()
    reservations, rest = version_entries(correlator.take_changes())
    return {"ceasefire": cid, "evicted": evicted, "reservations": reservations, "rest": rest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs over the stream; the best is printed")
    parser.add_argument("--order", choices=("partitioned", "mix"), default="partitioned")
    parser.add_argument("--output", type=Path, help="write every record and change set of the first run")
    args = parser.parse_args()
    registry = load_registry(Settings().registry_path)
    reports = accepted_stream(registry, args.order, RECORDS)
    per_ceasefire: dict[str, int] = {}
    for report in reports:
        per_ceasefire[report.ceasefire_id] = per_ceasefire.get(report.ceasefire_id, 0) + 1
    print(f"{len(reports)} accepted reports: {per_ceasefire}")
    # The stage decodes its input a batch at a time; 17,520 reports held here at once would make
    # every full collection of the garbage collector walk them too.
    gc.collect()
    gc.freeze()
    publish = correlate_state.publish
    best: Clock | None = None
    try:
        for attempt in range(args.repeats):
            clock = Clock()
            correlate_state.publish = clock.wrap_publish(publish)
            gc.collect()
            collected = _collections()
            started = time.process_time()
            if args.output is not None and attempt == 0:
                with args.output.open("wb") as out:
                    run(reports, registry, clock, out)
            else:
                run(reports, registry, clock, None)
            clock.cpu = time.process_time() - started
            clock.collections = [after - before for before, after in zip(collected, _collections(), strict=True)]
            total = clock.add + clock.encode + clock.close
            print(
                f"run {attempt + 1}: {total / len(reports) * 1e6:.1f} µs/report"
                f" ({clock.cpu / len(reports) * 1e6:.1f} µs/report of process time)"
            )
            if best is None or total < best.add + best.encode + best.close:
                best = clock
    finally:
        correlate_state.publish = publish
    assert best is not None
    _print(best, len(reports))


def _collections() -> list[int]:
    return [generation["collections"] for generation in gc.get_stats()]


def _print(clock: Clock, count: int) -> None:
    total = clock.add + clock.encode + clock.close
    rows = (
        ("add (publish included)", clock.add),
        ("  publish", clock.publish),
        ("  add without publish", clock.add - clock.publish),
        ("encode", clock.encode),
        ("batch close (evict, take_changes, version_entries)", clock.close),
        ("total", total),
    )
    for name, seconds in rows:
        print(f"{name:52} {seconds / count * 1e6:8.1f} µs/report  {seconds / total:6.1%}")
    print(f"garbage collections by generation: {clock.collections}")


if __name__ == "__main__":
    main()
