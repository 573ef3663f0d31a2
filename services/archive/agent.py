"""The archive service (`ceasefire worker archive`): the history sink and the read API over it."""

from __future__ import annotations

import asyncio
import functools
import importlib

import faust
from sqlalchemy.exc import SQLAlchemyError

from schemas.source import spelling
from services.archive.rows import ARCHIVED
from services.archive.store import ArchiveMismatch
from services.archive.writer import ArchiveWriter, prepare
from services.runtime.admin import ensure_topics
from services.runtime.context import Context
from services.runtime.failure import EXIT_STAGE_FAULT, end_process

EXIT_CONFIG = 2  # as a mistake in the registries: the archive cannot be opened as configured


def install(app: faust.App, ctx: Context) -> None:
    opened: asyncio.Future[ArchiveWriter] = asyncio.get_event_loop().create_future()

    @app.task
    async def archive() -> None:
        cluster_id = await ensure_topics(ctx.settings, roles=list(ARCHIVED))
        try:
            engine = await asyncio.to_thread(prepare, ctx.settings, cluster_id)
        except (ArchiveMismatch, SQLAlchemyError, OSError) as exc:
            end_process(EXIT_CONFIG, f"cannot open the archive: {exc}")
            return
        writer = ArchiveWriter(ctx.settings, ctx.metrics, engine, functools.partial(spelling, ctx.sources))
        ctx.stages["archive"] = writer
        opened.set_result(writer)
        try:
            await writer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a fault in the machinery: stop, replay on restart
            end_process(EXIT_STAGE_FAULT, f"the archive stopped: {exc!r}")

    if ctx.settings.web_port != 0:
        importlib.import_module("services.archive.api").install(app, ctx, opened)
