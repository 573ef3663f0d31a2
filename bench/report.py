"""docs/performance.md and docs/performance/*.png from one results file; bars checked here.

`python -m bench.report bench/results/<file>.json` re-renders without re-measuring. Plots need
matplotlib (the `bench` extra); without it the page is written with a note instead of images.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from services.runtime.settings import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "performance.md"
PLOTS = PROJECT_ROOT / "docs" / "performance"
STAGES = ("ingest", "correlate", "alert")


def _rate(block: Any) -> float | None:
    return block.get("reports_per_second") if isinstance(block, dict) else None


def bars(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every bar of the issue: figure, bar, met, and by how much."""
    sc = results["scenarios"]
    peer = (sc.get("peer") or {}).get("per_second")
    rows: list[dict[str, Any]] = []
    for stage in STAGES:
        rate = _rate((sc.get("stages") or {}).get(stage))
        ratio = rate / peer if rate and peer else None
        rows.append({"bar": f"{stage} alone ≥ 0.8× peer", "figure": ratio and round(ratio, 2), "target": 0.8,
                     "met": ratio is not None and ratio >= 0.8})
    lat = (sc.get("latency_500") or {}).get("to_incident", {}).get("p99_ms")
    rows.append({"bar": "p99 to incident at 500/s ≤ 100 ms", "figure": lat, "target": 100,
                 "met": lat is not None and lat <= 100})
    mem = (sc.get("memory_recovery") or {}).get("memory", {})
    peak = mem.get("worker_peak_rss_mb")
    rows.append({"bar": "worker peak RSS ≤ 400 MB", "figure": peak, "target": 400, "met": peak is not None and peak <= 400})
    cost = (sc.get("correlation_cost") or {}).get("ratio")
    rows.append({"bar": "correlation cost ratio (most held / fewest) ≤ 1.5", "figure": cost, "target": 1.5,
                 "met": cost is not None and cost <= 1.5})
    rec = (sc.get("memory_recovery") or {}).get("recovery", {})
    kept = rec.get("kept_state_first_record_s")
    rows.append({"bar": "restart with local state: first record ≤ 5 s", "figure": kept, "target": 5,
                 "met": kept is not None and kept <= 5})
    rate = rec.get("rebuild_records_per_second")
    rows.append({"bar": "rebuild ≥ 5,000 state records/s", "figure": rate, "target": 5000,
                 "met": rate is not None and rate >= 5000})
    equal = (rec.get("state") or {}).get("equal")
    rows.append({"bar": "rebuilt state equals state before the kill", "figure": equal, "target": True, "met": equal is True})
    for row in rows:
        f, t = row["figure"], row["target"]
        if not row["met"] and isinstance(f, int | float) and not isinstance(f, bool) and f:
            row["miss"] = f"{f / t:.2f}× the bar"
    return rows


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
    names, values = ["limit", "peer"], [sc.get("limit", {}).get("per_second") or 0, sc.get("peer", {}).get("per_second") or 0]
    for stage in STAGES:
        names.append(f"{stage} alone")
        values.append(_rate(sc.get("stages", {}).get(stage)) or 0)
    names += ["e2e 1 proc", "e2e proc/stage"]
    values += [_rate(sc.get("end_to_end_one_process")) or 0, _rate(sc.get("end_to_end_process_per_stage")) or 0]
    for k, block in (sc.get("scale_out") or {}).items():
        names.append(f"scale ×{k}")
        values.append(_rate(block) or 0)
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.bar(names, values, color=["#777", "#aaa"] + ["#3a7"] * (len(names) - 2))
    ax.set_yscale("log")
    ax.set_ylabel("reports/s (log)")
    ax.set_title("Throughput, one run, same broker and records")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(PLOTS / "throughput.png", dpi=110)
    plt.close(fig)
    made.append("throughput.png")
    samples = (sc.get("memory_recovery") or {}).get("memory", {}).get("samples") or []
    if samples:
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot([s[1] for s in samples], [s[2] for s in samples], label="worker (ingest + correlate)")
        ax.plot([s[1] for s in samples], [s[3] for s in samples], label="broker", alpha=0.6)
        ax.set_xlabel("reports finished")
        ax.set_ylabel("RSS (MB)")
        ax.set_title("Memory against reports processed")
        ax.legend()
        fig.tight_layout()
        fig.savefig(PLOTS / "memory.png", dpi=110)
        plt.close(fig)
        made.append("memory.png")
    return made


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def render(results: dict[str, Any], source: Path, plots: list[str]) -> str:
    sc = results["scenarios"]
    env = results["environment"]
    limit = (sc.get("limit") or {}).get("per_second")
    peer = (sc.get("peer") or {}).get("per_second")
    lines = [
        "# Performance",
        "",
        f"Generated by `make bench{' QUICK=1' if results['profile'] == 'quick' else ''}` from "
        f"`{source.relative_to(PROJECT_ROOT)}` ({results['profile']} mode, {results.get('wall_seconds')} s). "
        f"Machine: {env['cores']} cores, Python {env['python']}, load average at start "
        f"{', '.join(f'{x:.1f}' for x in env['load_average_at_start'])}; "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items()) + ".",
        "Figures move 10–20 % between runs on a shared machine: compare within one run only.",
        "",
        f"Workload: {_fmt(results['workload']['records'])} records, {results['workload']['mean_record_bytes']} bytes "
        f"on average, {_fmt(results['workload']['duplicates'])} repeats, {_fmt(results['workload']['garbage'])} garbage, "
        f"over {results['workload']['event_days']} days of event time (bench/workload.py).",
        "",
        "## Bars",
        "",
        "| bar | figure | met |",
        "|---|---|---|",
    ]
    for row in bars(results):
        met = "yes" if row["met"] else f"**no**{' — ' + row['miss'] if 'miss' in row else ''}"
        lines.append(f"| {row['bar']} | {_fmt(row['figure'])} | {met} |")
    lines += ["", "## Throughput (reports/s)", "",
              f"Baselines in this run: **limit** {_fmt(limit)}/s (raw aiokafka consume → orjson → produce), "
              f"**peer** {_fmt(peer)}/s (bare Faust forwarder).", "",
              "| what | reports/s | × peer | × limit | complete | seconds |", "|---|---|---|---|---|---|"]

    def row(name: str, block: Any) -> None:
        if not isinstance(block, dict):
            return
        if "error" in block:
            lines.append(f"| {name} | error: {block['error'][:120]} | | | | |")
            return
        rate = block.get("reports_per_second")
        xp = f"{rate / peer:.2f}" if rate and peer else ""
        xl = f"{rate / limit:.3f}" if rate and limit else ""
        done = "yes" if block.get("complete", True) else f"no ({block.get('share_done', 0):.0%} done)"
        lines.append(f"| {name} | {_fmt(rate)} | {xp} | {xl} | {done} | {_fmt(block.get('seconds'))} |")

    for stage in STAGES:
        row(f"{stage} alone", (sc.get("stages") or {}).get(stage))
    row("end to end, one process", sc.get("end_to_end_one_process"))
    row("end to end, one process per stage", sc.get("end_to_end_process_per_stage"))
    for k, block in (sc.get("scale_out") or {}).items():
        row(f"scale-out: {k} process(es) per stage, {block.get('partitions', 4)} partitions", block)
    if "throughput.png" in plots:
        lines += ["", "![throughput](performance/throughput.png)"]
    lines += ["", "## Latency (send → record)", "", "| rate asked | achieved | kept up | to incident p50 / p99 / max (ms) "
              "| to alert p50 / p99 / max (ms) |", "|---|---|---|---|---|"]
    for key in sorted(k for k in sc if k.startswith("latency_") and not k.endswith("_wall_s")):
        b = sc[key]
        if "error" in b:
            lines.append(f"| {key} | error: {b['error'][:120]} | | | |")
            continue
        i, a = b["to_incident"], b["to_alert"]
        lines.append(f"| {b['rate_asked']:.0f}/s | {b['rate_achieved']:.0f}/s | {b['kept_up']} | "
                     f"{i['p50_ms']} / {i['p99_ms']} / {i['max_ms']} (n={i['count']}) | "
                     f"{a['p50_ms']} / {a['p99_ms']} / {a['max_ms']} (n={a['count']}) |")
    mr = sc.get("memory_recovery") or {}
    mem, rec = mr.get("memory") or {}, mr.get("recovery") or {}
    lines += ["", "## Memory", ""]
    if "error" in mr:
        lines.append(f"error: {mr['error'][:300]}")
    if mem:
        lines.append(f"{_fmt(mem.get('reports'))} reports over {mem.get('event_days')} days of event time through "
                     f"`ingest correlate` in one worker ({_fmt(mem.get('reports_per_second'))} reports/s, "
                     f"complete: {mem.get('complete')}): worker peak RSS **{mem.get('worker_peak_rss_mb')} MB**, "
                     f"broker peak RSS {mem.get('broker_peak_rss_mb')} MB.")
        if "memory.png" in plots:
            lines += ["", "![memory](performance/memory.png)"]
    lines += ["", "## Recovery", ""]
    if rec:
        st = rec.get("state", {})
        lines.append(f"First processed record after a restart: {rec.get('kept_state_first_record_s')} s with local state "
                     f"kept; {rec.get('wiped_state_first_record_s')} s with it wiped, rebuilding "
                     f"{_fmt(sum(rec.get('changelog_records', {}).values()))} changelog records "
                     f"({rec.get('changelog_records')}) at {_fmt(rec.get('rebuild_records_per_second'))} records/s. "
                     f"Rebuilt state equal to the state before the kill: **{st.get('equal')}** "
                     f"({_fmt(st.get('entries_before'))} entries before, {_fmt(st.get('entries_after'))} after; "
                     f"missing {st.get('missing')}, extra {st.get('extra')}, different {st.get('different')}).")
    cc = sc.get("correlation_cost") or {}
    lines += ["", "## Correlation cost (pure `Correlator.add`)", ""]
    for held, block in cc.items():
        if isinstance(block, dict):
            lines.append(f"- {held} held: {block['us_per_report']} µs/report")
    if "ratio" in cc:
        lines.append(f"- ratio: {cc['ratio']}")
    prof = sc.get("profile_alert") or {}
    lines += ["", "## Where the alert stage's time goes (cProfile, top by own time)", ""]
    if prof.get("top_by_own_time"):
        lines += [f"Profile: `{prof['file']}` (view with `python -m pstats`).", "",
                  "| function | calls | own s | cumulative s |", "|---|---|---|---|"]
        for r in prof["top_by_own_time"][:12]:
            lines.append(f"| `{r['function']}` | {_fmt(r['calls'])} | {r['own_s']} | {r['cumulative_s']} |")
    elif "error" in prof:
        lines.append(f"error: {prof['error'][:300]}")
    if not plots:
        lines += ["", "_Plots not drawn: matplotlib is not installed (install the `bench` extra)._"]
    lines += ["", "## Method", "", "See the docstrings of bench/scenarios/*.py and bench/baselines.py; "
              "`python -m bench.report <results.json>` re-renders this page.", ""]
    notes = PROJECT_ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    return "\n".join(lines)


def write(results: dict[str, Any], source: Path) -> None:
    plots = _plots(results)
    DOC.write_text(render(results, source, plots))
    print(f"bench: wrote {DOC.relative_to(PROJECT_ROOT)}" + (f" and {len(plots)} plot(s)" if plots else ""))


if __name__ == "__main__":
    path = Path(sys.argv[1]).resolve()
    write(orjson.loads(path.read_bytes()), path)
