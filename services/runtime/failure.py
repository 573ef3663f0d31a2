"""Error policy, in one place: what a stage does when something it did not expect goes wrong.

Bad *input* never gets here: validation dead-letters it, and downstream decoders count and skip it.
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

EXIT_STAGE_FAULT = 70  # EX_SOFTWARE

log = logging.getLogger("ceasefire.failure")


async def or_die(stage: str, work: Awaitable[None]) -> None:
    """Await one batch's work; on any exception, report it and end the process without committing."""
    try:
        await work
    except Exception:  # noqa: BLE001 - this is the one place that catches everything, on purpose
        log.critical("stage %s failed; exiting without committing offsets", stage, exc_info=True)
        sys.stderr.write(f"ceasefire: stage {stage} failed, exiting without committing:\n{traceback.format_exc()}")
        sys.stderr.flush()
        os._exit(EXIT_STAGE_FAULT)
