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
"""

from __future__ import annotations

from collections.abc import Iterable
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

    def forget(self, fps: Iterable[str]) -> None:
        for fp in fps:
            if self.episodes.pop(fp, None) is not None:
                self.changed.add(fp)

    def _hold(self, fp: str, condition: Condition, now: datetime) -> Alert | None:
        episode = self.episodes.get(fp)
        annotations = Annotations(
            summary=condition.summary,
            description=condition.description,
            incident_ids=list(condition.incident_ids),
        )
        if episode is None or episode.alert.status == "resolved":
            alert = Alert(
                fingerprint=fp,
                labels=condition.labels,
                annotations=annotations,
                status="firing",
                starts_at=now,
                updated_at=now,
                version=1 if episode is None else episode.alert.version + 1,
            )
            return self._keep(Episode(alert=alert, peak=condition.count, until=condition.until))
        last = episode.alert
        changed = last.severity != condition.labels["severity"] or condition.count > episode.peak
        if not changed and now - last.updated_at < self.repeat_interval:
            if condition.until != episode.until:  # renewed quietly: remember when it will end
                self.episodes[fp] = episode.model_copy(update={"until": condition.until})
                self.changed.add(fp)
            return None
        update = {
            "labels": condition.labels,
            "annotations": annotations,
            "updated_at": now,
            "version": last.version + 1,
        }
        peak = max(episode.peak, condition.count)
        return self._keep(Episode(alert=last.model_copy(update=update), peak=peak, until=condition.until))

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
        return self._keep(Episode(alert=last.model_copy(update=update), peak=episode.peak, until=None))

    def _keep(self, episode: Episode) -> Alert:
        self.episodes[episode.alert.fingerprint] = episode
        self.changed.add(episode.alert.fingerprint)
        return episode.alert
