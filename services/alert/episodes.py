"""Alert episodes, Alertmanager-like: turn "what should fire now" into the records to emit.

Per fingerprint the book keeps the last record it emitted and the episode's peak count. Given the
conditions that hold at event time `now`, it emits
  - `firing`, version + 1, new `starts_at`: a condition holds and its alert is not firing (a new episode;
    the version keeps counting across episodes of one fingerprint);
  - `firing`, same `starts_at`: the severity label changed, or the count rose above the episode's peak,
    or `repeat_interval` of event time passed since the last record;
  - `resolved`, exactly once: the alert is firing and its condition no longer holds. `ends_at` (and
    `updated_at`) is when the condition ended: its hold's expiry when the rule knows it, else `now`.
Nothing else: a count that falls (an incident ages out of a window) is not news.

Between changes of its inputs a condition only weakens (a window count falls, a hold runs out), so
the book also says when a firing alert next needs a look without any new incident (`due`: its hold's
end or its next repeat), and which resolved alerts ended before a time (`resolved_by`). The engine
then reconciles only the fingerprints whose inputs changed or that are due (`settle`), which emits
exactly what reconciling every condition would.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from schemas.alert import Alert, Annotations, fingerprint
from services.alert.conditions import Condition


class Episode(BaseModel):
    """What the book persists per fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    alert: Alert  # the last record emitted
    peak: int  # highest count in the current (or last) episode
    until: datetime | None = None  # when the condition stops holding unless renewed (Condition.until)


