"""Valid incidents to feed the alert stage; tests say only what they are about.

Times are hours after START (12:00 UTC on 10 May 2025, half an hour into the reference ceasefire).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from schemas.incident import RUNG, CasualtyRange, Incident, ReportLink, Status
from schemas.report import ViolationType

CEASEFIRE = "in-pk-2025-05-10"
START = datetime(2025, 5, 10, 12, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    return START + timedelta(hours=hours)


def incident(
    incident_id: str = "inc-1",
    hours: float = 0.0,
    *,
    version: int = 1,
    status: Status = "claimed",
    violation: ViolationType = ViolationType.SMALL_ARMS,
    sectors: Sequence[str] = ("Poonch",),
    killed: int | None = None,
    injured: int | None = None,
    merged_into: str | None = None,
    ceasefire_id: str = CEASEFIRE,
) -> Incident:
    """One incident last observed `hours` after START; `mutual` means both parties report and
    accuse, `corroborated` that a neutral observer confirms the Indian report."""
    when = at(hours)
    parties = [("in.army", "IN", "PK")]
    if status == "mutual":
        parties.append(("pk.ispr", "PK", "IN"))
    if status == "corroborated":
        parties.append(("un.unmogip", "NEUTRAL", None))
    reports = [
        ReportLink(
            source=source,
            report_id=f"{incident_id}-r{n}",
            source_party=party,
            accused_party=accused,
            observed_at=when,
            violation_type=violation,
            sector=sectors[0] if sectors else None,
            killed=killed,
            injured=injured,
            ingested_at=when + timedelta(minutes=1),
            linked_to=None if n == 0 else (parties[0][0], f"{incident_id}-r0"),
            gap_minutes=None if n == 0 else 0.0,
        )
        for n, (source, party, accused) in enumerate(parties)
    ]
    return Incident(
        incident_id=incident_id,
        ceasefire_id=ceasefire_id,
        version=version,
        status=status,
        merged_into=merged_into,
        first_observed_at=when,
        last_observed_at=when,
        sectors=list(sectors),
        violation_types=[violation],
        severity=RUNG[violation],
        reporting_parties=sorted({p for _, p, _ in parties}),
        accused_parties=sorted({a for _, _, a in parties if a is not None}),
        sources=sorted({s for s, _, _ in parties}),
        reports=reports,
        report_count=len(reports),
        casualties=CasualtyRange(
            killed_low=killed, killed_high=killed, injured_low=injured, injured_high=injured
        ),
    )
