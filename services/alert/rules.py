"""Alert stage domain: `AlertEngine` raises Alertmanager-like alerts for ONE ceasefire from its incidents.

Input: incident versions (topic `ceasefire.incidents.v1`, key `incident_id`) and the ceasefire's
watermark. Output: `Alert` records (topic `ceasefire.alerts.v1`, key `fingerprint`) and, on demand, a
`FragilitySnapshot` (topic `ceasefire.fragility.v1`, key `ceasefire_id`).
State: a summary of each incident within the rules' horizon (`services/alert/recent.py`), the last
record and peak count per alert fingerprint (`services/alert/episodes.py`), the watermark and the last
violation's time. It is persisted as string entries (`take_changes()`), and an engine built from them
(`persisted=`) behaves exactly like the one that wrote them.

Event time only: the watermark is the latest of `advance()`'s argument and every accepted incident's
`last_observed_at`; it never goes back. No wall clock, so replaying an incident stream (with the same
`advance()` calls) yields identical alert records.

API
  observe(incident) -> alerts   an incident version arrives; repeats and older versions change nothing
  advance(watermark) -> alerts  event time moved on: resolutions, repeats, surge and fragility re-evaluated
  fragility() -> snapshot       the fragility index at the watermark
  firing() -> alerts            the last record of every firing alert
  take_changes() -> entries     persisted entries changed since the last call (None: delete the key)

Incidents outside the ceasefire's period of force are not violations and are ignored, as are
incidents last observed more than `rules.horizon` before the watermark (too late to change anything).
Rule semantics: docs/alerts.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from schemas.alert import Alert, AlertName, fingerprint
from schemas.ceasefire import Ceasefire
from schemas.fragility import FragilitySnapshot
from schemas.incident import Incident
from services.alert import conditions as rule
from services.alert.conditions import AlertRules, Condition
from services.alert.episodes import AlertBook, Episode
from services.alert.fragility import snapshot
from services.alert.recent import IncidentSummary, summarise

__all__ = ["AlertEngine", "AlertRules"]

SEP = "\x1f"
INCIDENT = "incident" + SEP
ALERT = "alert" + SEP
WATERMARK = "watermark"
LAST_VIOLATION = "last_violation"


class AlertEngine:
    def __init__(
        self, ceasefire: Ceasefire, rules: AlertRules | None = None, persisted: Iterable[tuple[str, str]] = ()
    ) -> None:
        self.ceasefire = ceasefire
        self.rules = rules if rules is not None else AlertRules()
        self.watermark: datetime = ceasefire.effective_from
        self.last_violation_at: datetime | None = None
        self.incidents: dict[str, IncidentSummary] = {}
        episodes: list[Episode] = []
        for key, value in persisted:
            if key.startswith(INCIDENT):
                summary = IncidentSummary.model_validate_json(value)
                self.incidents[summary.incident_id] = summary
            elif key.startswith(ALERT):
                episodes.append(Episode.model_validate_json(value))
            elif key == WATERMARK:
                self.watermark = datetime.fromisoformat(value)
            elif key == LAST_VIOLATION:
                self.last_violation_at = datetime.fromisoformat(value)
        self.book = AlertBook(self.rules.repeat_interval, episodes)
        self._changed: set[str] = set()

    def observe(self, incident: Incident) -> list[Alert]:
        """An incident version arrives (any status, `merged` included)."""
        if incident.ceasefire_id != self.ceasefire.id:
            raise ValueError(
                f"incident {incident.incident_id} is for {incident.ceasefire_id}, not {self.ceasefire.id}"
            )
        known = self.incidents.get(incident.incident_id)
        at = incident.last_observed_at
        if known is not None and incident.version <= known.version:
            return []  # delivered again, or overtaken by a newer version
        if not self.ceasefire.in_force(at) or at <= self.watermark - self.rules.horizon:
            return []
        # Settle what ended before this incident first, so a gap longer than a hold ends one episode
        # and this incident starts another, rather than silently continuing the first.
        emitted = self._evaluate() if self._move_to(at) else []
        summary = summarise(incident, self.watermark)
        self.incidents[incident.incident_id] = summary
        self._changed.add(INCIDENT + incident.incident_id)
        if not summary.merged and (self.last_violation_at is None or at > self.last_violation_at):
            self.last_violation_at = at
            self._changed.add(LAST_VIOLATION)
        return emitted + self._evaluate()

    def advance(self, watermark: datetime) -> list[Alert]:
        """Event time moved on (never back): what resolves, repeats or newly holds at the watermark."""
        self._move_to(watermark)
        return self._evaluate()

    def fragility(self) -> FragilitySnapshot:
        config, last = self.rules.fragility, self.last_violation_at
        return snapshot(self.ceasefire.id, self.incidents.values(), self.watermark, config, last)

    def firing(self) -> list[Alert]:
        return self.book.firing()

    def take_changes(self) -> dict[str, str | None]:
        """Entries to write (or delete, None) so that `AlertEngine(..., persisted=entries)` resumes here."""
        changes: dict[str, str | None] = {}
        for key in sorted(self._changed):
            if key == WATERMARK:
                changes[key] = self.watermark.isoformat()
            elif key == LAST_VIOLATION:
                changes[key] = None if self.last_violation_at is None else self.last_violation_at.isoformat()
            else:
                summary = self.incidents.get(key[len(INCIDENT) :])
                changes[key] = None if summary is None else summary.model_dump_json()
        for fp in sorted(self.book.changed):
            episode = self.book.episodes.get(fp)
            changes[ALERT + fp] = None if episode is None else episode.model_dump_json()
        self._changed.clear()
        self.book.changed.clear()
        return changes

    def _move_to(self, watermark: datetime) -> bool:
        if watermark <= self.watermark:
            return False
        self.watermark = watermark
        self._changed.add(WATERMARK)
        return True

    def _evaluate(self) -> list[Alert]:
        now = self.watermark
        self._forget_old(now)
        summaries = list(self.incidents.values())
        cid = self.ceasefire.id
        conditions: list[Condition] = [
            *rule.violations(cid, summaries, now, self.rules),
            *rule.mutual_accusations(cid, summaries, now, self.rules),
            *rule.escalations(cid, summaries, now, self.rules),
            *rule.casualties(cid, summaries, now, self.rules),
            *rule.surge(cid, summaries, now, self.rules),
        ]
        fragile = self.book.current(fingerprint({"alertname": AlertName.FRAGILITY_HIGH, "ceasefire": cid}))
        level = None if fragile is None else fragile.severity
        conditions += rule.fragility_high(self.fragility(), level, self.rules)
        return self.book.reconcile(conditions, now)

    def _forget_old(self, now: datetime) -> None:
        """Drop incidents no rule can see any more and resolved per-incident alerts past retention."""
        horizon = now - self.rules.horizon
        for incident_id in [i for i, s in self.incidents.items() if s.seen_at <= horizon]:
            del self.incidents[incident_id]
            self._changed.add(INCIDENT + incident_id)
        retention = now - self.rules.episode_retention
        self.book.forget(
            [
                fp
                for fp, e in self.book.episodes.items()
                if "incident" in e.alert.labels and e.alert.ends_at is not None
                if e.alert.ends_at <= retention
            ]
        )
