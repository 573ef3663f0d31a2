"""Every query of the Grafana dashboard returns data from a real Prometheus scraping a real worker.

A worker running every stage processes the demo scenario while Prometheus (Debian's
/usr/bin/prometheus, with the recording and alerting rules of deploy/prometheus) scrapes it every
second; then each panel expression, with Grafana's variables filled in, goes through /api/v1/query.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.grafana import dashboard
from services.console.post import post_lines
from services.runtime.broker import free_port
from services.runtime.settings import PROJECT_ROOT
from tests.support.kafka import eventually
from tests.support.worker import WorkerProcess, isolated_settings

STAGES = ("ingest", "correlate", "alert")
SCENARIO = PROJECT_ROOT / "deploy" / "demo" / "scenario.jsonl"
CEASEFIRE = "in-pk-2025-05-10"
RULE_FILES = sorted((PROJECT_ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
# Grafana fills these in before a query leaves it; a 1 s scrape makes a 1 m window plenty.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$ceasefire": CEASEFIRE,
}
PACE_SECONDS = 4.0  # spread the scenario over a few scrapes, so rates and quantiles have something to show


class Prometheus:
    """A Prometheus server on a free loopback port, scraping one worker every second."""

    def __init__(self, binary: str, work_dir: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in RULE_FILES],
            "scrape_configs": [
                {
                    "job_name": "ceasefire",
                    "static_configs": [{"targets": [target], "labels": {"stage": "+".join(STAGES)}}],
                }
            ],
        }
        config_path = work_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = work_dir / "prometheus.log"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]

    async def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.process.returncode}; log: {self.log_path}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False

    def scrape_count(self) -> int:
        result = self.query('count_over_time(up{job="ceasefire"}[10m])')
        return int(float(result[0]["value"][1])) if result else 0

    async def scraped(self, times: int) -> bool:
        return self.scrape_count() >= times

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@pytest.fixture
def prometheus_binary() -> str:
    path = shutil.which("prometheus", path="/usr/bin:/usr/local/bin")
    if path is None:
        pytest.fail("prometheus not found: run `make system-deps` (installs Debian's prometheus package)")
    return path


def panel_queries() -> Iterator[tuple[str, str]]:
    """(panel title, PromQL as Grafana would send it) for every Prometheus target of every panel (the
    archive's SQL ones: tests/e2e/test_archive_panels.py)."""
    board = json.loads(dashboard.OUTPUT.read_text())
    for panel in board["panels"]:
        for inner in (panel, *panel.get("panels", [])):
            for target in inner.get("targets", []):
                if target["datasource"]["uid"] != dashboard.DATASOURCE_UID:
                    continue
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{inner['title']}: unfilled variable in {expr!r}"
                yield inner["title"], expr


def rule_inputs() -> set[str]:
    """Raw series the alerting and recording rules read (recorded series and `up` left out)."""
    names: set[str] = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                names |= set(re.findall(r"\b(ceasefire_[a-z0-9_]+)\{", rule["expr"]))
    return names


def has_numbers(result: list[dict[str, Any]]) -> bool:
    """Non-empty, and not only NaN (a quantile over no observations): something a panel can draw."""
    return any(not math.isnan(float(sample["value"][1])) for sample in result)


async def test_every_dashboard_query_returns_data(
    broker, workers, tmp_path: Path, prometheus_binary: str
) -> None:
    settings = isolated_settings(broker.url, tmp_path / "state")
    worker = WorkerProcess(settings, STAGES, tmp_path / "worker.log").start()
    workers.append(worker)
    await worker.wait_serving(timeout=60)
    prometheus = Prometheus(prometheus_binary, tmp_path, f"{settings.web_host}:{settings.web_port}")
    try:
        await eventually(prometheus.ready, timeout=30, what="prometheus ready")
        await eventually(lambda: prometheus.scraped(2), timeout=30, what="two scrapes before the scenario")

        lines = [line for line in SCENARIO.read_bytes().splitlines() if line.strip()]
        await post_lines(settings, lines, pace_seconds=PACE_SECONDS)

        async def processed() -> bool:
            try:
                samples = worker.scrape()
            except OSError:
                return False
            lag = [v for (name, _), v in samples.items() if name == "ceasefire_consumer_lag_records"]
            counted = sum(v for (name, _), v in samples.items() if name == "ceasefire_reports_total")
            return counted >= len(lines) and bool(lag) and not any(lag)

        await eventually(processed, timeout=90, what=f"{len(lines)} scenario lines processed, no lag left")
        processed_at = prometheus.scrape_count()
        await eventually(lambda: prometheus.scraped(processed_at + 2), timeout=30, what="two scrapes after")

        queries = list(panel_queries())
        assert len(queries) >= 10
        empty: dict[str, str] = {}

        async def all_have_data() -> bool:
            empty.clear()
            for title, expr in queries:
                if not has_numbers(prometheus.query(expr)):
                    empty[expr] = title
            return not empty

        try:
            # Recording rules are evaluated on their own clock: allow them a few evaluations.
            await eventually(all_have_data, timeout=20, interval=1.0, what="data for every query")
        except TimeoutError:
            listed = "\n".join(f"  {title}: {expr}" for expr, title in empty.items())
            pytest.fail(f"dashboard queries with no data:\n{listed}")

        # Every rule loaded and evaluates without error, on series that exist (a renamed metric
        # would leave an alert silently never firing).
        rules = [rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]]
        written = [g for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"]]
        assert len(rules) == sum(len(group["rules"]) for group in written)
        assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
        for name in sorted(rule_inputs()):
            found = prometheus.query(f'count({{__name__="{name}", job="ceasefire"}})')
            assert found, f"rules read {name}, which the worker does not export"

        # The ceasefire picker (label_values over the fragility index) offers the demo ceasefire.
        offered = prometheus.get(
            "/api/v1/label/ceasefire/values", **{"match[]": 'ceasefire_fragility_index{job="ceasefire"}'}
        )
        assert CEASEFIRE in offered
    finally:
        prometheus.stop()


def test_panel_queries_fill_every_grafana_variable() -> None:
    for title, expr in panel_queries():
        assert "$" not in expr, title
