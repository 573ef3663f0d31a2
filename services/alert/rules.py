"""Alert stage domain: `AlertEngine` raises Alertmanager-like alerts for ONE ceasefire from its incidents.

Input: incident versions (topic `ceasefire.incidents.v1`, key `incident_id`) and the ceasefire's
watermark. Output: `Alert` records (topic `ceasefire.alerts.v1`, key `fingerprint`) and, on demand, a
`FragilitySnapshot` (topic `ceasefire.fragility.v1`, key `ceasefire_id`).
State: a summary of each incident within the rules' horizon (`services/alert/recent.py`), the last
record and peak count per alert fingerprint (`services/alert/episodes.py`), the watermark and the last
violation's time. It is persisted as string entries (`take_changes()`), and an engine built from them
(`store=`) behaves exactly like the one that wrote them. A crash may store any prefix of one
batch's entries: the batch's changes go first as a `journal` (one entry, or parts under one head when
large: journal.py), which the rebuild applies over the rest, so a rebuilt engine is always at a batch
boundary (docs/alerts.md, "Crash safety").

Event time only: the watermark is the latest of `advance()`'s argument and every accepted incident's
`last_observed_at`; it never goes back. No wall clock, so replaying an incident stream (with the same
`advance()` calls) yields identical alert records.

API
  observe(incident) -> alerts   an incident version arrives; repeats and older versions change nothing
  advance(watermark) -> alerts  event time moved on: resolutions, repeats, surge and fragility re-evaluated
  fragility() -> snapshot       the fragility index at the watermark
  firing() -> alerts            the last record of every firing alert
  take_changes() -> entries     persisted entries changed since the last call (None: delete the key),
                                the journal of them first

Incidents outside the ceasefire's period of force are not violations and are ignored, as are
incidents last observed more than `rules.horizon` before the watermark (too late to change anything).
Rule semantics: docs/alerts.md.

Cost: an incident costs about the same however many are held. Rather than re-deriving every rule over
every summary, the engine re-evaluates only the scopes whose inputs changed (the incident's sectors,
the incident, the ceasefire-wide surge; forgetting an incident is a change too) plus the alerts the
book says are due (a hold ended, a repeat fell due), and FragilityHigh, which moves with event time.
Between input changes a condition only weakens (its count falls, its hold runs out), so a scope left
alone would have emitted nothing: the records are exactly those of evaluating everything each time
(a test checks this against that reference on random streams). The questions the rules ask are
answered by indexes over the held incidents (`services/alert/held.py`), which are rebuilt from the
persisted summaries, never persisted themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial

from schemas.alert import Alert, AlertName, fingerprint
from schemas.ceasefire import Ceasefire
from schemas.fragility import FragilityComponents, FragilitySnapshot
from schemas.incident import Incident, IncidentVersion
from services.alert import conditions as rule
from services.alert import persist
from services.alert.conditions import AlertRules, Condition
from services.alert.episodes import AlertBook
from services.alert.fragility import Tally, component_values, snapshot_of, weighted_index
from services.alert.held import HeldIncidents, micros, span
from services.alert.persist import INCIDENT, LAST_VIOLATION, WATERMARK
from services.alert.recent import IncidentSummary, summarise
from services.store import StateStore, stored_entries

__all__ = ["AlertEngine", "AlertRules"]

Wanted = dict[str, Condition | None]  # by fingerprint: the condition to reconcile, None: it no longer holds
# Alert names as plain strings (an enum member hashes in Python: these key dicts at every evaluation)
VIOLATION, MUTUAL, ESCALATION, CASUALTIES, SURGE, FRAGILE = (
    n.value for n in (
        AlertName.CEASEFIRE_VIOLATION, AlertName.MUTUAL_ACCUSATION, AlertName.ESCALATION,
        AlertName.CASUALTIES, AlertName.VIOLATION_SURGE, AlertName.FRAGILITY_HIGH,
    )
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEVERITY = {name.value: severity for name, severity in rule.SEVERITY.items()}


def grid_floor(at: datetime, step: timedelta) -> datetime:
    """The grid point at or before `at` (the grid counts from the Unix epoch: :00, :15, … for 15 min)."""
    return at - (at - EPOCH) % step


class AlertEngine:
    def __init__(
        self,
        ceasefire: Ceasefire,
        rules: AlertRules | None = None,
        store: StateStore | Iterable[tuple[str, str]] = (),
        grid: timedelta | None = None,
    ) -> None:
        """`store`: where its entries are (services/store.py), or the entries themselves (tests).
        `grid`: the step of event time at which the rules are evaluated and the fragility series taken
        (`series`) as time passes; without it, at every watermark given."""
        self.ceasefire = ceasefire
        self.grid = grid
        self.series: list[FragilitySnapshot] = []  # grid points passed, to publish (the caller empties it)
        self.rules = rules if rules is not None else AlertRules()
        self._horizon = self.rules.horizon
        self._horizon_us = span(self._horizon)
        r = self.rules
        holds = (r.violation_hold, r.escalation_hold, r.surge_hold, r.surge_window)
        self._violation_us, self._escalation_us, self._surge_us, self._window_us = map(span, holds)
        self._now = 0  # the watermark in microseconds, during an evaluation
        self.watermark: datetime = ceasefire.effective_from
        self.last_violation_at: datetime | None = None
        self.held = HeldIncidents(self.rules)
        stored, self.journal = persist.read(stored_entries(store)[0])
        loaded, episodes = stored.summaries, stored.episodes
        self.watermark = stored.watermark or self.watermark
        self.last_violation_at = stored.last_violation_at
        self._watermark_us = micros(self.watermark)
        self.book = AlertBook(self.rules.repeat_interval, episodes)
        self._changed: set[str] = set()
        # scopes to re-evaluate at the next evaluation: after a rebuild, all of them once
        self._stale_sectors: set[str] = set()
        self._stale_incidents: set[str] = set()
        self._stale_surge = False
        for summary in sorted(loaded, key=lambda s: (s.seen_at, s.incident_id)):
            self.held.put(summary)
            self._touch(summary)
        for episode in episodes:
            self._touch_scope(episode.alert.labels)
        self._fingerprints: dict[tuple[str, str], str] = {}  # by (alert name, sector or incident id or "")
        self._forgotten: list[str] = []  # incidents whose fingerprints to drop after this evaluation
        self._weights = self.rules.fragility.weights.model_dump()
        self._fragility_inputs: tuple[object, ...] = ()  # what the last index was computed from
        self._fragility: tuple[dict[str, float], float] = ({}, 0.0)

    @property
    def incidents(self) -> Mapping[str, IncidentSummary]:
        """The latest summary of every incident held (merged ones as tombstones), by id."""
        return self.held.summaries

    def observe(self, incident: Incident | IncidentVersion) -> list[Alert]:
        """An incident version arrives (any status, `merged` included); the alert agent passes the
        `IncidentVersion` it reads, tests and benchmarks may pass the whole `Incident`."""
        if incident.ceasefire_id != self.ceasefire.id:
            raise ValueError(
                f"incident {incident.incident_id} is for {incident.ceasefire_id}, not {self.ceasefire.id}"
            )
        known = self.incidents.get(incident.incident_id)
        at = incident.last_observed_at
        if known is not None and incident.version <= known.version:
            return []  # delivered again, or overtaken by a newer version
        if not self.ceasefire.in_force(at) or at <= self.watermark - self._horizon:
            return []
        # Settle what ended before this incident first, so a gap longer than a hold ends one episode
        # and this incident starts another, rather than silently continuing the first. The clock is
        # the version's place in the ordered stream when it has one (docs/event-time.md).
        ordered = incident.ordered_at
        emitted = self._step_to(at if ordered is None or ordered < at else ordered)
        summary = summarise(incident, self.watermark)  # seen_at: the watermark, which is at or after `at`
        self._touch(self.held.put(summary, self._watermark_us))
        self._touch(summary)
        self._changed.add(persist.incident_key(incident.incident_id))
        if not summary.merged and (self.last_violation_at is None or at > self.last_violation_at):
            self.last_violation_at = at
            self._changed.add(LAST_VIOLATION)
        return emitted + self._evaluate()

    def advance(self, watermark: datetime) -> list[Alert]:
        """Event time moved on (never back): what resolves, repeats or newly holds at the watermark
        (with a grid: at each step passed, so that where a batch ended changes nothing)."""
        if self.grid is None:
            self._move_to(watermark)
            return self._evaluate()
        return self._step_to(grid_floor(watermark, self.grid))

    def _step_to(self, target: datetime) -> list[Alert]:
        """Evaluate at each grid step up to `target`, taking the fragility series, then at `target`."""
        emitted: list[Alert] = []
        if self.grid is not None:
            step = grid_floor(self.watermark, self.grid) + self.grid
            while step <= target:
                self._move_to(step)
                emitted += self._evaluate()
                self.series.append(self.fragility().model_copy(update={"kind": "grid"}))
                step += self.grid
        if self._move_to(target):
            emitted += self._evaluate()
        return emitted

    def fragility(self) -> FragilitySnapshot:
        config, now = self.rules.fragility, self.watermark
        return snapshot_of(self.ceasefire.id, self.held.tally(now), now, config, self.last_violation_at)

    def firing(self) -> list[Alert]:
        return self.book.firing()

    def take_changes(self) -> dict[str, str | None]:
        """Entries to write (or delete, None), in this order, so that `AlertEngine(..., store=entries)`
        resumes here.

        The journal comes first: all the others in one value, or in parts when large
        (services/alert/journal.py). A crash that stores only some of them leaves a state no run ever
        had (summaries without the alerts they raised, a watermark ahead of the book), and re-processing
        the batch against it republished versions with other contents. With the journal's head stored
        the rebuild completes the batch; without it none of the batch is stored.
        """
        changes: dict[str, str | None] = {}
        for key in sorted(self._changed):
            if key == WATERMARK:
                changes[key] = persist.write_time(self.watermark)
            elif key == LAST_VIOLATION:
                changes[key] = persist.write_time(self.last_violation_at)
            else:
                summary = self.incidents.get(key[len(INCIDENT) :])
                changes[key] = None if summary is None else summary.model_dump_json()
        for fp in sorted(self.book.changed):
            episode = self.book.episodes.get(fp)
            changes[persist.alert_key(fp)] = None if episode is None else episode.model_dump_json()
        self._changed.clear()
        self.book.changed.clear()
        if not changes:
            return changes
        return self.journal.wrap(changes)

    def _move_to(self, watermark: datetime) -> bool:
        if watermark <= self.watermark:
            return False
        self.watermark = watermark
        self._watermark_us = micros(watermark)
        self._changed.add(WATERMARK)
        return True

    def _touch(self, summary: IncidentSummary | None) -> None:
        """The scopes whose conditions read this summary: its incident, its sectors, the surge."""
        if summary is None:
            return
        self._stale_incidents.add(summary.incident_id)
        if not summary.merged:
            self._stale_sectors.update(summary.alert_sectors)
            self._stale_surge = True

    def _touch_scope(self, labels: Mapping[str, str]) -> None:
        if "sector" in labels:
            self._stale_sectors.add(labels["sector"])
        elif "incident" in labels:
            self._stale_incidents.add(labels["incident"])
        elif labels["alertname"] == AlertName.VIOLATION_SURGE:
            self._stale_surge = True

    def _evaluate(self) -> list[Alert]:
        now = self.watermark
        self._now = self._watermark_us
        self._forget_old(now)
        due = self.book.due(now)
        for episode in due:
            self._touch_scope(episode.alert.labels)
        wanted: Wanted = {}
        for sector in sorted(self._stale_sectors):
            self._sector(wanted, sector, now)
        for incident_id in sorted(self._stale_incidents):
            self._incident(wanted, incident_id, now)
        if self._stale_surge:
            self._surge(wanted, now)
        self._fragile(wanted, now)
        self._stale_sectors.clear()
        self._stale_incidents.clear()
        self._stale_surge = False
        emitted = self.book.settle(wanted, now)
        self.book.look_again(due)
        for incident_id in self._forgotten:
            self._fingerprints.pop((MUTUAL, incident_id), None)
            self._fingerprints.pop((CASUALTIES, incident_id), None)
        self._forgotten.clear()
        return emitted

    def _fingerprint(self, name: str, scope: str = "", value: str = "") -> str:
        """Of the ceasefire's alert `name` in a scope ("sector" or "incident" and its value, or none)."""
        fp = self._fingerprints.get((name, value))
        if fp is None:
            labels = {"alertname": name, "ceasefire": self.ceasefire.id}
            fp = fingerprint({**labels, scope: value} if scope else labels)
            self._fingerprints[name, value] = fp
        return fp

    def _want(
        self, wanted: Wanted, fp: str, severity: str, count: int, until: datetime | None,
        condition: Callable[[], Condition | None],
    ) -> None:
        """The alert `fp` should fire: write its condition only if that could be news (most often it
        is firing already and nothing about it changed)."""
        if not self.book.renew(fp, severity, count, until, self.watermark):
            wanted[fp] = condition()

    def _sector(self, wanted: Wanted, sector: str, now: datetime) -> None:
        """CeasefireViolation and Escalation in one sector."""
        cid, rules, held = self.ceasefire.id, self.rules, self.held
        fp = self._fingerprint(VIOLATION, "sector", sector)
        since = self._now - self._violation_us
        found = held.violation(sector, since)
        if found is None:
            wanted[fp] = None
        else:
            count, last = found
            until = last + rules.violation_hold

            def violation() -> Condition:
                return rule.violation(cid, sector, count, held.newest(sector, since, count), last, rules)

            self._want(wanted, fp, SEVERITY[VIOLATION], count, until, violation)
        fp = self._fingerprint(ESCALATION, "sector", sector)
        escalating = held.escalating(sector, self._now - self._escalation_us)
        if escalating is None:
            wanted[fp] = None
        else:
            n, last = escalating.count(), escalating.last_seen()

            def escalation() -> Condition:
                newest = escalating.newest(rule.MAX_IDS)
                return rule.escalation_alert(cid, sector, n, escalating.top(), newest, last, rules)

            self._want(wanted, fp, SEVERITY[ESCALATION], n, last + rules.escalation_hold, escalation)

    def _incident(self, wanted: Wanted, incident_id: str, now: datetime) -> None:
        """MutualAccusation and Casualties for one incident."""
        cid, rules = self.ceasefire.id, self.rules
        s = self.held.summaries.get(incident_id)
        holds = s is not None and not s.merged and now - s.seen_at < rules.incident_hold
        fp = self._fingerprint(MUTUAL, "incident", incident_id)
        if holds and s is not None and s.reciprocal:
            until = s.seen_at + rules.incident_hold
            build = partial(rule.mutual_accusation, cid, s, rules)
            self._want(wanted, fp, SEVERITY[MUTUAL], 0, until, build)
        else:
            wanted[fp] = None
        fp = self._fingerprint(CASUALTIES, "incident", incident_id)
        if holds and s is not None and s.killed > 0:
            until = s.seen_at + rules.incident_hold
            build = partial(rule.casualty, cid, s, rules)
            self._want(wanted, fp, SEVERITY[CASUALTIES], s.killed, until, build)
        else:
            wanted[fp] = None

    def _surge(self, wanted: Wanted, now: datetime) -> None:
        """ViolationSurge, checked at each held incident's time (see `conditions.surge`)."""
        rules, fp = self.rules, self._fingerprint(SURGE)
        found = self.held.surging(self._now - self._surge_us)
        if found is None:
            wanted[fp] = None
            return
        count, mean, threshold, last = found

        def surge() -> Condition:
            latest = self.held.newest_between(self._now - self._window_us, self._now)
            return rule.surge_alert(self.ceasefire.id, count, mean, threshold, last, latest, rules)

        until = last + rules.surge_hold
        self._want(wanted, fp, SEVERITY[SURGE], count, until, surge)

    def _fragile(self, wanted: Wanted, now: datetime) -> None:
        """FragilityHigh: the index moves with event time, but only a new level or a repeat is news."""
        fp, config = self._fingerprint(FRAGILE), self.rules.fragility
        fragile = self.book.current(fp)
        current = None if fragile is None else fragile.severity
        inputs = (self.held.figures(self._now), now, self.last_violation_at)
        if inputs != self._fragility_inputs:  # the same figures, the same index: many versions change none
            values = component_values(Tally(*inputs[0]), now, config, self.last_violation_at)
            index = weighted_index(values, self._weights)  # as `fragility_index` does, minus the models
            self._fragility_inputs, self._fragility = inputs, (values, index)
        values, index = self._fragility
        level = rule.fragility_level(index, current, self.rules)
        if level is None:
            wanted[fp] = None
            return

        def condition() -> Condition | None:
            components = FragilityComponents(**values)
            return rule.fragility_condition(self.ceasefire.id, index, components, current, self.rules)

        self._want(wanted, fp, level, 0, None, condition)

    def _forget_old(self, now: datetime) -> None:
        """Drop incidents no rule can see any more and resolved per-incident alerts past retention."""
        for summary in self.held.forget(self._now - self._horizon_us):
            self._changed.add(persist.incident_key(summary.incident_id))
            self._touch(summary)
            self._forgotten.append(summary.incident_id)
        retention = now - self.rules.episode_retention
        self.book.forget(a.fingerprint for a in self.book.resolved_by(retention) if "incident" in a.labels)

