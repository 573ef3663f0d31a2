"""A real worker process (`ceasefire worker …`) for integration tests: start, await, kill, read metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from services.runtime.broker import free_port
from services.runtime.settings import Settings


def isolated_settings(broker_url: str, data_dir: Path, **overrides: object) -> Settings:
    """Settings with a topic set and consumer group of their own, so tests never share state."""
    base = Settings(broker=broker_url, data_dir=data_dir, web_port=free_port(), store="rocksdb://")
    return base.isolated("t").model_copy(update=overrides)


def settings_env(settings: Settings) -> dict[str, str]:
    return settings.environment(os.environ)


class WorkerProcess:
    def __init__(
        self, settings: Settings, services: tuple[str, ...], log_path: Path, prefix: tuple[str, ...] = ()
    ) -> None:
        self.settings = settings
        self.services = services
        self.log_path = log_path
        self.prefix = prefix  # e.g. `ip netns exec <namespace>`: the worker on another host (tests/support/netns.py)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "services.console.cli", "worker", *self.services, "--loglevel", "warning"],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.web_host}:{self.settings.web_port}/metrics"

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(self.metrics_url, timeout=2) as response:  # noqa: S310 - loopback
            text = response.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def sum_metric(self, name: str, **labels: str) -> float:
        try:
            samples = self.scrape()
        except OSError:
            return 0.0
        return sum(v for (n, ls), v in samples.items() if n == name and all((k, v2) in ls for k, v2 in labels.items()))

    async def wait_serving(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}; log: {self.log_path}")
            try:
                self.scrape()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("worker web server did not come up") from None
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode
