"""A worker found fenced (another worker was given a partition it wrote: services/runtime/fixes/tables.py)
sends nothing more, from any table or stage, until its next assignment: the batch after the one that
found the fence would otherwise go out, its writes following the fenced ones with no gap left to find."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.topics import Role
from services.runtime.app import create_app
from services.runtime.context import Context
from services.runtime.fixes.tables import ChangelogWrite, Fenced, FencedTable, fence_worker, fenced_reason
from services.runtime.settings import Settings
from services.runtime.stage import Outbox


@pytest.mark.asyncio
async def test_a_fenced_worker_sends_and_publishes_nothing(tmp_path: Path) -> None:
    ctx = Context.load(Settings(broker="kafka://127.0.0.1:9", data_dir=tmp_path, web_port=0, store="memory://"))
    app = create_app(ctx, ["ingest", "correlate"])  # never started: a send would fail on the producer
    tables = {t.name: t for t in app.tables.values() if isinstance(t, FencedTable)}
    tables["dedup"].written = {1, 2}
    tables["progress"].unsent = [ChangelogWrite(3, b"k", b"v")]  # the batch that found the fence, cut short
    assert fenced_reason(app) is None

    fence_worker(app, "table correlation: another owner's fence in changelog offsets {3: (90, 1708)}")
    assert fenced_reason(app) is not None
    assert tables["dedup"].doubtful == {1, 2}, "what it wrote is rebuilt when it is given the partitions again"
    assert tables["progress"].unsent == [] and tables["progress"].doubtful == {3}, "never sent under a later epoch"
    correlation = tables["correlation"]
    correlation.unsent = [ChangelogWrite(0, b"k", b"v")]
    with pytest.raises(Fenced):
        await correlation.send_unsent()
    assert correlation.unsent == [] and 0 in correlation.doubtful, "stored locally, never sent: rebuilt later"
    with pytest.raises(Fenced):
        await Outbox(app, ctx, "correlate").send(Role.BY_CEASEFIRE, None, b"{}", 0)
