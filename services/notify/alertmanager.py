"""The alert stream as Alertmanager sees it: the v2 alert object for an `Alert`, and what to send when.

Pure (no framework, no clock of its own): the forwarder (`forwarder.py`) feeds it records from
`ceasefire.alerts.v1` and the times, and POSTs what it says. Contract: docs/alertmanager.md.

Two differences between our records and Alertmanager's alerts decide most of this module:

- **Firing needs an end.** Alertmanager resolves an alert when its `endsAt` passes, so a firing one
  is sent with `endsAt` a few resends ahead of the wall clock and sent again every resend (as
  Prometheus does: 4 × its resend delay). If the forwarder stops, Alertmanager resolves the alerts
  by itself after that span rather than keeping them firing for ever.
- **Every label identifies.** Our fingerprint leaves `severity` out (a warning turning critical is
  the same alert); Alertmanager's takes every label. When a delivered alert's labels change, the
  label set Alertmanager holds is resolved in the same POST (a `Retirement`), or it would fire on,
  beside its successor, until its `endsAt`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from schemas.alert import Alert

FIRING_SPAN_RESENDS = 4  # a firing alert is sent valid for this many resend intervals (Prometheus' choice)
BACKOFF_FIRST_SECONDS = 0.5
API_PATH = "/api/v2/alerts"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_alertmanager(
    alert: Alert, now: datetime, resend: timedelta, generator_url: str | None = None
) -> dict[str, Any]:
    """One element of the POST /api/v2/alerts body. `now` is the wall clock: Alertmanager compares
    `endsAt` with its own, while `startsAt`/`endsAt` of the episode are event time."""
    annotations = {
        "summary": alert.annotations.summary,
        "description": alert.annotations.description,
        "fingerprint": alert.fingerprint,  # ours, to find the records: `ceasefire alerts --json`
        "version": str(alert.version),
    }
    if alert.annotations.incident_ids:
        annotations["incident_ids"] = ", ".join(alert.annotations.incident_ids)
    body: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": annotations,
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(_ends_at(alert, now, resend)),
    }
    if generator_url:
        body["generatorURL"] = (
            generator_url.replace("{fingerprint}", alert.fingerprint)
            .replace("{ceasefire}", quote(alert.labels["ceasefire"], safe=""))
        )
    return body


def _ends_at(alert: Alert, now: datetime, resend: timedelta) -> datetime:
    if alert.ends_at is None:
        return max(now + FIRING_SPAN_RESENDS * resend, alert.starts_at)
    # Event time may run a little ahead of the clock (CEASEFIRE_MAX_FUTURE_MINUTES): a resolved
    # record means resolved now, not "firing until then" in Alertmanager's eyes.
    return max(min(alert.ends_at, now), alert.starts_at)


@dataclass(frozen=True)
class Retirement:
    """A label set delivered as firing that the alert no longer has (its severity changed)."""

    previous: Alert
    ended_at: datetime  # the successor's updated_at: event time

    def to_alertmanager(self, now: datetime, generator_url: str | None = None) -> dict[str, Any]:
        body = to_alertmanager(self.previous, now, timedelta(0), generator_url)
        body["endsAt"] = rfc3339(max(min(self.ended_at, now), self.previous.starts_at))
        return body


@dataclass(frozen=True)
class Batch:
    """What one POST carries: alerts in their newest version, and label sets to resolve."""

    alerts: tuple[Alert, ...] = ()
    retirements: tuple[Retirement, ...] = ()

    def __len__(self) -> int:
        return len(self.alerts) + len(self.retirements)

    def payload(self, now: datetime, resend: timedelta, generator_url: str | None = None) -> list[dict[str, Any]]:
        # Retirements first: Alertmanager applies a POST in order, and nothing in one depends on the other.
        return [r.to_alertmanager(now, generator_url) for r in self.retirements] + [
            to_alertmanager(a, now, resend, generator_url) for a in self.alerts
        ]


class AlertBook:
    """The newest record per fingerprint and what Alertmanager has of it.

    A record whose version is not above the held one is dropped (the topic re-delivers after a crash
    of the alert stage, and a reader started again reads it from the beginning). Changed alerts are
    sent at once; firing ones again each `resend_seconds` after they were last delivered; resolved
    ones once, after which only their version is kept (so memory follows the firing alerts, not
    every alert ever raised). Times given here are monotonic seconds.
    """

    def __init__(self, resend_seconds: float) -> None:
        self.resend_seconds = resend_seconds
        self.versions: dict[str, int] = {}  # every fingerprint seen: its newest version
        self.alerts: dict[str, Alert] = {}  # newest record, while firing or not yet delivered
        self.unsent: dict[str, None] = {}  # fingerprints whose newest record is not delivered (in order)
        self.delivered: dict[str, Alert] = {}  # what Alertmanager holds as firing, per fingerprint
        self.delivered_at: dict[str, float] = {}

    def offer(self, alert: Alert) -> bool:
        """Keep `alert` if it is newer than what is held; True when it was."""
        held = self.versions.get(alert.fingerprint)
        if held is not None and alert.version <= held:
            return False
        self.versions[alert.fingerprint] = alert.version
        self.alerts[alert.fingerprint] = alert
        self.unsent[alert.fingerprint] = None
        return True

    def take(self, now: float, limit: int) -> Batch:
        """Up to `limit` alerts to send now: changed ones first, then firing ones due again."""
        chosen: dict[str, Alert] = {}
        for fp in self.unsent:
            if len(chosen) >= limit:
                break
            chosen[fp] = self.alerts[fp]
        for fp, at in self.delivered_at.items():
            if len(chosen) >= limit:
                break
            if fp not in chosen and at + self.resend_seconds <= now:
                chosen[fp] = self.alerts[fp]
        retirements = tuple(
            Retirement(previous, alert.updated_at)
            for fp, alert in chosen.items()
            if (previous := self.delivered.get(fp)) is not None and previous.labels != alert.labels
        )
        return Batch(tuple(chosen.values()), retirements)

    def mark_delivered(self, batch: Batch, now: float) -> None:
        """Alertmanager has `batch` (or refused it for good: then it is not tried again until due)."""
        for alert in batch.alerts:
            fp = alert.fingerprint
            if alert.status == "firing":
                self.delivered[fp], self.delivered_at[fp] = alert, now
            else:
                self.delivered.pop(fp, None)
                self.delivered_at.pop(fp, None)
            if self.versions[fp] == alert.version:  # else a newer record came in meanwhile: still unsent
                self.unsent.pop(fp, None)
                if alert.status == "resolved":
                    del self.alerts[fp]

    def next_due(self, now: float) -> float | None:
        """Seconds until a firing alert falls due again; None when none is firing."""
        if not self.delivered_at:
            return None
        return max(0.0, min(self.delivered_at.values()) + self.resend_seconds - now)

    @property
    def pending(self) -> int:
        """Alerts whose newest record Alertmanager does not have yet."""
        return len(self.unsent)


def backoff_seconds(attempt: int, ceiling: float, draw: Callable[[float, float], float] = random.uniform) -> float:
    """Pause before retry `attempt` (1, 2, …): doubling from half a second up to `ceiling`, drawn from
    its upper half, so workers that failed together do not retry together."""
    top = min(ceiling, BACKOFF_FIRST_SECONDS * 2 ** min(max(attempt, 1) - 1, 32))
    return draw(top / 2, top)


def redacted(url: str) -> str:
    """`url` fit for a log line: no user, password or query (they may hold credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def alerts_endpoint(url: str) -> str:
    """Alertmanager's POST/GET alerts URL under `url` (which may carry a --web.route-prefix path)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + API_PATH))
