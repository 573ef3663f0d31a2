"""docs/performance.md and docs/performance/*.png from one results file; bars checked here.

`python -m bench.report bench/results/<file>.json` re-renders without re-measuring. Plots need
matplotlib (the `bench` extra); without it the page is written with a note instead of images.
bench/NOTES.md (what the runs taught us, written by people) is appended as is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from services.runtime.settings import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "performance.md"
SOAK_DOC = PROJECT_ROOT / "docs" / "performance-soak.md"
# The issue asks for memory "flat once retention starts evicting" without a number: 2 MB per 100K
# reports is 0.5 % of the 400 MB bar, ~10 MB over the second half of the 1,000,000-report run.
FLAT_MB_PER_100K = 2.0
PLOTS = PROJECT_ROOT / "docs" / "performance"
NOTES = PROJECT_ROOT / "bench" / "NOTES.md"
STAGES = ("ingest", "correlate", "alert")


def _rate(block: Any) -> float | None:
    return block.get("reports_per_second") if isinstance(block, dict) else None


def _block(sc: dict[str, Any], *path: str) -> dict[str, Any]:
    for name in path:
        sc = sc.get(name) if isinstance(sc, dict) else None  # type: ignore[assignment]
    return sc if isinstance(sc, dict) else {}


def bars(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every bar of the issue: figure, bar, met, and by how much."""
    sc = results["scenarios"]
    peer = _block(sc, "peer").get("per_second")
    rows: list[dict[str, Any]] = []

    def add(bar: str, figure: Any, target: Any, met: bool, higher_is_better: bool = True, note: str = "") -> None:
        row = {"bar": bar, "figure": figure, "target": target, "met": met, "note": note}
        if isinstance(figure, int | float) and not isinstance(figure, bool) and figure and target:
            ratio = figure / target
            row["by"] = f"{ratio:.2f}× the bar" if not met else (
                f"{(ratio - 1) * 100:.0f} % better" if higher_is_better else f"{(1 - ratio) * 100:.0f} % under")
        rows.append(row)

    for stage in STAGES:
        block = _block(sc, "stages", stage)
        rate = _rate(block)
        ratio = round(rate / peer, 2) if rate and peer else None
        partial = "" if block.get("complete", True) else f"capped: {block.get('share_done', 0):.0%} done"
        add(f"{stage} alone ≥ 0.8× peer", ratio, 0.8, ratio is not None and ratio >= 0.8, note=partial)
    for key, layout in (("latency_500", "one process"), ("latency_staged_500", "one process per stage")):
        if key not in sc:
            continue
        lat = _block(sc, key, "to_incident").get("p99_ms")
        kept = _block(sc, key).get("kept_up")
        add(f"p99 send → incident at 500 reports/s ≤ 100 ms ({layout})", lat, 100, lat is not None and lat <= 100,
            False, "" if kept else "the pipeline did not keep up with 500/s")
    mem = _block(sc, "memory_recovery", "memory")
    projected = _block(mem, "projection").get("worker_projected_rss_mb_at_1m")
    peak = mem.get("worker_peak_rss_mb")
    add("worker peak RSS ≤ 400 MB (measured run)", peak, 400, peak is not None and peak <= 400, False,
        f"{mem.get('reports', 0):,} reports, not 1,000,000" if mem else "")
    soak = latest_soak()
    if soak is not None:  # the measurement at the size, from `make bench SOAK=1`
        name, soaked = soak
        smem = _block(soaked["scenarios"], "memory_recovery", "memory")
        speak, srec = smem.get("worker_peak_rss_mb"), _block(soaked["scenarios"], "memory_recovery", "recovery")
        add("worker peak RSS ≤ 400 MB at 1,000,000 reports (soak)", speak, 400, speak is not None and speak <= 400,
            False, f"`{name}`: {smem.get('reports', 0):,} reports through, docs/performance-soak.md")
        slope = _block(smem, "projection").get("worker_mb_per_100k_reports")
        add(f"worker RSS flat once retention evicts: ≤ {FLAT_MB_PER_100K} MB more per 100K reports (soak)", slope,
            FLAT_MB_PER_100K, slope is not None and slope <= FLAT_MB_PER_100K, False,
            f"`{name}`: least squares over the second half of the reports (retention evicts from ~47 %)")
        srate, sequal = srec.get("rebuild_records_per_second"), _block(srec, "state").get("equal")
        add("rebuild at 1,000,000 reports' state ≥ 5,000 records/s (soak)", srate, 5000,
            srate is not None and srate >= 5000, note=f"`{name}`; rebuilt state equal: {sequal}")
        sfirst = srec.get("clean_restart_first_record_s")
        add("restart with local state at 1,000,000 reports' state: first record ≤ 5 s (soak)", sfirst, 5,
            sfirst is not None and sfirst <= 5, False,
            f"`{name}`; first correlation after {srec.get('clean_restart_first_correlation_s')} s")
    elif projected is not None:
        add("worker RSS ≤ 400 MB projected to 1,000,000 reports", projected, 400, projected <= 400, False,
            "a straight line through the run's samples, not a measurement: see Memory")
    cost = _block(sc, "correlation_cost").get("ratio")
    add("correlation cost, most held / fewest held ≤ 1.5", cost, 1.5, cost is not None and cost <= 1.5, False)
    rec = _block(sc, "memory_recovery", "recovery")
    first = rec.get("clean_restart_first_record_s", rec.get("kept_state_first_record_s"))
    add("restart with local state (after a clean stop): first record ≤ 5 s", first, 5,
        first is not None and first <= 5, False,
        f"first correlation after {rec.get('clean_restart_first_correlation_s')} s")
    rate = rec.get("rebuild_records_per_second")
    add("rebuild from changelogs ≥ 5,000 records/s", rate, 5000, rate is not None and rate >= 5000)
    equal = _block(rec, "state").get("equal")
    add("rebuilt state equals the changelogs at their high watermark before the kill", equal, True, equal is True)
    return rows


