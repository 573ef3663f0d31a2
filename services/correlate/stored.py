"""How one ceasefire's correlation state is stored and rebuilt: the entries `take_changes` returns and
`Correlator(persisted)` reads back (formats: services/correlate/persist.py). The Correlator's base: it
declares the state it stores; services/correlate/state.py changes it."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

import orjson

from schemas.ceasefire import Ceasefire
from services.correlate.catchup import CatchUp, content, held_content
from services.correlate.fold import IncidentState
from services.correlate.link import HeldReport
from services.correlate.ordering import ORDER_PREFIX, EventOrder
from services.correlate.persist import (
    EVICTION_PREFIX,
    INCIDENT_PREFIX,
    META_KEY,
    PUBLISHED_KEY,
    REPORT_PREFIX,
    RESERVED_KEY,
    SEEN_PREFIX,
    held_entry,
    held_from_entry,
    report_entry_key,
)
from services.correlate.seen import SeenReports

Key = tuple[str, str]


class StoredCorrelation:
    """The state that is stored, and its entries in and out."""

    ceasefire: Ceasefire
    reports: dict[Key, HeldReport]
    open: dict[str, IncidentState]
    merged: dict[str, tuple[int, str]]
    watermark_us: int | None
    horizon_us: int
    retention_us: int
    seq: int
    seen: SeenReports
    order: EventOrder
    _expiry: list[tuple[int, str]]
    _dirty_reports: set[Key]
    _dirty_incidents: set[str]
    _dirty_meta: bool
    _evictions: dict[str, tuple[int, list[tuple[str, str, int]], str]]
    _stale_markers: set[str]
    catch_up: CatchUp
    batch: int  # the batches take_changes wrote, numbered (catchup.py)
    _published_batch: int
    _reserved_batch: int
    _torn: dict[str, IncidentState]
    _torn_until: int
    _ordering: list[tuple[str, str]]
    _batch_records: dict[str, int]  # incident id → records made since take_changes (its versions used)

    def _hold(self, held: HeldReport, state: IncidentState) -> None:
        raise NotImplementedError

    def _opened(self, iid: str) -> IncidentState:
        raise NotImplementedError

    def _root(self, iid: str) -> str:
        raise NotImplementedError

    def take_changes(self) -> dict[str, str | None]:
        """Entries changed since the last call (None: delete), for the shell's changelogged table."""
        # Order matters: the shell stores the version reservations (`version_entries`) before it
        # publishes, then these entries in this order, and a crash can stop it anywhere. Incidents
        # come first; remembered identities before the evicted reports' entries go; evicted incidents
        # are deleted last, after their reports.
        self.batch += 1
        changes: dict[str, str | None] = {}
        incidents = {INCIDENT_PREFIX + iid: self._encode_incident(iid) for iid in sorted(self._dirty_incidents)}
        changes.update((k, v) for k, v in incidents.items() if v is not None)
        # An eviction is stored as one marker before its remembered identities and deletions: a crash
        # that tears those leaves the marker, and the rebuild completes the eviction from it.
        for iid in sorted(self._evictions):
            version, members, published = self._evictions[iid]
            marker = {"version": version, "from": self._stored_before(iid, version), "members": members,
                      **self._replay_fields(published)}
            changes[EVICTION_PREFIX + iid] = orjson.dumps(marker).decode()
        if self.watermark_us is not None:
            self.seen.expire(self.watermark_us)
        remembered, forgotten = self.seen.take_changes()
        changes.update(remembered)  # before the evicted reports' entries go
        for key in sorted(self._dirty_reports):
            held = self.reports.get(key)
            entry = report_entry_key(key)
            changes[entry] = None if held is None else held_entry(held, held.incident.incident_id)  # type: ignore[union-attr]
        changes.update((k, v) for k, v in incidents.items() if v is None)
        changes.update((EVICTION_PREFIX + iid, None) for iid in sorted(self._stale_markers - self._evictions.keys()))
        changes.update(forgotten)
        if self._dirty_meta:
            meta = {"watermark_us": self.watermark_us, "horizon_us": self.horizon_us, "seq": self.seq}
            changes[META_KEY] = orjson.dumps(meta).decode()
        changes.update(self.order.take_changes())  # a released report's pending entry goes after its own
        self._dirty_reports.clear()
        self._dirty_incidents.clear()
        self._dirty_meta = False
        self._batch_records.clear()
        self._stale_markers = set(self._evictions)
        self._evictions.clear()
        if not changes:
            self.batch -= 1
            return changes
        # Stored once the batch's records are published, before the rest (services/correlate/catchup.py).
        return {PUBLISHED_KEY: orjson.dumps({"batch": self.batch}).decode(), **changes}

    def _encode_incident(self, iid: str) -> str | None:
        state = self.open.get(iid)
        if state is not None:
            version, into = state.version, None
        elif iid in self.merged:
            version, into = self.merged[iid]
        else:
            return None
        doc = {"version": version, "from": self._stored_before(iid, version), "merged_into": into,
               **self._replay_fields(self._content(iid))}
        return orjson.dumps(doc).decode()

    def _stored_before(self, iid: str, version: int) -> int:
        """The version stored for `iid` before this batch: each record made since used one."""
        return version - self._batch_records.get(iid, 0)

    def _replay_fields(self, published: str | None) -> dict[str, Any]:
        """What a replay after a torn write needs (catchup.py): the content of the incident's newest
        record, its batch and the batch's event time."""
        return {"content": published, "batch": self.batch, "at": self.watermark_us}

    def _content(self, iid: str) -> str | None:
        """The content (catchup.content) of what the state holds for `iid`: None when it holds nothing."""
        state = self.open.get(iid) or self._torn.get(iid)
        if state is not None:
            return held_content(state.members)
        if iid in self.merged:
            return content((), self.merged[iid][1])
        return None

    def _restore(self, persisted: Iterable[tuple[str, str]]) -> None:
        incidents, joined, evicted = self._read_entries(persisted)
        self._stale_markers = set(evicted)
        self._restore_incidents(incidents, evicted)
        joined.sort(key=lambda pair: pair[0].seq)
        for held, iid in joined:
            if held.key in self.seen:  # evicted (the marker above, or a deletion a crash cut short)
                self._dirty_reports.add(held.key)
                continue
            state = self._opened(self._root(iid))
            state.add(held)
            self._hold(held, state)
        self._dirty_reports -= self.reports.keys()  # what is left: entries of evicted reports, to delete
        for iid in [iid for iid, state in self.open.items() if not state.members]:
            # Only reachable from a torn write: the incident's version was stored, its reports were
            # not. They are processed again; the incident keeps counting from the stored version.
            self._torn[iid] = self.open.pop(iid)
        self._torn_until = (self.watermark_us or 0) + self.retention_us
        for state in self.open.values():
            state.absorbed.sort()
            self._expiry.append((state.last_us, state.incident_id))
        heapq.heapify(self._expiry)
        self._hold_torn(incidents)

    def _hold_torn(self, incidents: dict[str, dict[str, Any]]) -> None:
        """An incident of a published batch whose stored reports do not give its published content
        holds its rebuilt records back until they do (catchup.py); batches are numbered on. So does
        one of a batch whose reservations were all stored but whose `~published` was not: its records
        may have gone out or not, so the rebuilt record that reaches the content is published."""
        published, reserved = self._published_batch, self._reserved_batch
        self.batch = max([published, *(doc.get("batch", 0) for doc in incidents.values())])
        for iid, doc in incidents.items():
            target, batch, at = doc.get("content"), doc.get("batch"), doc.get("at")
            if target is None or batch is None or at is None:
                continue  # stored before replays were made safe
            if batch > published and batch != reserved:
                continue  # a reservation of its batch is missing: its records were not published
            restored = self._content(iid)
            if restored is not None and restored != target:
                since = doc.get("from")  # stored since replays were made exact
                span = None if since is None else (since, doc["version"])
                self.catch_up.expect(iid, target, at, announce=batch > published, span=span)

    def _read_entries(
        self, persisted: Iterable[tuple[str, str]]
    ) -> tuple[dict[str, dict[str, Any]], list[tuple[HeldReport, str]], set[str]]:
        """One pass over the stored entries: remembered identities and the meta entry go straight into
        the state; incidents, held reports and eviction markers are returned to be joined up."""
        incidents: dict[str, dict[str, Any]] = {}
        joined: list[tuple[HeldReport, str]] = []
        evicted: set[str] = set()
        for key, text in persisted:
            if key.startswith(SEEN_PREFIX):  # most entries, once a ceasefire has run for weeks
                self.seen.restore(key, text)
                continue
            if key.startswith(ORDER_PREFIX):
                self._ordering.append((key, text))
                continue
            doc = orjson.loads(text)
            if key.startswith(EVICTION_PREFIX):
                # Complete an eviction a crash may have torn: its reports are remembered, its entries go.
                evicted.add(key[len(EVICTION_PREFIX) :])
                for source, report_id, observed_us in doc["members"]:
                    self.seen.remember((source, report_id), observed_us)
                    self._dirty_reports.add((source, report_id))
            elif key == PUBLISHED_KEY:
                self._published_batch = doc["batch"]
            elif key == RESERVED_KEY:
                self._reserved_batch = doc["batch"]
            elif key == META_KEY:
                self.watermark_us, self.horizon_us = doc["watermark_us"], doc["horizon_us"]
                self.seq = doc["seq"]
            elif key.startswith(INCIDENT_PREFIX):
                incidents[key[len(INCIDENT_PREFIX) :]] = doc
            elif key.startswith(REPORT_PREFIX):
                joined.append(held_from_entry(doc))
        return incidents, joined, evicted

    def _restore_incidents(self, incidents: dict[str, dict[str, Any]], evicted: set[str]) -> None:
        for iid, doc in incidents.items():
            if doc["merged_into"] is None:
                self.open[iid] = IncidentState(iid, version=doc["version"])
            else:
                self.merged[iid] = (doc["version"], doc["merged_into"])
        for iid in [i for i in [*self.open, *self.merged] if self._root(i) in evicted]:
            self.open.pop(iid, None)
            self.merged.pop(iid, None)
            self._dirty_incidents.add(iid)
        for iid in self.merged:
            self._opened(self._root(iid)).absorbed.append(iid)
