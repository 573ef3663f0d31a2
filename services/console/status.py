"""`ceasefire report-status SOURCE REPORT_ID`: what became of one report, read from the receipts and
placements topics like any other client (docs/reports.md, "Receipts")."""

from __future__ import annotations

from typing import TypeVar

import orjson
from rich.console import Console
from rich.markup import escape

from schemas.receipt import Placement, Receipt
from schemas.topics import Role
from services.console.follow import read_values
from services.receipts.view import Standing, answer
from services.runtime.settings import Settings

R = TypeVar("R", Receipt, Placement)


async def find_standing(settings: Settings, source: str, report_id: str) -> Standing | None:
    """The newest receipt and placement of `(source, report_id)`; None when no record names it."""
    receipt = await _newest(settings, Role.RECEIPTS, Receipt, source, report_id)
    if receipt is None:
        return None
    return Standing(receipt, await _newest(settings, Role.PLACEMENTS, Placement, source, report_id))


async def _newest(settings: Settings, role: Role, model: type[R], source: str, report_id: str) -> R | None:
    needle = orjson.dumps(report_id)  # a cheap filter before parsing: the id appears as a JSON string
    newest: R | None = None
    async for raw in read_values(settings, settings.topic(role), False):
        if needle in raw:
            found = model.model_validate_json(raw)
            if (found.source, found.report_id) == (source, report_id):
                newest = found
    return newest


def standing_lines(standing: Standing) -> list[str]:
    """The standing for a person: the outcome first, then what was rejected and why."""
    body, receipt = answer(standing), standing.receipt
    head = f"{receipt.source}/{receipt.report_id}: [bold]{receipt.outcome.replace('_', '-')}[/]"
    if receipt.revision is not None:
        head += f" (revision {receipt.revision})"
    if receipt.outcome == "duplicate":
        head += f" of {escape(receipt.source)}/{escape(receipt.duplicate_of or '?')} ({receipt.rule})"
    if receipt.outcome == "retracted" and receipt.retraction_reason:
        head += f": {escape(receipt.retraction_reason)}"
    incident = body["incident"]
    if incident is not None:
        head += f" · in incident {incident['incident_id']} (version {incident['version']})"
    lines = [head]
    if receipt.repeats:
        lines.append(f"  sent again {receipt.repeats} time{'s' if receipt.repeats > 1 else ''} unchanged (duplicates)")
    for rejection in receipt.rejections:
        revision = "" if rejection.revision is None else f"revision {rejection.revision} "
        where = f"ingest partition {rejection.origin.partition} offset {rejection.origin.offset}"
        lines.append(f"  {revision}dead-lettered ({rejection.reason}) at {rejection.at.isoformat()} [{where}]:")
        lines.extend(f"    {escape(p.path)}: {escape(p.message)}" for p in rejection.problems)
    return lines


def print_standing(console: Console, standing: Standing | None, source: str, report_id: str, as_json: bool) -> int:
    if standing is None:
        console.print(escape(f"no record names report {report_id} of source {source}"))
        return 1
    if as_json:
        print(orjson.dumps(answer(standing)).decode())
    else:
        for line in standing_lines(standing):
            console.print(line)
    return 0