def latest_soak() -> tuple[str, dict[str, Any]] | None:
    """The newest `make bench SOAK=1` results file that has a memory figure, if any."""
    for path in sorted((PROJECT_ROOT / "bench" / "results").glob("*-soak.json"), reverse=True):
        results = orjson.loads(path.read_bytes())
        if _block(results["scenarios"], "memory_recovery", "memory").get("worker_peak_rss_mb") is not None:
            return path.name, results
    return None


def _plots(results: dict[str, Any]) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    PLOTS.mkdir(parents=True, exist_ok=True)
    sc = results["scenarios"]
    made = []
    if results["profile"] == "soak":
        return _memory_plot(results, "memory-soak.png")
    limit, peer = _block(sc, "limit").get("per_second"), _block(sc, "peer").get("per_second")
    names, values, colours = [], [], []
    for name, block in [*((f"{s} alone", _block(sc, "stages", s)) for s in STAGES),
                        ("e2e, 1 process", _block(sc, "end_to_end_one_process")),
                        ("e2e, process/stage", _block(sc, "end_to_end_process_per_stage")),
                        *((f"scale ×{k}", b) for k, b in _block(sc, "scale_out").items())]:
        names.append(name + ("" if block.get("complete", True) else " *"))
        values.append(_rate(block) or 0)
        colours.append("#3a7" if peer and (_rate(block) or 0) >= 0.8 * peer else "#d64")
    fig, ax = plt.subplots(figsize=(9, 4.2))
    ax.bar(names, values, color=colours)
    if peer:
        ax.axhline(peer, color="#444", ls="--", lw=1)
        ax.axhline(0.8 * peer, color="#444", ls=":", lw=1)
        ax.text(len(names) - 0.5, peer, f" peer {peer:,.0f}/s", va="bottom", ha="right", fontsize=8)
        ax.text(len(names) - 0.5, 0.8 * peer, " 0.8× peer", va="top", ha="right", fontsize=8)
    if limit:
        ax.axhline(limit, color="#888", ls="-", lw=1)
        ax.text(len(names) - 0.5, limit, f" limit {limit:,.0f}/s", va="bottom", ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("reports/s (log)")
    ax.set_title(f"Throughput, one {results['profile']} run (* capped before done: rate of the share done)")
    plt.setp(ax.get_xticklabels(), rotation=25, ha="right")
    fig.tight_layout()
    fig.savefig(PLOTS / "throughput.png", dpi=100)
    plt.close(fig)
    made.append("throughput.png")
    return made + _memory_plot(results, "memory.png")


def _memory_plot(results: dict[str, Any], name: str) -> list[str]:
    import matplotlib.pyplot as plt

    mem = _block(results["scenarios"], "memory_recovery", "memory")
    samples = mem.get("samples") or []
    made = []
    if samples:
        fig, ax = plt.subplots(figsize=(9, 4))
        xs = [s[1] for s in samples]
        ax.plot(xs, [s[2] for s in samples], label="worker (ingest + correlate)")
        ax.plot(xs, [s[3] for s in samples], label="broker (all topics of the run)", alpha=0.6)
        ax.axhline(400, color="#d64", ls=":", lw=1, label="400 MB bar")
        ax.set_xlabel(f"reports finished ({mem.get('event_days_covered')} days of event time by the end)")
        ax.set_ylabel("RSS (MB)")
        full = mem.get("reports", 0) >= 1_000_000
        ax.set_title(f"Memory against reports processed ({mem.get('reports', 0):,} reports{'' if full else ', not 1,000,000'})")
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / name, dpi=100)
        plt.close(fig)
        made.append(name)
    return made


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return "—" if value is None else str(value)


