"""`GET /reports/{source}/{report_id}`: what became of a report (docs/reports.md, "Receipts").

Any worker answers (every worker reads the receipts and placements topics whole: view.py). 200 with the
standing; 400 for a source or report id that no report could have; 404 when no record names it.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from schemas.report import is_report_id, is_source_id
from schemas.source import spelling
from services.receipts.view import ReceiptBook, Standing
from services.runtime.context import Context


def answer(standing: Standing) -> dict[str, Any]:
    """The receipt, with the incident the report is in (null when none)."""
    body: dict[str, Any] = standing.receipt.model_dump(mode="json")
    placed = standing.placement
    in_force = standing.receipt.outcome == "accepted" and placed is not None and placed.incident_id is not None
    body["incident"] = (
        {"incident_id": placed.incident_id, "version": placed.incident_version, "revision": placed.revision}
        if in_force and placed is not None
        else None
    )
    return body


def install(app: faust.App, ctx: Context) -> ReceiptBook:
    book = ReceiptBook(ctx.settings)

    @app.task
    async def read_receipts() -> None:
        await book.run()

    @app.page("/reports/{source:.+}/{report_id}")
    async def report_status(web: View, request: Request, source: str, report_id: str) -> Response:
        if not is_source_id(source) or not is_report_id(report_id):
            return web.json({"error": "source or report_id is not one a report could have (docs/reports.md)"}, status=400)
        spelled = spelling(ctx.sources, source)
        standing = await book.standing(spelled, report_id)
        if standing is None:
            return web.json({"error": f"no record names report {report_id} of source {spelled}"}, status=404)
        return web.json(answer(standing))

    return book
