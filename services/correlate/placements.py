"""Where each report is: a `Placement` (schemas/receipt.py) whenever the incident holding a report
changes (it joined, was merged along, split off, or was retracted), for the report's receipt.

Pure. Remembers the last placement of each held report only; after a restart it forgets, and the next
change publishes again (the placements topic is compacted: a repeat costs one record, nothing else).
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas.incident import GONE, Incident
from schemas.receipt import Placement
from schemas.report import AcceptedReport

Key = tuple[str, str]


class Placements:
    def __init__(self, ceasefire_id: str) -> None:
        self.ceasefire_id = ceasefire_id
        self.last: dict[Key, tuple[str | None, int]] = {}
        self.pending: list[Placement] = []

    def note(self, report: AcceptedReport | None, records: Iterable[Incident]) -> None:
        """The records `Correlator.add` published for `report` (None: published as event time moved)."""
        for incident in records:
            if incident.status in GONE:
                continue
            for link in incident.reports:
                self._place((link.source, link.report_id), link.revision, incident.incident_id, incident.version)
        if report is not None and report.retracted:
            self._place(report.identity, report.revision, None, None)

    def forget(self, keys: Iterable[Key]) -> None:
        """Reports no longer held (evicted): their last placement stands on the topic."""
        for key in keys:
            self.last.pop(key, None)

    def take(self) -> list[Placement]:
        taken, self.pending = self.pending, []
        return taken

    def _place(self, key: Key, revision: int, incident_id: str | None, version: int | None) -> None:
        if self.last.get(key) == (incident_id, revision):
            return
        if incident_id is None:
            self.last.pop(key, None)
        else:
            self.last[key] = (incident_id, revision)
        source, report_id = key
        self.pending.append(  # not validated again: every value is of its field's type already
            Placement.model_construct(
                source=source, report_id=report_id, ceasefire_id=self.ceasefire_id, revision=revision,
                incident_id=incident_id, incident_version=version,
            )
        )
