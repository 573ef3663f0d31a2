"""Alert rules as conditions: which alerts *should* be firing at event time `now`, given the incidents.

Pure functions of the incident summaries, the watermark and (for hysteresis) the current severity;
episodes, repeats and versions are `services/alert/episodes.py`'s business. Semantics and defaults:
docs/alerts.md. Each rule over all summaries (`violations`, `escalations`, ...) is the reference; the
engine builds the same conditions one scope at a time (`violation`, `escalation`, ...) from its indexes
(`services/alert/held.py`), so the wording and figures of a condition come from one place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.alert import AlertName, AlertSeverity
from schemas.fragility import FragilityComponents, FragilitySnapshot
from schemas.incident import Severity
from services.alert.fragility import HOUR, FragilityConfig
from services.alert.recent import IncidentSummary, Timeline, newest_first, within

MAX_IDS = 20  # incident ids carried in annotations, newest first
SEVERITY: dict[AlertName, AlertSeverity] = {  # of each rule's alerts (FragilityHigh's varies)
    AlertName.CEASEFIRE_VIOLATION: "warning",
    AlertName.MUTUAL_ACCUSATION: "warning",
    AlertName.ESCALATION: "critical",
    AlertName.CASUALTIES: "critical",
    AlertName.VIOLATION_SURGE: "critical",
}
TOP_RUNG = int(max(Severity))
Summaries = Sequence[IncidentSummary]


class AlertRules(BaseModel):
    """Thresholds and holds, all in event time."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    repeat_interval: timedelta = Field(default=timedelta(hours=4), gt=timedelta(0))
    violation_hold: timedelta = timedelta(hours=6)  # CeasefireViolation resolves after this without incidents
    incident_hold: timedelta = timedelta(hours=6)  # per-incident alerts resolve after this without a version
    escalation_rungs: int = Field(default=2, ge=1)
    escalation_rung: Severity = Severity.DRONE  # this rung or above always escalates
    escalation_lookback: timedelta = timedelta(hours=24)
    escalation_hold: timedelta = timedelta(hours=6)
    surge_window: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))
    surge_baseline: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))
    surge_minimum: int = Field(default=5, ge=1)
    surge_factor: float = Field(default=3.0, gt=0)
    surge_hold: timedelta = timedelta(hours=1)  # keeps firing this long after the last incident that met it
    fragility_warning: float = 50.0
    fragility_critical: float = 75.0
    fragility_critical_clear: float = 65.0  # critical falls back to warning below this
    fragility_clear: float = 40.0  # FragilityHigh resolves below this
    episode_retention: timedelta = timedelta(days=7)  # resolved per-incident alerts are forgotten after this
    fragility: FragilityConfig = FragilityConfig()

    @model_validator(mode="after")
    def _hysteresis(self) -> AlertRules:
        ok = (
            self.fragility_clear <= self.fragility_warning <= self.fragility_critical
            and self.fragility_clear <= self.fragility_critical_clear <= self.fragility_critical
        )
        if not ok:
            raise ValueError(
                "fragility thresholds: need clear <= warning <= critical"
                " and clear <= critical_clear <= critical"
            )
        return self

    @property
    def horizon(self) -> timedelta:
        """How far behind the watermark an incident can still matter to some rule."""
        return max(
            self.fragility.horizon,
            self.surge_hold + self.surge_window + self.surge_baseline,
            self.escalation_lookback + self.escalation_hold,
            self.violation_hold,
            self.incident_hold,
        )


@dataclass(frozen=True, slots=True)
class Condition:
    """An alert that should be firing now. `count` rising above its episode peak is a meaningful change.

    `until` lets a resolution carry the exact event time the condition ended, however late the watermark
    that notices it arrives.
    """

    labels: dict[str, str]
    count: int
    summary: str
    description: str
    incident_ids: tuple[str, ...] = field(default=())
    until: datetime | None = None  # when it stops holding if no incident arrives; None: evaluated afresh


