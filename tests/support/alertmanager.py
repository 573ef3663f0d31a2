"""A real Alertmanager (Debian's `prometheus-alertmanager`) and a webhook receiver, both on loopback,
for tests of the forwarder. No gossip, state in a temp directory, quick grouping."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from services.runtime.broker import free_port

MISSING = (
    "Alertmanager is not installed: `make system-deps` installs it "
    "(apt-get install -y prometheus-alertmanager; binary /usr/bin/prometheus-alertmanager)"
)


def alertmanager_binary() -> str:
    """The binary, or a test failure (never a skip: CI must not pass without it)."""
    path = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if path is None:
        pytest.fail(MISSING)
    return path


@dataclass
class Webhook:
    """Records every notification Alertmanager posts, by path (one path per receiver)."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> Webhook:
        app = web.Application()
        app.router.add_post("/{receiver}", self._receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def _receive(self, request: web.Request) -> web.Response:
        self.received.append((request.match_info["receiver"], await request.json()))
        return web.Response(text="ok")

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def notifications(self, receiver: str, status: str) -> list[dict[str, Any]]:
        return [body for path, body in self.received if path == receiver and body["status"] == status]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def config(webhook: Webhook) -> dict[str, Any]:
    """The shape of deploy/alertmanager/alertmanager.yml, with seconds instead of minutes."""
    hook = {"send_resolved": True, "max_alerts": 0}
    return {
        "route": {
            "receiver": "desk",
            "group_by": ["alertname", "ceasefire"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [{"receiver": "critical", "matchers": ['severity="critical"']}],
        },
        "receivers": [
            {"name": "desk", "webhook_configs": [{**hook, "url": webhook.url("desk")}]},
            {"name": "critical", "webhook_configs": [{**hook, "url": webhook.url("critical")}]},
        ],
    }


class Alertmanager:
    def __init__(self, binary: str, workdir: Path, settings: dict[str, Any], port: int | None = None) -> None:
        self.binary, self.workdir = binary, workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "alertmanager.yml"
        self.config_path.write_text(yaml.safe_dump(settings))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 30.0) -> Alertmanager:
        log = (self.workdir / "alertmanager.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_path}",
                f"--storage.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"alertmanager exited with {self.process.returncode}; see {self.workdir}")
                try:
                    async with session.get(f"{self.url}/-/ready") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"alertmanager not ready within {timeout}s")
                await asyncio.sleep(0.1)

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(f"{self.url}{path}") as response:
            response.raise_for_status()
            return await response.json()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