def _header(results: dict[str, Any], source: Path) -> list[str]:
    env = results["environment"]
    loads = ", ".join(f"{x:.2f}" for x in env["load_average_at_start"])
    end = env.get("load_average_at_end")
    return [
        "# Performance" + (": memory at 1,000,000 reports" if results["profile"] == "soak" else ""),
        "",
        f"Generated by `make bench{ {'quick': ' QUICK=1', 'soak': ' SOAK=1'}.get(results['profile'], '')}` from "
        f"`{source.relative_to(PROJECT_ROOT)}` ({results['profile']} mode, {results.get('wall_seconds')} s wall). "
        f"Machine: {env['cores']} cores, Python {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items()) + ".",
        "",
        f"**Machine load** (1, 5, 15-minute load averages): {loads} at the start"
        + (f", {', '.join(f'{x:.2f}' for x in end)} at the end" if end else "")
        + f". The machine is shared: a load above {env['cores']} means other jobs took CPU from this run, and "
        "every figure here is lower than on an idle machine. Compare figures within one run only; they move "
        "10–20 % between runs even when the machine is quiet.",
        "",
        f"Workload: {_fmt(results['workload']['records'])} records, {results['workload']['mean_record_bytes']} bytes "
        f"on average ({_fmt(results['workload']['valid'])} unique valid reports, "
        f"{_fmt(results['workload']['duplicates'])} repeats, {_fmt(results['workload']['garbage'])} garbage), "
        f"over {results['workload']['event_days']} days of event time (bench/workload.py).",
    ]


def _bar_lines(results: dict[str, Any]) -> list[str]:
    lines = ["", "## Bars", "", "| bar | figure | met | by how much | note |", "|---|---|---|---|---|"]
    for row in bars(results):
        lines.append(f"| {row['bar']} | {_fmt(row['figure'])} | {'yes' if row['met'] else '**no**'} | "
                     f"{row.get('by', '')} | {row['note']} |")
    return lines


def _throughput_lines(results: dict[str, Any], plots: list[str]) -> list[str]:
    sc = results["scenarios"]
    limit, peer = _block(sc, "limit").get("per_second"), _block(sc, "peer").get("per_second")
    lines = ["", "## Throughput (reports/s)", "",
             "Both baselines were measured in this run, on the same broker, with the same records and partitions: "
             "**limit** is raw aiokafka consume → orjson → produce in one uvloop process (the ceiling of one Python "
             "process for one hop); **peer** is a bare Faust agent forwarding each event, built by our app factory "
             "with our settings (what any Faust service pays per event). A row marked capped did not finish within "
             "its time cap; its rate is that of the share it finished.", "",
             "| what | reports/s | × peer | × limit | complete | seconds |", "|---|---|---|---|---|---|",
             f"| **limit** (baseline) | {_fmt(limit)} | {_fmt(limit / peer) if limit and peer else ''} | 1 | yes | "
             f"{_fmt(_block(sc, 'limit').get('seconds'))} |",
             f"| **peer** (baseline) | {_fmt(peer)} | 1 | {f'{peer / limit:.3f}' if limit and peer else ''} | yes | "
             f"{_fmt(_block(sc, 'peer').get('seconds'))} |"]

    def row(name: str, block: Any) -> None:
        if not isinstance(block, dict) or not block:
            return
        if "error" in block:
            lines.append(f"| {name} | error: {block['error'][:150]} | | | | |")
            return
        rate = block.get("reports_per_second")
        xp = f"{rate / peer:.2f}" if rate and peer else ""
        xl = f"{rate / limit:.3f}" if rate and limit else ""
        done = "yes" if block.get("complete", True) else f"**capped** ({block.get('share_done', 0):.0%} done)"
        lines.append(f"| {name} | {_fmt(rate)} | {xp} | {xl} | {done} | {_fmt(block.get('seconds'))} |")

    for stage in STAGES:
        row(f"{stage} alone", _block(sc, "stages", stage))
    if "error" in _block(sc, "stages"):
        row("stages", sc["stages"])
    row("end to end, one process", sc.get("end_to_end_one_process"))
    row("end to end, one process per stage", sc.get("end_to_end_process_per_stage"))
    for k, block in _block(sc, "scale_out").items():
        row(f"scale-out: {k} process(es) per stage, {block.get('partitions', 4)} partitions", block)
    if not _block(sc, "scale_out"):
        lines += ["", "_Scale-out is not run in quick mode._"]
    if "throughput.png" in plots:
        lines += ["", "![throughput](performance/throughput.png)"]
    return lines