def _labels(
    name: AlertName, ceasefire_id: str, *, level: AlertSeverity | None = None, **scope: str
) -> dict[str, str]:
    severity = SEVERITY[name] if level is None else level
    return {"alertname": name.value, "ceasefire": ceasefire_id, "severity": severity, **scope}


def _ids(summaries: Iterable[IncidentSummary]) -> tuple[str, ...]:
    return tuple(s.incident_id for s in newest_first(summaries)[:MAX_IDS])


def _held(summaries: Iterable[IncidentSummary], now: datetime, hold: timedelta) -> list[IncidentSummary]:
    """Live incidents whose latest version arrived less than `hold` ago (event time)."""
    return [s for s in summaries if not s.merged and now - s.seen_at < hold]


def _by_sector(summaries: Iterable[IncidentSummary]) -> dict[str, list[IncidentSummary]]:
    sectors: dict[str, list[IncidentSummary]] = defaultdict(list)
    for s in summaries:
        for name in s.alert_sectors:
            sectors[name].append(s)
    return sectors


def violations(ceasefire_id: str, summaries: Summaries, now: datetime, rules: AlertRules) -> list[Condition]:
    """CeasefireViolation per sector: any incident there within the hold."""
    return [
        violation(ceasefire_id, sector, len(found), found, max(s.seen_at for s in found), rules)
        for sector, found in _by_sector(_held(summaries, now, rules.violation_hold)).items()
    ]


def violation(
    ceasefire_id: str, sector: str, count: int, newest: Summaries, last_seen: datetime, rules: AlertRules
) -> Condition:
    """CeasefireViolation in one sector: `count` (> 0) incidents held there, of which `newest` are the
    newest (all of them, or at least `MAX_IDS`), the latest version having arrived at `last_seen`."""
    hours = rules.violation_hold / HOUR
    return Condition(
        labels=_labels(AlertName.CEASEFIRE_VIOLATION, ceasefire_id, sector=sector),
        count=count,
        summary=f"Ceasefire violation in {sector}",
        description=f"{count} incident(s) in {sector} within the last {hours:g} h of event time.",
        incident_ids=_ids(newest),
        until=last_seen + rules.violation_hold,
    )


def mutual_accusations(
    ceasefire_id: str, summaries: Summaries, now: datetime, rules: AlertRules
) -> list[Condition]:
    """MutualAccusation per incident: each side blames the other (tit-for-tat)."""
    found = (mutual_accusation(ceasefire_id, s, rules) for s in _held(summaries, now, rules.incident_hold))
    return [c for c in found if c is not None]


def mutual_accusation(ceasefire_id: str, s: IncidentSummary, rules: AlertRules) -> Condition | None:
    """MutualAccusation for one live incident within its hold, if it is tit-for-tat."""
    if not s.reciprocal:
        return None
    return Condition(
        labels=_labels(AlertName.MUTUAL_ACCUSATION, ceasefire_id, incident=s.incident_id),
        count=0,
        summary=f"Both parties accuse each other over incident {s.incident_id}",
        description=f"Incident {s.incident_id} ({', '.join(s.alert_sectors)}) is reported by both sides.",
        incident_ids=(s.incident_id,),
        until=s.seen_at + rules.incident_hold,
    )


def casualties(ceasefire_id: str, summaries: Summaries, now: datetime, rules: AlertRules) -> list[Condition]:
    """Casualties per incident: someone was (or is said to have been) killed; re-emits if the toll rises."""
    found = (casualty(ceasefire_id, s, rules) for s in _held(summaries, now, rules.incident_hold))
    return [c for c in found if c is not None]


