"""Process lifecycle: embedded broker (if no URL is given), topics, then a Faust worker in this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import faust
import uvloop

from services.ingest.validate import Reason
from services.runtime import heap
from services.runtime.admin import ensure_topics
from services.runtime.app import create_app
from services.runtime.broker import BrokerError, EmbeddedBroker, free_port, port_free
from services.runtime.context import Context
from services.runtime.failure import end_process
from services.runtime.settings import Settings
from services.runtime.state import unsent_writes
from services.runtime.topic_plan import stage_roles
from services.runtime.watchdog import watch_broker

AppHook = Callable[[faust.App, Context], None]


def with_free_web_port(settings: Settings) -> Settings:
    """`run` is for a person at a terminal: a busy default port moves aside instead of failing."""
    if settings.web_port == 0 or port_free(settings.web_host, settings.web_port):
        return settings
    return settings.model_copy(update={"web_port": free_port(settings.web_host)})


@contextlib.contextmanager
def broker_for(settings: Settings, log_path: Path | None = None) -> Iterator[Settings]:
    """Yield settings with a broker URL: the configured one, or an embedded broker started here."""
    if settings.broker is not None:
        yield settings
        return
    with EmbeddedBroker(port=settings.broker_port, log_path=log_path) as broker:
        yield settings.model_copy(update={"broker": broker.url})


CLEAN_MARK = "stopped-cleanly"
FAUST_APPDIR = "v1"  # Faust keeps its local table data in <datadir>/v<app version>


CLUSTER_FILE = "cluster-id"  # inside FAUST_APPDIR: it lives and goes with the state it describes


def prepare_local_state(data_dir: Path, cluster_id: str | None = None) -> str | None:
    """Keep local table state only if it can be trusted; returns why it was wiped, or None.

    Faust writes a table update to RocksDB at once but only queues its changelog record, so after a
    SIGKILL the local files can hold entries the changelog never got. The restarted worker would then
    treat the re-delivered reports as already seen and never write those entries, and a later rebuild
    from the changelog (a takeover, a lost disk) would lack them. Rebuilding from the changelog after
    every unclean stop keeps the two equal; the fence (tables.py) makes that rebuild exact.

    State written against another Kafka cluster (the embedded broker restarted: it is memory-only; a
    cluster rebuilt) is no more trusted than that: every report re-posted to the new cluster would be
    ruled a duplicate of one the new cluster never saw. It is tied to the cluster id it was written
    against (`cluster_id`, None: not checked). Per partition, a local offset beyond its changelog's end
    is caught too (tables.FencedTable), for a cluster rebuilt under the same id. Only Faust's own
    directory goes: logs and anything else in `data_dir` stay.
    """
    mark = data_dir / CLEAN_MARK
    tables = data_dir / FAUST_APPDIR
    known = tables / CLUSTER_FILE
    reason = None
    if tables.exists() and not mark.exists():
        reason = "the last worker on it did not stop cleanly"
    elif tables.exists() and cluster_id is not None:
        stored = known.read_text().strip() if known.exists() else "an unknown cluster"
        if stored != cluster_id:
            reason = f"it was written against Kafka cluster {stored}, the broker is cluster {cluster_id}"
    if reason is not None:
        shutil.rmtree(tables)
    if cluster_id is not None:
        tables.mkdir(parents=True, exist_ok=True)
        known.write_text(cluster_id)
    data_dir.mkdir(parents=True, exist_ok=True)
    mark.unlink(missing_ok=True)  # until this worker stops cleanly
    return reason


EXIT_STOP_TIMEOUT = 75  # EX_TEMPFAIL: a stop that did not finish in time (no clean mark: state rebuilt)


class BoundedStopWorker(faust.Worker):
    """A stop always ends: Faust's own waits ("Wait for streams…", the commit and leave-group) hang
    on a broker that is gone (measured: still alive 2.5 minutes after SIGTERM). A timer thread, which
    a blocked loop cannot hold up, ends the process `stop_timeout` seconds after the first signal."""

    def __init__(self, stop_timeout: float, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.stop_timeout = stop_timeout
        self._deadline: threading.Timer | None = None

    def _schedule_shutdown(self, signal: signal.Signals) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self.stop_timeout, _stop_overdue, args=(self.stop_timeout,))
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(signal)


def _stop_overdue(seconds: float) -> None:
    end_process(EXIT_STOP_TIMEOUT, f"the stop did not finish in {seconds:g} s: exiting")


def _watch(app: faust.App, settings: Settings, cluster_id: str) -> None:
    @app.task
    async def watch_the_broker() -> None:
        await watch_broker(settings, cluster_id, settings.broker_lost_seconds)


def run_worker(
    settings: Settings,
    stages: Sequence[str],
    hooks: Sequence[AppHook] = (),
    loglevel: str = "info",
    logfile: Path | None = None,
) -> int:
    """Create topics, build the app and run it until SIGINT/SIGTERM. Returns the exit code."""
    if settings.web_port and not port_free(settings.web_host, settings.web_port):
        raise BrokerError(
            f"web port {settings.web_host}:{settings.web_port} is in use; set CEASEFIRE_WEB_PORT (or --web-port)"
        )
    try:  # the registries and the signing keys: a mistake in them stops the start, in one line
        ctx = Context.load(settings, tuple(reason.value for reason in Reason))
    except (OSError, ValueError) as exc:
        raise BrokerError(f"cannot start: {exc}") from None
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    roles = None if settings.create_topics else stage_roles(stages)  # else: only its stages' topics are its to see
    cluster_id = loop.run_until_complete(ensure_topics(settings, roles, wait=settings.broker_wait_seconds))  # first: a worker
    # that cannot reach its broker leaves the state and its clean mark as they were
    wiped = prepare_local_state(settings.data_dir, cluster_id)
    if wiped is not None:
        logging.getLogger("ceasefire.runner").warning(
            "local table state in %s is rebuilt from the changelogs: %s", settings.data_dir, wiped
        )
    app = create_app(ctx, stages)
    if settings.broker_lost_seconds > 0:
        _watch(app, settings, cluster_id)
    for hook in hooks:
        hook(app, ctx)
    worker = BoundedStopWorker(
        settings.stop_timeout_seconds,
        app,
        loop=loop,
        loglevel=loglevel,
        logfile=str(logfile) if logfile else None,
        quiet=True,
        redirect_stdouts=False,
        override_logging=True,
    )
    # Faust's start-up spinner, kept at levels >= WARNING, sets the root logger to DEBUG to spin on
    # every record: every library's debug call then builds a LogRecord (two per message sent, ~10 %
    # of a busy worker's time in the bench profile) only for the handlers to drop it.
    worker.spinner = None
    heap.settle()  # after imports and the app's construction: see services/runtime/heap.py
    heap.observe_pauses(ctx.metrics.gc_pause)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as stop:
        code = int(stop.code or 0)
    finally:
        logging.shutdown()
    if code == 0 and not unsent_writes(app):
        (settings.data_dir / CLEAN_MARK).touch()
    return code
