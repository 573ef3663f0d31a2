"""Correlation cost: microseconds per report for `Correlator.add` with few vs many reports held.

Pure, no broker. Accepted reports of the benchmark mix (validated here as ingest would); a fresh
Correlator is filled with `held` reports (no eviction, so all of them are held), then the next
`measured` reports are timed, `take_changes` called every 100 as the agent does per batch. The
same measured reports follow each fill, best of `repeats` runs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from bench.workload import build
from schemas.ceasefire import load_registry
from schemas.report import AcceptedReport
from services.correlate.state import Correlator
from services.ingest.validate import Rules, validate
from services.runtime.settings import Settings

CEASEFIRE = "in-pk-2025-05-10"


def accepted_reports(n: int, days: float) -> list[AcceptedReport]:
    settings = Settings()
    registry = load_registry(settings.registry_path)
    rules = Rules(registry, max_bytes=settings.max_report_bytes, max_future=settings.max_future)
    now = datetime.now(UTC)
    seen: set[tuple[str, str]] = set()
    out: list[AcceptedReport] = []
    for _, value in build(int(n * 1.2), days=days, seed=7).records:
        verdict = validate(value, rules, now)
        if isinstance(verdict, list) or verdict.ceasefire_id != CEASEFIRE:
            continue
        if (verdict.source, verdict.report_id) in seen:
            continue
        seen.add((verdict.source, verdict.report_id))
        out.append(verdict if isinstance(verdict, AcceptedReport) else AcceptedReport(**verdict.model_dump(), ingested_at=now))
        if len(out) >= n:
            break
    return out


def measure(held_sizes: tuple[int, ...], measured: int = 5000, repeats: int = 3) -> dict[str, Any]:
    biggest = max(held_sizes)
    days = (biggest + measured) / 1_000_000 * 30  # the memory scenario's density
    reports = accepted_reports(biggest + measured, days)
    ceasefire = load_registry(Settings().registry_path).get(CEASEFIRE)
    results: dict[str, Any] = {}
    for held in held_sizes:
        best = float("inf")
        for _ in range(repeats):
            correlator = Correlator(ceasefire)
            for report in reports[biggest - held : biggest]:  # the `held` reports just before the measured ones
                correlator.add(report)
            correlator.take_changes()
            started = time.perf_counter()
            for i, report in enumerate(reports[biggest : biggest + measured]):
                correlator.add(report)
                if i % 100 == 99:
                    correlator.take_changes()
            best = min(best, time.perf_counter() - started)
        results[str(held)] = {"held": len(correlator.reports), "us_per_report": round(best / measured * 1e6, 1)}
    low, high = results[str(min(held_sizes))], results[str(biggest)]
    results["ratio"] = round(high["us_per_report"] / low["us_per_report"], 2)
    return results