def casualty(ceasefire_id: str, s: IncidentSummary, rules: AlertRules) -> Condition | None:
    """Casualties for one live incident within its hold, if anyone was killed."""
    if s.killed <= 0:
        return None
    return Condition(
        labels=_labels(AlertName.CASUALTIES, ceasefire_id, incident=s.incident_id),
        count=s.killed,
        summary=f"Up to {s.killed} killed in incident {s.incident_id}",
        description=f"Incident {s.incident_id} ({', '.join(s.alert_sectors)}): up to {s.killed} killed, "
        f"up to {s.injured} injured.",
        incident_ids=(s.incident_id,),
        until=s.seen_at + rules.incident_hold,
    )


def _escalates(x: IncidentSummary, sector: Timeline, rules: AlertRules) -> bool:
    """Two rungs above the sector's highest in the lookback before it (LIGHT when the sector was silent)."""
    if x.severity >= rules.escalation_rung:
        return True
    earlier = sector.before(x.at - rules.escalation_lookback, x.at)
    prior = max((y.severity for y in earlier), default=Severity.LIGHT)
    return x.severity >= prior + rules.escalation_rungs


def escalation_ceiling(x: IncidentSummary, rules: AlertRules) -> int | None:
    """The highest rung the sector may have reached in the look-back for `x` still to escalate.

    `TOP_RUNG`: `x` escalates whatever came before. None: it cannot (it would need a rung below LIGHT).
    """
    if x.severity >= rules.escalation_rung:
        return TOP_RUNG
    ceiling = x.severity - rules.escalation_rungs
    return ceiling if ceiling >= Severity.LIGHT else None


def escalations(ceasefire_id: str, summaries: Summaries, now: datetime, rules: AlertRules) -> list[Condition]:
    """Escalation per sector: an escalating incident there within the hold."""
    held = _held(summaries, now, rules.escalation_hold)
    if not held:
        return []
    by_sector = _by_sector(s for s in summaries if not s.merged)
    sectors = {name: Timeline(found) for name, found in by_sector.items()}
    found: dict[str, list[IncidentSummary]] = defaultdict(list)
    for x in held:
        for sector in x.alert_sectors:
            if _escalates(x, sectors[sector], rules):
                found[sector].append(x)
    return [escalation(ceasefire_id, sector, escalating, rules) for sector, escalating in found.items()]


def escalation(ceasefire_id: str, sector: str, escalating: Summaries, rules: AlertRules) -> Condition:
    """Escalation in one sector, given the (non-empty) escalating incidents held there."""
    top, last_seen = max(s.severity for s in escalating), max(s.seen_at for s in escalating)
    return escalation_alert(ceasefire_id, sector, len(escalating), top, escalating, last_seen, rules)


def escalation_alert(
    ceasefire_id: str, sector: str, count: int, top: Severity, newest: Summaries, last_seen: datetime,
    rules: AlertRules,
) -> Condition:
    """Escalation in one sector: `count` (> 0) escalating incidents held there, the highest at rung
    `top`, of which `newest` are the newest (all, or at least `MAX_IDS`), the latest version of one
    having arrived at `last_seen`."""
    return Condition(
        labels=_labels(AlertName.ESCALATION, ceasefire_id, sector=sector),
        count=count,
        summary=f"Escalation to {top.name.lower()} in {sector}",
        description=f"{count} incident(s) in {sector} climbed the weapon ladder to "
        f"{top.name.lower()} (rung {int(top)}).",
        incident_ids=_ids(newest),
        until=last_seen + rules.escalation_hold,
    )


def _surge_at(timeline: Timeline, at: datetime, rules: AlertRules) -> tuple[int, float, float]:
    """Incidents in the window ending at `at`, the baseline's hourly mean, and the threshold to meet."""
    start = at - rules.surge_window
    before = timeline.count(start - rules.surge_baseline, start)
    return surge_measure(timeline.count(start, at), before, rules)


def surge_measure(count: int, before: int, rules: AlertRules) -> tuple[int, float, float]:
    """The window's count, the baseline's hourly mean (from its count `before`), the threshold to meet."""
    mean = before / (rules.surge_baseline / HOUR)
    return count, mean, max(rules.surge_minimum, rules.surge_factor * mean * (rules.surge_window / HOUR))