def _latency_lines(results: dict[str, Any]) -> list[str]:
    sc = results["scenarios"]
    lines = ["", "## Latency (report sent → incident record, → alert record; broker timestamps)", "",
             "| processes | rate asked | achieved | kept up | to incident p50 / p99 / max (ms) "
             "| of which ingest (send → accepted) p50 / p99 | correlate (accepted → incident) p50 / p99 "
             "| to alert (alerts a report started) p50 / p99 / max (ms) |",
             "|---|---|---|---|---|---|---|---|"]
    keys = [k for k in sc if k.startswith("latency_") and not k.endswith("_wall_s")]
    for key in sorted(keys, key=lambda k: ("staged" in k, int(k.rsplit("_", 1)[1]))):
        b = sc[key]
        if "error" in b:
            lines.append(f"| {key} | error: {b['error'][:150]} | | | | | | |")
            continue
        i, a = b["to_incident"], b["to_alert"]
        ing, cor = b.get("to_accepted") or {}, b.get("accepted_to_incident") or {}
        behind = "" if b["kept_up"] else f" ({b.get('seconds_behind_at_end')} s behind when the drain cap hit)"
        lines.append(f"| {b.get('processes', 'one')} | {b['rate_asked']:.0f}/s for {b['reports']:,} records | "
                     f"{b['rate_achieved']:.0f}/s | {'yes' if b['kept_up'] else '**no**'}{behind} | "
                     f"{i['p50_ms']} / {i['p99_ms']} / {i['max_ms']} (n={i['count']}) | "
                     f"{ing.get('p50_ms')} / {ing.get('p99_ms')} | {cor.get('p50_ms')} / {cor.get('p99_ms')} | "
                     f"{a['p50_ms']} / {a['p99_ms']} / {a['max_ms']} (n={a['count']}) |")
    return lines


def _memory_lines(results: dict[str, Any], plots: list[str]) -> list[str]:
    mr = _block(results["scenarios"], "memory_recovery")
    mem = _block(mr, "memory")
    lines = ["", "## Memory", ""]
    if "error" in mr:
        lines.append(f"error: {mr['error'][:400]}")
    if mem:
        proj = _block(mem, "projection")
        opening = (f"**The 1,000,000-report run** (`make bench SOAK=1`): {mem.get('reports_loaded', 0):,} reports"
                   if results["profile"] == "soak" else
                   f"**This is not the 1,000,000-report run** (that is `make bench SOAK=1`, docs/performance-soak.md). "
                   f"At the rates measured, {mem.get('reports_loaded', 0):,} reports fit the memory slice")
        lines.append(
            f"{opening}; they were spread over {mem.get('event_days')} days of event time (so the 14-day "
            f"dedup retention and the correlation eviction ran) and {mem.get('reports', 0):,} of them went through "
            f"`ingest correlate` in one worker at {_fmt(mem.get('reports_per_second'))} reports/s "
            f"(complete: {mem.get('complete')}). Worker peak RSS **{mem.get('worker_peak_rss_mb')} MB**; broker peak "
            f"RSS {mem.get('broker_peak_rss_mb')} MB (it holds every topic of the run: it never compacts or deletes).")
        if proj.get("note"):
            lines += ["", f"Projection to 1,000,000 reports: none ({proj['note']})."]
        elif proj:
            lines += ["", f"Projection (least squares over the samples of the second half of the reports): the worker grew "
                      f"{proj['worker_mb_per_100k_reports']} MB per 100K reports, so a straight line reaches "
                      f"**{_fmt(proj['worker_projected_rss_mb_at_1m'])} MB at 1,000,000 reports**; the broker "
                      f"{proj['broker_mb_per_100k_reports']} MB per 100K, {_fmt(proj['broker_projected_rss_mb_at_1m'])} MB. "
                      "Read it as an order of magnitude: retention caps what the worker holds (an upper bound if the "
                      "growth is state), but the density here is lower than 1,000,000 in 30 days, so the state held per "
                      "day of event time is smaller than the target's."]
        for name in ("memory.png", "memory-soak.png"):
            if name in plots:
                lines += ["", f"![memory](performance/{name})"]
    return lines