class AlertBook:
    def __init__(self, repeat_interval: timedelta, episodes: Iterable[Episode] = ()) -> None:
        self.repeat_interval = repeat_interval
        self.episodes: dict[str, Episode] = {e.alert.fingerprint: e for e in episodes}
        self.changed: set[str] = set()
        # (when, fingerprint), possibly stale: checked against the episode when they come up
        self._due: list[tuple[datetime, str]] = []
        self._ended: list[tuple[datetime, str]] = []
        for episode in self.episodes.values():
            self._watch(episode)

    def current(self, fp: str) -> Alert | None:
        """The firing alert of this fingerprint, if any."""
        episode = self.episodes.get(fp)
        return episode.alert if episode is not None and episode.alert.status == "firing" else None

    def firing(self) -> list[Alert]:
        return sorted(
            (e.alert for e in self.episodes.values() if e.alert.status == "firing"),
            key=lambda a: (a.alertname, a.fingerprint),
        )

    def reconcile(self, conditions: Iterable[Condition], now: datetime) -> list[Alert]:
        """Emit what changed at `now`; deterministic order (alert name, fingerprint)."""
        wanted = {fingerprint(c.labels): c for c in conditions}
        emitted = [self._hold(fp, c, now) for fp, c in wanted.items()]
        emitted += [self._resolve(fp, now) for fp in self.episodes if fp not in wanted]
        return sorted((a for a in emitted if a is not None), key=lambda a: (a.alertname, a.fingerprint))

    def settle(self, conditions: Mapping[str, Condition | None], now: datetime) -> list[Alert]:
        """`reconcile` for some fingerprints only: those mapped to None no longer hold."""
        emitted = [
            self._hold(fp, c, now)
            if c is not None
            else (self._resolve(fp, now) if fp in self.episodes else None)
            for fp, c in conditions.items()
        ]
        return sorted((a for a in emitted if a is not None), key=lambda a: (a.alertname, a.fingerprint))

    def due(self, now: datetime) -> list[Episode]:
        """Firing alerts whose hold has ended or whose repeat has fallen due by `now`."""
        found = []
        while self._due and self._due[0][0] <= now:
            when, fp = heapq.heappop(self._due)
            episode = self.episodes.get(fp)
            if episode is not None and self._next_look(episode) == when:
                found.append(episode)
        return found

    def look_again(self, episodes: Iterable[Episode]) -> None:
        """Keep watching these `due` episodes if settling them changed nothing (so they stay due)."""
        for episode in episodes:
            if self.episodes.get(episode.alert.fingerprint) is episode:
                self._watch(episode)

    def resolved_by(self, cutoff: datetime) -> list[Alert]:
        """Resolved alerts that ended at or before `cutoff` (each returned once per resolution)."""
        found = []
        while self._ended and self._ended[0][0] <= cutoff:
            when, fp = heapq.heappop(self._ended)
            episode = self.episodes.get(fp)
            if episode is not None and episode.alert.ends_at == when:
                found.append(episode.alert)
        return found

    def forget(self, fps: Iterable[str]) -> None:
        for fp in fps:
            if self.episodes.pop(fp, None) is not None:
                self.changed.add(fp)

    def renew(self, fp: str, severity: str, count: int, until: datetime | None, now: datetime) -> bool:
        """A condition with this severity, count and end holds at `now`: if its alert is firing and
        that is no news (same severity, no new peak, no repeat due), remember the end and say so.

        Lets the engine skip writing a condition's text when nothing would be emitted.
        """
        episode = self.episodes.get(fp)
        if episode is None or episode.alert.status != "firing":
            return False
        last = episode.alert
        if last.severity != severity or count > episode.peak or now - last.updated_at >= self.repeat_interval:
            return False
        if until != episode.until:  # renewed quietly: remember when it will end (no validation needed)
            renewed = episode.model_copy(update={"until": until})
            self.episodes[fp] = renewed
            self.changed.add(fp)
            self._watch(renewed)
        return True

    def _hold(self, fp: str, condition: Condition, now: datetime) -> Alert | None:
        if self.renew(fp, condition.labels["severity"], condition.count, condition.until, now):
            return None
        episode = self.episodes.get(fp)
        if episode is None or episode.alert.status == "resolved":
            alert = Alert(
                fingerprint=fp,
                labels=condition.labels,
                annotations=_annotations(condition),
                status="firing",
                starts_at=now,
                updated_at=now,
                version=1 if episode is None else episode.alert.version + 1,
            )
            episode = Episode.model_construct(alert=alert, peak=condition.count, until=condition.until)
            return self._keep(episode)
        last = episode.alert
        update = {
            "labels": condition.labels,
            "annotations": _annotations(condition),
            "updated_at": now,
            "version": last.version + 1,
        }
        peak = max(episode.peak, condition.count)
        alert = last.model_copy(update=update)
        return self._keep(episode.model_copy(update={"alert": alert, "peak": peak, "until": condition.until}))

    def _resolve(self, fp: str, now: datetime) -> Alert | None:
        episode = self.episodes[fp]
        last = episode.alert
        if last.status == "resolved":
            return None
        # The exact end when the rule knows it (a hold expired), however late the watermark noticed.
        ends_at = now if episode.until is None else max(last.updated_at, min(now, episode.until))
        update = {
            "status": "resolved",
            "ends_at": ends_at,
            "updated_at": ends_at,
            "version": last.version + 1,
        }
        return self._keep(episode.model_copy(update={"alert": last.model_copy(update=update), "until": None}))

    def _keep(self, episode: Episode) -> Alert:
        self.episodes[episode.alert.fingerprint] = episode
        self.changed.add(episode.alert.fingerprint)
        self._watch(episode)
        return episode.alert

    def _next_look(self, episode: Episode) -> datetime | None:
        """When a firing alert changes without new input: its hold ends, or a repeat falls due."""
        if episode.alert.status != "firing":
            return None
        repeat = episode.alert.updated_at + self.repeat_interval
        return repeat if episode.until is None else min(repeat, episode.until)

    def _watch(self, episode: Episode) -> None:
        fp = episode.alert.fingerprint
        when = self._next_look(episode)
        if when is not None:
            heapq.heappush(self._due, (when, fp))
        elif episode.alert.ends_at is not None:
            heapq.heappush(self._ended, (episode.alert.ends_at, fp))


def _annotations(condition: Condition) -> Annotations:
    return Annotations(
        summary=condition.summary,
        description=condition.description,
        incident_ids=list(condition.incident_ids),
    )
