"""Error policy, in one place: what a stage does when something it did not expect goes wrong.

Bad *input* never gets here: validation dead-letters it, and a record a later stage cannot decode or
whose logic raises on it is dead-lettered by that stage (`quarantine`, below), which goes on.
What gets here is a fault in the machinery (a broker send that fails, a bug). Faust would crash the
agent and carry on, and its batch helper acknowledges the batch on the way out: the offsets would be
committed for records that were never written anywhere. So the process stops at once, without
committing, exactly as a SIGKILL would: on restart the batch is processed again (re-emitted, never
dropped), and the orchestrator (compose `restart: unless-stopped`, systemd, k8s) brings it back.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from schemas.topics import Role
from services.runtime.state import Fenced

if TYPE_CHECKING:
    import faust

    from services.runtime.context import Context

EXIT_STAGE_FAULT = 70  # EX_SOFTWARE

log = logging.getLogger("ceasefire.failure")


def end_process(code: int, message: str) -> None:
    """Log one critical line, say it on stderr, and end the process at once: no commit, no clean
    mark (the next start rebuilds its state from the changelogs). For a watch or a timer that must
    end a worker whose event loop may be stuck (services/runtime/watchdog.py, runner.py)."""
    log.critical(message)
    sys.stderr.write(f"ceasefire: {message}\n")
    sys.stderr.flush()
    os._exit(code)  # logging handlers flush each record: nothing is left to shut down


def describe(error: BaseException) -> str:
    """An error in one bounded line, for dead-letter headers and problems."""
    return f"{type(error).__name__}: {error}"[:500]


async def or_die(stage: str, work: Awaitable[None]) -> None:
    """Await one batch's work; on any exception, report it and end the process without committing.

    But a worker found fenced (another worker owns a partition it wrote: services/runtime/fixes/
    tables.py) drops the batch and goes on: it is out of the group, so its commit is refused, and the
    rebalance that follows gives it partitions to rebuild."""
    try:
        await work
    except Fenced as fenced:
        log.warning("stage %s: %s; the batch is dropped, this worker rejoins its group", stage, fenced)
    except Exception:  # noqa: BLE001 - this is the one place that catches everything, on purpose
        log.critical("stage %s failed; exiting without committing offsets", stage, exc_info=True)
        sys.stderr.write(f"ceasefire: stage {stage} failed, exiting without committing:\n{traceback.format_exc()}")
        sys.stderr.flush()
        os._exit(EXIT_STAGE_FAULT)


# Per record: a stage after validation never dies on one record. Its logic raising on one report or
# incident version, or an input record that does not decode, is that record's fault: it goes to the
# stage dead-letter topic with these headers and the stage goes on (docs/topics.md).
UNDECODABLE = "undecodable"
FAULT = "fault"


def stage_dead_letter_headers(
    stage: str, topic: str, partition: int, offset: int, reason: str, error: BaseException
) -> list[tuple[str, bytes]]:
    message = describe(error)
    return [
        ("__connect.errors.topic", topic.encode()),
        ("__connect.errors.partition", str(partition).encode()),
        ("__connect.errors.offset", str(offset).encode()),
        ("__connect.errors.stage", stage.encode()),
        ("__connect.errors.exception.class.name", type(error).__name__.encode()),
        ("__connect.errors.exception.message", message.encode()),
        ("ceasefire.reason", reason.encode()),
    ]


async def quarantine(
    app: faust.App,
    ctx: Context,
    stage: str,
    message: Any,
    reason: str,
    error: BaseException,
    value: bytes | None = None,
) -> Awaitable[Any]:
    """Send one record the stage gives up on to the stage dead-letter topic (`value`, or else the input
    record's own bytes) and count it; returns the acknowledgement to await with the batch's sends."""
    log.error("stage %s: %s record at %s[%d]@%d: %s", stage, reason, message.topic, message.partition,
              message.offset, describe(error))
    counter = ctx.metrics.undecodable if reason == UNDECODABLE else ctx.metrics.record_faults
    counter.labels(stage).inc()
    headers = stage_dead_letter_headers(stage, message.topic, message.partition, message.offset, reason, error)
    topic = ctx.settings.topic(Role.STAGE_DEAD_LETTERS)
    body = message.value if value is None else value
    return await app.producer.send(topic, None, body, None, None, headers)
