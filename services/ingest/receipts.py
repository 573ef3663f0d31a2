"""Receipts: the standing of each report after every ruling on it (schemas/receipt.py).

Pure: the previous receipt and one ruling in, the next receipt out. A ruling on a record that is the
one already noted (a re-delivery at the same origin) changes nothing, so a replay writes the same.
"""

from __future__ import annotations

from datetime import datetime

from schemas.ingest import Origin
from schemas.receipt import KEPT_REJECTIONS, Problem, Receipt, Rejection
from schemas.report import Report
from services.ingest import validate


def problem(found: validate.Problem) -> Problem:
    """A validation problem as a receipt lists it."""
    return Problem(reason=found.reason.value, path=found.path, message=found.message)


def accepted(previous: Receipt | None, report: Report, origin: Origin, now: datetime) -> Receipt:
    """A revision of the report was accepted (a retraction included)."""
    return Receipt(
        source=report.source,
        report_id=report.report_id,
        ceasefire_id=report.ceasefire_id,
        outcome="retracted" if report.retracted else "accepted",
        revision=report.revision,
        retraction_reason=report.retraction_reason,
        repeats=0 if previous is None else previous.repeats,
        accepted_at=now,
        origin=origin,
        rejections=[] if previous is None else previous.rejections,
        updated_at=now,
    )


def repeated(previous: Receipt | None, report: Report, origin: Origin, now: datetime) -> Receipt:
    """An accepted revision of the report sent again: one more repeat, the standing unchanged."""
    if previous is None:  # accepted before receipts were kept: what is known now
        return accepted(None, report, origin, now).model_copy(update={"repeats": 1, "accepted_at": None})
    return previous.model_copy(update={"repeats": previous.repeats + 1, "updated_at": now})


def resubmitted(previous: Receipt | None, report: Report, of: str, origin: Origin, now: datetime) -> Receipt:
    """The report repeats the same source's report `of` under a new id (the resubmission rule)."""
    return Receipt(
        source=report.source,
        report_id=report.report_id,
        ceasefire_id=report.ceasefire_id,
        outcome="duplicate",
        duplicate_of=of,
        rule="resubmission",
        origin=origin,
        rejections=[] if previous is None else previous.rejections,
        updated_at=now,
    )


def rejected(
    previous: Receipt | None,
    identity: tuple[str, str],
    reason: str,
    problems: list[Problem],
    origin: Origin,
    now: datetime,
    ceasefire_id: str | None = None,
    revision: int | None = None,
) -> Receipt:
    """A record about the report was dead-lettered: noted beside the standing, which it does not change
    (a rejected correction leaves the accepted revision in force)."""
    rejection = Rejection(reason=reason, problems=problems, revision=revision, origin=origin, at=now)
    if previous is None:
        source, report_id = identity
        return Receipt(
            source=source, report_id=report_id, ceasefire_id=ceasefire_id, outcome="dead_lettered",
            origin=origin, rejections=[rejection], updated_at=now,
        )
    if any(r.origin == origin for r in previous.rejections):
        return previous  # this very record, read again
    kept = [*previous.rejections, rejection][-KEPT_REJECTIONS:]
    return previous.model_copy(update={"rejections": kept, "updated_at": now, "ceasefire_id": previous.ceasefire_id or ceasefire_id})