def _diff_text(block: dict[str, Any]) -> str:
    if not block:
        return "—"
    text = (f"{_fmt(block.get('entries_reference'))} vs {_fmt(block.get('entries_other'))} entries: "
            f"missing {block.get('missing')}, extra {block.get('extra')}, different {block.get('different')}")
    kinds = block.get("by_kind") or {}
    if kinds:
        text += " (" + "; ".join(f"{what}: " + ", ".join(f"{k} {v}" for k, v in c.items()) for what, c in kinds.items()) + ")"
    return text


def _recovery_lines(results: dict[str, Any]) -> list[str]:
    rec = _block(results["scenarios"], "memory_recovery", "recovery")
    lines = ["", "## Recovery", ""]
    if not rec:
        return lines + ["not measured (see the error above)"]
    changelog = rec.get("changelog_records") or {}
    lines += [
        f"The memory worker was SIGKILLed {'mid-stream' if rec.get('killed_while_busy') else 'after it finished'} "
        "(kill 1). Restarted on the same directory (after a kill the runtime rebuilds from the changelogs): "
        "first record after "
        f"**{rec.get('kept_state_first_record_s')} s** (table recovery, the raw-consumer rebuild and Faust's: "
        f"{rec.get('kept_state_recovery_s')} s); "
        "it finished the rest, went idle and was SIGKILLed again (kill 2). Restarted with local state wiped: "
        f"first record after {rec.get('wiped_state_first_record_s')} s, of which table recovery "
        f"{rec.get('wiped_state_recovery_s')} s for {_fmt(sum(changelog.values()))} changelog records "
        f"({', '.join(f'{k} {v:,}' for k, v in changelog.items())}): **{_fmt(rec.get('rebuild_records_per_second'))} "
        "records/s**. Stopped cleanly and restarted with its local state kept: first record after "
        f"**{rec.get('clean_restart_first_record_s')} s** (table recovery {rec.get('clean_restart_recovery_s')} s); "
        "the first report correlated (a fresh one sent with the restart: the correlate stage had built its "
        f"ceasefire's state) after {rec.get('clean_restart_first_correlation_s')} s.",
        "",
        "| comparison | equal | detail |", "|---|---|---|",
    ]
    for name, key in (("rebuilt (wiped restart) vs changelogs at kill 2, read to the fetch high watermark — **the bar**",
                       "state"),
                      ("local RocksDB at kill 1 (mid-stream) vs changelogs at kill 1", "local_vs_changelog_at_kill_1"),
                      ("local RocksDB at kill 2 (idle) vs changelogs at kill 2", "local_vs_changelog_at_kill_2"),
                      ("rebuilt vs local RocksDB at kill 2", "rebuilt_vs_local_at_kill_2")):
        block = _block(rec, key)
        lines.append(f"| {name} | {block.get('equal')} | {_diff_text(block)} |")
    examples = {k: _block(rec, k).get("examples") for k in ("state", "local_vs_changelog_at_kill_1",
                                                           "local_vs_changelog_at_kill_2")}
    shown = [(k, v) for k, v in examples.items() if v]
    if shown:
        lines += ["", "Examples (table-partition, key):", ""]
        for k, ex in shown:
            for what, keys in ex.items():
                for key in keys[:2]:
                    lines.append(f"- {k}, {what}: `{key}`")
    return lines


