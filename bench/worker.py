"""A worker process for the benchmark: `ceasefire worker` plus a probe, or the *peer* baseline.

`python -m bench.worker PROBE_PATH [--profile PROF_PATH] STAGE...` runs the named stages exactly as
`ceasefire worker` does (runner.run_worker: same app factory, settings from CEASEFIRE_* and uvloop),
with one hook added: a Faust sensor that counts, per topic, the records each agent finished
(`on_message_out`, called once the record is acked, i.e. after the agent body handled it) and the
records sent, with the wall time of the first and last of each. A timer writes these, and how long
the last table recovery took (our raw-consumer rebuild plus Faust's recovery, by its own monotonic
marks), to PROBE_PATH (JSON, replaced
atomically) every 0.1 s, so the harness reads progress without scraping HTTP.

With `--profile`, cProfile runs on the event loop's thread from the first record received (start-up,
imports and the group join excluded) until the harness creates PROF_PATH + ".stop"; then the
profile is written to PROF_PATH. The agents run on that thread; Faust's fetcher thread is not profiled.

STAGE `peer` installs the peer baseline instead: a bare agent forwarding each event of the reports
topic to the accepted topic, as a user would write it by hand (`async for`, one `send` per event).
"""

from __future__ import annotations

import cProfile
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.sensors import Sensor
from faust.types import TP

from schemas.topics import Role
from services.runtime.context import Context
from services.runtime.fixes.tables import FencedTable
from services.runtime.runner import run_worker
from services.runtime.settings import Settings

PROBE_EVERY_SECONDS = 0.1


class Probe(Sensor):
    """Counts and first/last wall times, per topic, of records finished and sent."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: dict[str, list[float]] = {}  # topic -> [count, first, last]
        self.done: dict[str, list[float]] = {}
        self.sent: dict[str, list[float]] = {}
        self.born = time.time()
        self.recovery_seconds: float | None = None
        self.profiler: cProfile.Profile | None = None  # enabled on the first record received

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        if self.profiler is not None and not self.received:
            self.profiler.enable()
        _tick(self.received, tp.topic)

    def on_message_out(self, tp: TP, offset: int, message: Any) -> None:
        _tick(self.done, tp.topic)

    def snapshot(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "started": self.born, "received": self.received, "done": self.done,
                "sent": self.sent, "recovery_seconds": self.recovery_seconds}


def _tick(table: dict[str, list[float]], topic: str) -> None:
    now = time.time()
    row = table.get(topic)
    if row is None:
        table[topic] = [1, now, now]
    else:
        row[0] += 1
        row[2] = now


def probe_hook(path: Path, profile: Path | None = None) -> Any:
    def install(app: faust.App, ctx: Context) -> None:
        probe = Probe()
        if profile is not None:
            probe.profiler = cProfile.Profile()
        app.sensors.add(probe)
        # Agents send with `app.producer.send`, which calls no sensor: count there.
        producer = app.producer
        send = producer.send

        async def counted_send(topic: str, *args: Any, **kwargs: Any) -> Any:
            _tick(probe.sent, topic)
            return await send(topic, *args, **kwargs)

        producer.send = counted_send  # type: ignore[method-assign]

        @app.timer(PROBE_EVERY_SECONDS)
        async def write_probe() -> None:
            recovery = app.tables.recovery
            began, ended = getattr(recovery, "_recovery_started_at", None), getattr(recovery, "_recovery_ended_at", None)
            if began is not None and ended is not None and ended >= began:
                # the raw-consumer rebuild (services/runtime/fixes/restore.py) runs just before Faust's recovery
                ours = sum(t.restored.seconds for t in app.tables.values() if isinstance(t, FencedTable))
                probe.recovery_seconds = ours + ended - began
            if probe.profiler is not None and profile is not None and profile.with_suffix(".stop").exists():
                probe.profiler.disable()
                probe.profiler.dump_stats(str(profile))
                probe.profiler = None
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps(probe.snapshot()))
            tmp.replace(path)

    return install


def peer_hook(app: faust.App, ctx: Context) -> None:
    s = ctx.settings
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(s.topic(Role.REPORTS), **raw)
    target = app.topic(s.topic(Role.ACCEPTED), **raw)

    @app.agent(source, name="peer-forward")
    async def forward(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await target.send(key=event.key, value=event.value)


def main(argv: list[str]) -> int:
    probe_path, *stages = argv
    profile = None
    if stages[:1] == ["--profile"]:
        profile, stages = Path(stages[1]), stages[2:]
    hooks = [probe_hook(Path(probe_path), profile)]
    if stages == ["peer"]:
        hooks.append(peer_hook)
        stages = []
    return run_worker(Settings(), stages, hooks=hooks, loglevel="warning")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
