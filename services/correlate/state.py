"""Correlation state of one ceasefire: accepted reports in, incident records out.

Input: accepted reports of one ceasefire (topic `ceasefire.reports.accepted.v1`, key `ceasefire_id`).
Output: whole incident records (topic `ceasefire.incidents.v1`, key `incident_id`).
State: held reports, open incidents, merged-incident pointers and the event-time watermark, persisted
as small JSON entries (`take_changes`) that rebuild the same state after a restart; their format is
services/correlate/persist.py's.

An incident is a connected component of the link rule (services/correlate/link.py). A new report
looks up its candidates in the index, joins the incident it links to, and merges every incident it
bridges into the earliest one. Eviction drops reports that can no longer link to a report arriving
within the allowed lateness (docs/link-rule.md).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime

from schemas.ceasefire import Ceasefire
from schemas.incident import GONE, Incident
from schemas.report import AcceptedReport
from services.correlate.catchup import CatchUp, held_content
from services.correlate.fold import IncidentState, incident_id, publish
from services.correlate.index import LinkIndex
from services.correlate.link import MINUTE_US, HeldReport, Link, LinkRule, epoch_us, from_epoch_us
from services.correlate.ordering import EventOrder
from services.correlate.partners import partners as best_partners
from services.correlate.persist import (
    version_entries,
)
from services.correlate.placements import Placements
from services.correlate.revise import founding_id, piece_ids, split
from services.correlate.seen import SeenReports
from services.correlate.stored import StoredCorrelation
from services.store import StateStore, stored_entries

Key = tuple[str, str]
__all__ = ["Correlator", "in_publication_order", "version_entries"]  # version_entries: persist's, where the shell has always found it
_NEVER = -(1 << 62)  # horizon before the first eviction: every report may link


def in_publication_order(records: list[Incident]) -> list[Incident]:
    """The records one report made, as the shell publishes them: those of incidents that end here
    ("merged", "withdrawn") first, so the alert stage never counts an absorbed incident and its
    survivor as two within one evaluation; each incident's own records in the order they were made
    (a catch-up's replay of a batch ends in its "merged" record: catchup.py)."""
    ending = {record.incident_id for record in records if record.status in GONE}
    return sorted(records, key=lambda record: record.incident_id not in ending)


class Correlator(StoredCorrelation):
    """All correlation state of ONE ceasefire."""

    def __init__(
        self, ceasefire: Ceasefire, store: StateStore | Iterable[tuple[str, str]] = (), upstreams: int = 0
    ) -> None:
        """Rebuild from the entries `take_changes` returned earlier; indexes are derived, never persisted.
        `store`: where this ceasefire's entries are (services/store.py): the remembered identities are
        asked there (services/correlate/seen.py). Given the entries alone (tests), they are kept in
        memory instead. `upstreams`: the dedup partitions whose marks `order` (the reports held until
        event time passes them) takes the low watermark over; `add` takes reports as they come."""
        self.ceasefire = ceasefire
        settings = ceasefire.link
        self.lateness_us = round(settings.allowed_lateness_hours * 60 * MINUTE_US)
        self.retention_us = round(settings.window_minutes * MINUTE_US) + self.lateness_us
        self.reports: dict[Key, HeldReport] = {}
        self.open: dict[str, IncidentState] = {}
        self.merged: dict[str, tuple[int, str]] = {}  # absorbed id -> (last version, merged into)
        self.index = LinkIndex(ceasefire)
        self.rule = LinkRule(ceasefire)
        self.watermark_us: int | None = None
        self.horizon_us = _NEVER
        self.seq = 0
        self._expiry: list[tuple[int, str]] = []  # (last observed, incident id); stale entries skipped
        self._dirty_reports: set[Key] = set()
        self._dirty_incidents: set[str] = set()
        self._dirty_meta = False
        # Evictions of this batch: incident id -> its last version and members (see take_changes),
        # and the markers of the last batch, deleted once that batch is wholly stored.
        self._evictions: dict[str, tuple[int, list[tuple[str, str, int]], str]] = {}  # … and its content
        self._stale_markers: set[str] = set()
        persisted, reader = stored_entries(store)
        self.seen = SeenReports(round(settings.remember_hours * 60 * MINUTE_US), None if reader is None else reader.get)
        self._torn: dict[str, IncidentState] = {}  # stored versions whose reports a crash did not store
        self._torn_until = _NEVER
        self.last_late = False  # whether the report `add` took last came later than the allowed lateness
        self._ordering: list[tuple[str, str]] = []
        self.catch_up = CatchUp()  # incidents rebuilding to their published content after a torn write
        self._batch_records: dict[str, int] = {}
        self.batch = self._published_batch = self._reserved_batch = 0
        self._restore(persisted)
        self.order = EventOrder(upstreams, self._ordering)
        self.placements = Placements(ceasefire.id)
        self._ordering = []

    @property
    def watermark(self) -> datetime | None:
        """Event time of this ceasefire's correlation: the latest `ordered_at` taken, or the low
        watermark it was advanced to (docs/event-time.md)."""
        return None if self.watermark_us is None else from_epoch_us(self.watermark_us)

    @property
    def published_watermark(self) -> datetime | None:
        """The watermark to send downstream: the correlator's, but never past a record held back by a
        catch-up that will still be published (catchup.py `held_back`)."""
        watermark, held = self.watermark, self.catch_up.held_back()
        return watermark if watermark is None or held is None else min(watermark, held)

    def advance(self, watermark: datetime) -> None:
        """Event time moved on without a report (the low watermark passed it); never back."""
        at = epoch_us(watermark)
        if self.watermark_us is None or at > self.watermark_us:
            self.watermark_us = at
            self._dirty_meta = True

    def add(self, report: AcceptedReport) -> list[Incident]:
        """Fold one report in; the records to publish: the incident it is in, then any it merged away
        (while a catch-up holds records back after a torn write: what it releases, in publication
        order, catchup.py). A newer revision of a held report replaces it (`_revise`). Where reports
        now are: `placements`."""
        records = self._take(report)
        for record in records:  # one version each: take_changes stores where the batch's began
            self._batch_records[record.incident_id] = self._batch_records.get(record.incident_id, 0) + 1
        if self.catch_up:
            records = self.catch_up.passed(in_publication_order(records)) + self.catch_up.overdue(self.watermark_us)
        self.placements.note(report, records)
        return records

    def released(self, report: AcceptedReport) -> list[Incident]:
        """`add`, in publication order: what the shell publishes for `report`. Records a catch-up
        releases are in that order already, and span several reports: never sorted again."""
        if self.catch_up:
            return self.add(report)
        return in_publication_order(self.add(report))

    def overdue(self) -> list[Incident]:
        """After event time moved without a report: the records of incidents whose catch-up after a
        torn write ended without their published content (services/correlate/catchup.py)."""
        records = self.catch_up.overdue(self.watermark_us)
        self.placements.note(None, records)
        return records

    def _take(self, report: AcceptedReport) -> list[Incident]:
        self.last_late = False
        key = report.identity
        held = self.reports.get(key)
        if held is not None:
            # re-delivered, or an older revision after a newer one: idempotent on (source, report_id)
            return self._revise(held, report) if report.revision > held.revision else []
        if key in self.seen:
            return []  # re-delivered after eviction; or revised or retracted once its incident had closed
        if report.retracted:  # nothing held to withdraw: its earlier revisions, should they come later, stay out
            self.seen.remember(key, epoch_us(report.observed_at))
            self._advance_to(report)
            return []
        return self._fold(report, incident_id(self.ceasefire.id, report.source, report.report_id))

    def _advance_to(self, report: AcceptedReport) -> int:
        """Event time moves to the report's place in the ordered stream (its ordered_at), never back."""
        ordered_us = epoch_us(report.ordered_at or report.observed_at)
        self.watermark_us = ordered_us if self.watermark_us is None else max(self.watermark_us, ordered_us)
        self._dirty_meta = True
        return ordered_us

    def _fold(self, report: AcceptedReport, founded: str, continues: IncidentState | None = None) -> list[Incident]:
        """A report joins the incident it links to (merging every incident it bridges), or founds `founded`.
        `continues`: the incident a revision of its only report leaves: alone, the revision carries it
        on (its id, its next version); joining another, it ends it as merged into that one."""
        held = HeldReport.from_accepted(report, self.seq)
        self.seq += 1
        self._advance_to(report)
        held.late = self.last_late = held.observed_us < self.watermark_us - self.lateness_us  # type: ignore[operator]

        partners = best_partners(held, self.index.candidates(held), self.rule, self.horizon_us)
        own = self._founded_before(founded)
        merging: list[tuple[IncidentState, HeldReport | None, Link | None]] = list(partners)
        if own is not None and all(own is not state for state, _, _ in partners):
            merging.append((own, None, None))  # its tree already hangs from this report: no bridge
            merging.sort(key=lambda entry: entry[0].precedence if entry[0].members else (held.observed_us, founded))
        records: list[Incident] = []
        if not merging:
            survivor = IncidentState(founded)
            if continues is not None:
                survivor.version, survivor.absorbed = continues.version, continues.absorbed
            self.open[survivor.incident_id] = survivor
        else:
            first = partners[0][0] if partners else None
            if partners:
                held.join(partners[0][1], partners[0][2])
            survivor = merging[0][0]
            for absorbed, bridge, bridge_link in merging[1:]:
                absorbed.version += 1
                records.append(
                    publish(
                        absorbed, self.ceasefire.id, status="merged", merged_into=survivor.incident_id,
                        ordered_at=report.ordered_at,
                    )
                )
                if bridge is not None and bridge_link is not None and absorbed is not first:
                    self._reroot(bridge, held, bridge_link)
                survivor = self._merge(survivor, absorbed)
        survivor.add(held)
        survivor.version += 1
        self._hold(held, survivor)
        heapq.heappush(self._expiry, (survivor.last_us, survivor.incident_id))
        self._dirty_incidents.add(survivor.incident_id)
        survivor.record = publish(survivor, self.ceasefire.id, ordered_at=report.ordered_at)
        if continues is not None and survivor.incident_id != founded:
            records.append(self._ended(continues, survivor, report))
        return [survivor.record, *records]

    def _ended(self, gone: IncidentState, survivor: IncidentState, report: AcceptedReport) -> Incident:
        """The last record of an incident whose only report, revised, joined `survivor`: merged into it."""
        gone.version += 1
        self.merged[gone.incident_id] = (gone.version, survivor.incident_id)
        survivor.absorbed = sorted({*survivor.absorbed, gone.incident_id, *gone.absorbed})
        self._dirty_incidents.add(gone.incident_id)
        return publish(gone, self.ceasefire.id, status="merged", merged_into=survivor.incident_id, ordered_at=report.ordered_at)

    def _revise(self, held: HeldReport, report: AcceptedReport) -> list[Incident]:
        """A newer revision of a held report: it leaves its incident, which is rebuilt from the reports
        left (it may split; when a retraction leaves nothing, it is withdrawn); then the revision comes
        in as any report does (services/correlate/revise.py)."""
        state = held.incident
        if state is None:  # cannot be: a held report is always in an open incident
            raise RuntimeError(f"held report {held.key} is in no incident")
        self.index.remove(held)
        del self.reports[held.key]
        held.incident = None
        self._dirty_reports.add(held.key)
        del self.open[state.incident_id]
        self._dirty_incidents.add(state.incident_id)
        pieces = split([m for m in state.members if m is not held], self.rule)
        names = piece_ids(self.ceasefire.id, state.incident_id, pieces, self.open.__contains__)
        revived = {name for name in names[1:] if name in self.merged}
        rebuilt = [self._rebuilt(piece, name, state, revived) for piece, name in zip(pieces, names, strict=True)]
        records: list[Incident] = []
        if not report.retracted and rebuilt:  # each incident gets one new version: after the revision joined
            records = self._fold(report, founding_id(self.ceasefire.id, report.source, report.report_id, report.revision))
        touched = {record.incident_id for record in records}
        for piece in rebuilt:
            if piece.incident_id not in touched:
                piece.version += 1
                piece.record = publish(piece, self.ceasefire.id, ordered_at=report.ordered_at)
                records.append(piece.record)
        if report.retracted:
            self.seen.remember(held.key, max(held.observed_us, epoch_us(report.observed_at)))
            self._advance_to(report)
            if not pieces:
                state.version += 1
                records.append(publish(state, self.ceasefire.id, status="withdrawn", ordered_at=report.ordered_at))
                for absorbed_id in state.absorbed:
                    self.merged.pop(absorbed_id, None)
                    self._dirty_incidents.add(absorbed_id)
            return records
        if rebuilt:
            return records
        return self._fold(report, state.incident_id, continues=state)  # the incident goes on with the revision

    def _rebuilt(self, piece: list[HeldReport], name: str, state: IncidentState, revived: set[str]) -> IncidentState:
        """One piece of a revised incident, as an open incident (published by the caller, once)."""
        version, absorbed = 0, []
        if name == state.incident_id:
            version, absorbed = state.version, [a for a in state.absorbed if a not in revived]
        elif name in revived:  # an incident merged in before comes out again, counting on from its last version
            version = self.merged.pop(name)[0]
        rebuilt = IncidentState(name, version=version, absorbed=absorbed)
        for member in piece:
            rebuilt.add(member)
            member.incident = rebuilt
            self._dirty_reports.add(member.key)
        self.open[name] = rebuilt
        heapq.heappush(self._expiry, (rebuilt.last_us, name))
        self._dirty_incidents.add(name)
        return rebuilt

    def evict(self) -> list[str]:
        """Forget what can no longer link to a report within the allowed lateness; the incidents that went.

        The horizon moves with the watermark; and what arrived before it since (`stale`) goes even
        when the watermark stood still: late reports with no newer ones were otherwise held until
        the watermark moved again, without bound (bench/NOTES.md, eighth session)."""
        if self.watermark_us is None:
            return []
        if self.watermark_us - self.retention_us > self.horizon_us:
            self._move_horizon(self.watermark_us - self.retention_us)
        elif not self.stale():
            return []
        evicted: list[str] = []
        while self._expiry and self._expiry[0][0] < self.horizon_us:
            last_us, gone_id = heapq.heappop(self._expiry)
            state = self.open.get(gone_id)
            if state is None or state.last_us != last_us:
                continue  # merged away, or a newer entry stands for it
            del self.open[gone_id]
            members = [(*m.key, m.observed_us) for m in state.members]
            self._evictions[gone_id] = (state.version, members, held_content(state.members))
            self.placements.forget(member.key for member in state.members)
            for member in state.members:
                self.seen.remember(member.key, member.observed_us)
                del self.reports[member.key]
                member.incident = None  # no cycle left for the garbage collector
                self._dirty_reports.add(member.key)
            for absorbed_id in state.absorbed:
                self.merged.pop(absorbed_id, None)
                self._dirty_incidents.add(absorbed_id)
            self._dirty_incidents.add(gone_id)
            evicted.append(gone_id)
        return evicted

    def stale(self) -> bool:
        """Whether an incident is held whose newest report is before the horizon (a report that arrived
        that late founded it): no report can link to it any more, so evicting it changes no record."""
        return bool(self._expiry) and self._expiry[0][0] < self.horizon_us

    def _move_horizon(self, horizon_us: int) -> None:
        self.horizon_us = horizon_us
        self._dirty_meta = True
        self.index.drop_before(horizon_us)
        if self._torn and self.watermark_us is not None and self.watermark_us > self._torn_until:
            # The replay after the crash has passed: what no report came back for was evicted
            # while its entries were being deleted.
            for gone_id, state in self._torn.items():
                for absorbed_id in state.absorbed:
                    self.merged.pop(absorbed_id, None)
                    self._dirty_incidents.add(absorbed_id)
                self._dirty_incidents.add(gone_id)
            self._torn.clear()

    def incidents(self) -> Iterable[Incident]:
        """The open incidents as last published (for the read API)."""
        for state in self.open.values():
            if state.record is None:  # after a restart
                state.record = publish(state, self.ceasefire.id)
            yield state.record

    # -- transitions -------------------------------------------------------------------------------

    def _reroot(self, bridge: HeldReport, newcomer: HeldReport, link: Link) -> None:
        """Hang an absorbed incident's link tree from the newcomer: reverse the path bridge -> founder.

        Every link stays a real link of the rule (same pair, same distance and gap), and the links of
        the merged incident again form one tree: the merge is explained by `bridge.linked_to`.
        """
        node: HeldReport | None = bridge
        carried: tuple[Key | None, float | None, float | None] = (
            newcomer.key,
            link.distance_km,
            link.gap_minutes,
        )
        visited: set[Key] = set()
        # A torn write (a crash while the entries of one change were being stored) can leave a path
        # that ends at a report no longer held, or runs in a circle: stop there rather than fail.
        while node is not None and node.key not in visited:
            visited.add(node.key)
            after = node.linked_to
            upward = (node.key, node.distance_km, node.gap_minutes)
            node.linked_to, node.distance_km, node.gap_minutes = carried
            node.record = None
            node.incident.records = None  # type: ignore[union-attr]  # its incident lists the record again
            self._dirty_reports.add(node.key)
            carried = upward
            node = None if after is None else self.reports.get(after)

    def _merge(self, survivor: IncidentState, absorbed: IncidentState) -> IncidentState:
        """Join two incidents under the survivor's identity; the smaller member list moves (union by size)."""
        self.merged[absorbed.incident_id] = (absorbed.version, survivor.incident_id)
        self._dirty_incidents.add(absorbed.incident_id)
        del self.open[absorbed.incident_id]
        absorbed_ids = [*survivor.absorbed, absorbed.incident_id, *absorbed.absorbed]
        identity = (survivor.incident_id, survivor.version, absorbed_ids)
        keep, moved = survivor, absorbed
        if len(survivor.members) < len(absorbed.members):
            keep, moved = absorbed, survivor
        keep.absorb(moved)
        for member in moved.members:
            member.incident = keep
        keep.incident_id, keep.version, keep.absorbed = identity
        self.open[keep.incident_id] = keep
        return keep

    def _hold(self, held: HeldReport, state: IncidentState) -> None:
        self.reports[held.key] = held
        held.incident = state
        self._dirty_reports.add(held.key)
        if held.observed_us >= self.horizon_us:
            self.index.add(held)

    def _founded_before(self, founded: str) -> IncidentState | None:
        """The incident a report founded before a crash that stored the incident but not the report.

        Without this, the report would found a second incident under the same id, published from
        version 1 again while the stored one lives on without it."""
        root = self._root(founded)
        state = self.open.get(root)
        if state is None and root in self._torn:
            state = self.open[root] = self._torn.pop(root)
        return state

    def _opened(self, iid: str) -> IncidentState:
        """The open incident `iid`; tolerates a torn write (entries of one change set partly stored)."""
        state = self.open.get(iid)
        if state is None:
            state = self.open[iid] = IncidentState(iid)
        return state

    def _root(self, iid: str) -> str:
        while iid in self.merged:
            iid = self.merged[iid][1]
        return iid
