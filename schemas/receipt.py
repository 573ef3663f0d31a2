"""What became of a report: the receipt ingest keeps per `(source, report_id)`, and where correlation
placed it (docs/reports.md, "Receipts").

Two compacted topics, one writer each, both keyed `"<source> <report_id>"` (neither may hold a space):
- `ceasefire.reports.receipts.v1` (`Receipt`, by dedup, which alone sees every ruling on a source's
  reports): accepted / duplicate / dead-lettered / retracted, the current revision, every rejection;
- `ceasefire.reports.placements.v1` (`Placement`, by correlation): the incident the report is in.
The read API and `ceasefire report-status` join the two.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.ingest import Origin, Problem

Outcome = Literal["accepted", "duplicate", "dead_lettered", "retracted"]
KEPT_REJECTIONS = 10
__all__ = ["KEPT_REJECTIONS", "Outcome", "Placement", "Problem", "Receipt", "Rejection", "receipt_key"]


def receipt_key(source: str, report_id: str) -> str:
    return f"{source} {report_id}"


class Rejection(BaseModel):
    """A record about this report that was dead-lettered."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    reason: str  # the primary reason
    problems: list[Problem]
    revision: int | None = None  # as the record stated it, when it could be read
    origin: Origin  # where it was read on the ingest topic
    at: AwareDatetime  # processing time of the ruling


class Receipt(BaseModel):
    """The current standing of one report, rewritten whole at every ruling on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    report_id: str
    ceasefire_id: str | None = None
    outcome: Outcome  # of the report as it stands: accepted (or retracted) once any revision was accepted
    revision: int | None = None  # the current accepted revision
    retraction_reason: str | None = None
    duplicate_of: str | None = None  # outcome duplicate: the report_id it repeats (same source)
    rule: Literal["exact", "resubmission"] | None = None
    repeats: int = 0  # records of an accepted revision sent again (exact duplicates)
    accepted_at: AwareDatetime | None = None  # processing time the current revision was accepted
    origin: Origin | None = None  # of the record that made the current standing
    rejections: list[Rejection] = Field(default_factory=list)  # the newest KEPT_REJECTIONS, oldest first
    updated_at: AwareDatetime

    @property
    def key(self) -> str:
        return receipt_key(self.source, self.report_id)


class Placement(BaseModel):
    """Where correlation holds a report: its incident (None once retracted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    source: str
    report_id: str
    ceasefire_id: str
    revision: int
    incident_id: str | None
    incident_version: int | None = None

    @property
    def key(self) -> str:
        return receipt_key(self.source, self.report_id)