Met = tuple[IncidentSummary, int, float, float]  # an incident that met the surge threshold, and its figures


def surge(ceasefire_id: str, summaries: Summaries, now: datetime, rules: AlertRules) -> list[Condition]:
    """ViolationSurge: incidents in the last window >= max(minimum, factor x hourly mean of the baseline).

    A window count only rises when an incident arrives, so the rule is checked at each incident's time:
    exact, whenever the watermark happens to move. It keeps firing for `surge_hold` after the last
    incident that met it (Prometheus' keep_firing_for), so a surge does not flap as incidents age out.
    """
    held = _held(summaries, now, rules.surge_hold)
    if not held:
        return []
    timeline = Timeline(summaries)
    met: list[Met] = []
    for x in held:
        count, mean, threshold = _surge_at(timeline, x.at, rules)
        if count >= threshold:
            met.append((x, count, mean, threshold))
    if not met:
        return []
    return [surge_condition(ceasefire_id, met, within(summaries, now - rules.surge_window, now), rules)]


def surge_condition(ceasefire_id: str, met: Sequence[Met], latest: Summaries, rules: AlertRules) -> Condition:
    """ViolationSurge, given the (non-empty) held incidents that met the threshold and the window's
    incidents (all of them, or at least the `MAX_IDS` newest)."""
    _, count, mean, threshold = max(met, key=lambda m: (m[1], m[0].at, m[0].incident_id))
    last_seen = max(m[0].seen_at for m in met)
    return surge_alert(ceasefire_id, count, mean, threshold, last_seen, latest, rules)


def surge_alert(
    ceasefire_id: str, count: int, mean: float, threshold: float, last_seen: datetime, latest: Summaries,
    rules: AlertRules,
) -> Condition:
    """ViolationSurge from the figures of the incident that met the threshold with the highest (count,
    at, id), when the latest version of one that met it arrived, and the window's incidents."""
    hours = rules.surge_window / HOUR
    return Condition(
        labels=_labels(AlertName.VIOLATION_SURGE, ceasefire_id),
        count=count,
        summary=f"Surge: {count} incidents in {hours:g} h",
        description=f"{count} incidents in {hours:g} h against an hourly mean of {mean:.2f} over the "
        f"{rules.surge_baseline / HOUR:g} h before (threshold {threshold:.2f}).",
        incident_ids=_ids(latest),
        until=last_seen + rules.surge_hold,
    )


def fragility_level(index: float, current: str | None, rules: AlertRules) -> AlertSeverity | None:
    """FragilityHigh severity with hysteresis, so an index hovering at a threshold does not flap."""
    stays_critical = current == "critical" and index >= rules.fragility_critical_clear
    if index >= rules.fragility_critical or stays_critical:
        return "critical"
    if index >= rules.fragility_warning or (current is not None and index >= rules.fragility_clear):
        return "warning"
    return None


def fragility_high(snapshot: FragilitySnapshot, current: str | None, rules: AlertRules) -> list[Condition]:
    found = fragility_condition(snapshot.ceasefire_id, snapshot.index, snapshot.components, current, rules)
    return [] if found is None else [found]


def fragility_condition(
    ceasefire_id: str, index: float, c: FragilityComponents, current: str | None, rules: AlertRules
) -> Condition | None:
    """FragilityHigh from the index and its components (no need for a whole snapshot)."""
    level = fragility_level(index, current, rules)
    if level is None:
        return None
    return Condition(
        labels=_labels(AlertName.FRAGILITY_HIGH, ceasefire_id, level=level),
        count=0,
        summary=f"Ceasefire fragility {index:.1f}/100",
        description=f"Fragility index {index:.1f}: intensity {c.intensity:.2f}, "
        f"trend {c.trend:.2f}, severity {c.severity:.2f}, casualties {c.casualties:.2f}, "
        f"reciprocity {c.reciprocity:.2f}, "
        f"spread {c.spread:.2f}, recency {c.recency:.2f}.",
    )