def _cost_and_profile_lines(results: dict[str, Any]) -> list[str]:
    sc = results["scenarios"]
    cc = _block(sc, "correlation_cost")
    lines = ["", "## Correlation cost (pure `Correlator.add`, no broker)", ""]
    for held, block in cc.items():
        if isinstance(block, dict):
            lines.append(f"- filled with {held} reports ({block['held']:,} held after eviction-free fill): "
                         f"{block['us_per_report']} µs/report")
    if "ratio" in cc:
        lines.append(f"- ratio most held / fewest held: {cc['ratio']}")
    if "error" in cc:
        lines.append(f"error: {cc['error'][:300]}")
    profiles = {stage: sc[key] for stage in STAGES if (key := f"profile_{stage}") in sc}
    lines += ["", "## Where each stage's time goes (cProfile)", ""]
    if not profiles:
        lines.append("_Not profiled in quick mode (`make bench` without QUICK profiles every stage)._")
    if "profile_latency" in sc:
        profiles["the whole topology at a paced 500 reports/s"] = sc["profile_latency"]
    for stage, prof in profiles.items():
        lines += ["", f"### {stage}", ""]
        if "error" in prof or not prof.get("ours_by_cumulative"):
            lines.append(f"error: {str(prof.get('error', 'empty profile'))[:300]}")
            continue
        done = prof.get("records_done", prof.get("batches_done"))
        what = (f"one worker running every stage while the report mix was sent at {prof['rate']:g}/s for "
                f"{prof['seconds']} s" if "rate" in prof else
                f"the {stage} stage alone, {prof['seconds']} s from its first record received (start-up and shutdown "
                "excluded)")
        lines += [f"Profile `{prof['file']}` (`python -m pstats` to browse): {what}, {_fmt(done)} input records done, "
                  f"{prof['total_s']} s of CPU on the event loop's thread under the profiler (which slows it ~2×: "
                  "these are shares, not rates). Cumulative time of a coroutine counts only while it runs, never "
                  "while it awaits.", "",
                  "Our code (services/, schemas/), by cumulative time:", "",
                  "| function | calls | own s | cumulative s | share |", "|---|---|---|---|---|"]
        for r in prof["ours_by_cumulative"][:12]:
            lines.append(f"| `{r['function']}` | {_fmt(r['calls'])} | {r['own_s']} | {r['cumulative_s']} | "
                         f"{r['cumulative_s'] / prof['total_s']:.0%} |")
        lines += ["", "Everything, by own time:", "", "| function | calls | own s |", "|---|---|---|"]
        for r in prof["all_by_own"][:10]:
            lines.append(f"| `{r['function']}` | {_fmt(r['calls'])} | {r['own_s']} |")
    return lines


def render(results: dict[str, Any], source: Path, plots: list[str]) -> str:
    lines = _header(results, source) + _bar_lines(results) + _throughput_lines(results, plots)
    lines += _latency_lines(results) + _memory_lines(results, plots) + _recovery_lines(results)
    lines += _cost_and_profile_lines(results)
    if not plots:
        lines += ["", "_Plots not drawn: matplotlib is not installed (install the `bench` extra)._"]
    walls = {k[: -len("_wall_s")]: v for k, v in results["scenarios"].items() if k.endswith("_wall_s")}
    lines += ["", "## Method", "",
              "See the docstrings of bench/scenarios/*.py and bench/baselines.py; "
              "`python -m bench.report <results.json>` re-renders this page. Wall seconds per scenario: "
              + ", ".join(f"{k} {v}" for k, v in walls.items()) + ".", ""]
    if NOTES.exists():
        lines += [NOTES.read_text()]
    return "\n".join(lines)


def render_soak(results: dict[str, Any], source: Path, plots: list[str]) -> str:
    lines = _header(results, source) + _memory_lines(results, plots) + _recovery_lines(results)
    lines += ["", "The throughput, latency and cost figures are on docs/performance.md (`make bench`).", ""]
    return "\n".join(lines)


def write(results: dict[str, Any], source: Path) -> None:
    plots = _plots(results)
    soak = results["profile"] == "soak"
    doc = SOAK_DOC if soak else DOC
    doc.write_text(render_soak(results, source, plots) if soak else render(results, source, plots))
    print(f"bench: wrote {doc.relative_to(PROJECT_ROOT)}" + (f" and {len(plots)} plot(s)" if plots else ""))


if __name__ == "__main__":
    path = Path(sys.argv[1]).resolve()
    write(orjson.loads(path.read_bytes()), path)
