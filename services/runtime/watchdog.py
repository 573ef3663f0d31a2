"""The broker watch: a worker that has lost its broker says so once, and exits after a bounded time.

Without it, aiokafka's consumer, metadata and coordinator loops retry forever (measured: ~14 KB/s of
errors at ~15 % CPU after a `kill -9` of the embedded broker), so a supervisor that restarts on exit
never acts; and when a broker came back as a new, empty cluster on the same address, the clients
reconnected without a word, auto-created topics with the broker's default partition count and went on
against state of the old cluster. So:
- the worker asks the broker for its cluster id every `INTERVAL_SECONDS`;
- the first failure is one log line, and the clients' own retry logs are held back while it lasts;
- after `CEASEFIRE_BROKER_LOST_SECONDS` without an answer, or at once when another cluster answers,
  it logs one line and exits `EXIT_BROKER_LOST` (69, EX_UNAVAILABLE) without committing or writing the
  clean mark: the next start rebuilds its state from the changelogs (runner.prepare_local_state).

`BrokerWatch` is the pure part (a clock passed in); `watch_broker` the loop a worker runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient

from services.runtime.failure import end_process
from services.runtime.kafka_security import client_options
from services.runtime.settings import Settings

INTERVAL_SECONDS = 2.0
EXIT_BROKER_LOST = 69  # EX_UNAVAILABLE
CLIENT_LOGGERS = ("aiokafka", "faust.transport", "kafka")

log = logging.getLogger("ceasefire.watchdog")
Verdict = Literal["ok", "lost", "back", "waiting", "gone", "other_cluster"]


@dataclass
class BrokerWatch:
    """What one answer (a cluster id, or None for no answer) at time `now` means."""

    cluster_id: str
    lost_after: float
    lost_since: float | None = None

    def answer(self, cluster_id: str | None, now: float) -> Verdict:
        if cluster_id is not None and cluster_id != self.cluster_id:
            return "other_cluster"
        if cluster_id is not None:
            back, self.lost_since = self.lost_since is not None, None
            return "back" if back else "ok"
        if self.lost_since is None:
            self.lost_since = now
            return "lost"
        return "gone" if now - self.lost_since >= self.lost_after else "waiting"


_held: dict[str, int] = {}


class ClientNoise(logging.Filter):
    """On the worker's log handlers: of a burst of client errors (a broker that just went away makes
    aiokafka log ~70 lines a second until the watch notices), the first passes and the rest of the
    burst are dropped; a burst that outlasts the watch's first look is the watch's to say."""

    def __init__(self, window: float) -> None:
        super().__init__()
        self.window = window
        self.quiet_until = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(CLIENT_LOGGERS):
            return True
        now = time.monotonic()
        if now < self.quiet_until:
            return False
        self.quiet_until = now + self.window
        return True


def hold_client_logs(hold: bool) -> None:
    """While the broker is away, its clients' retry errors say nothing the one line did not."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if hold:
            _held.setdefault(name, logger.level)
            logger.setLevel(logging.CRITICAL)
        elif name in _held:
            logger.setLevel(_held.pop(name))


async def ask_cluster_id(admin: AIOKafkaAdminClient, timeout: float) -> str | None:
    try:
        return str((await asyncio.wait_for(admin.describe_cluster(), timeout))["cluster_id"])
    except Exception:  # noqa: BLE001 - any failure to answer is "no answer"
        return None


async def watch_broker(settings: Settings, cluster_id: str, lost_after: float, interval: float = INTERVAL_SECONDS) -> None:
    """Run until the process exits: ask, judge, say once, exit when the broker is gone for good."""
    watch, bootstrap = BrokerWatch(cluster_id, lost_after), settings.bootstrap
    noise = ClientNoise(2 * interval)
    for handler in logging.getLogger().handlers:  # Faust has set them up by the time this task runs
        handler.addFilter(noise)
    def new_admin() -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(
            bootstrap_servers=settings.bootstrap, request_timeout_ms=int(interval * 1000), **client_options(settings)
        )

    admin = new_admin()
    loop = asyncio.get_running_loop()
    started = False
    while True:
        if not started:
            try:
                await asyncio.wait_for(admin.start(), interval)
                started = True
            except Exception:  # noqa: BLE001
                await admin.close()
                admin = new_admin()
        answer = await ask_cluster_id(admin, interval) if started else None
        verdict = watch.answer(answer, loop.time())
        if verdict == "other_cluster":
            end_process(EXIT_BROKER_LOST, f"the broker at {bootstrap} is another Kafka cluster now ({cluster_id} → {answer}): exiting")
        elif verdict == "gone":
            end_process(EXIT_BROKER_LOST, f"the broker at {bootstrap} has not answered for {lost_after:g} s: exiting")
        elif verdict == "lost":
            log.error("the broker at %s does not answer; exiting if it has not come back in %g s", bootstrap, lost_after)
            hold_client_logs(True)
        elif verdict == "back":
            log.warning("the broker at %s answers again", bootstrap)
            hold_client_logs(False)
        await asyncio.sleep(interval)
