"""The fragility index: how close one ceasefire is to breaking, 0–100, from seven transparent components.

Each component is a number in [0, 1] with a saturation constant (the value at which it reaches 1) and
is published beside the index; the index is their weighted mean × 100, so it is monotone in every
component. Pure functions over incident summaries and an event time `as_of` (the watermark).
Formula, constants and a worked example: docs/fragility.md (a test recomputes the example).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from schemas.fragility import FragilityComponents, FragilityInputs, FragilitySnapshot, FragilityWeights
from schemas.incident import Severity
from services.alert.recent import IncidentSummary, live, within

HOUR = timedelta(hours=1)
TOP_RUNG = max(Severity)


class FragilityConfig(BaseModel):
    """Windows and saturation constants; defaults are those documented in docs/fragility.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    weights: FragilityWeights = FragilityWeights()
    recent_window: timedelta = Field(default=timedelta(hours=6), gt=timedelta(0))
    baseline_window: timedelta = Field(default=timedelta(hours=24), gt=timedelta(0))
    intensity_saturation: float = Field(default=1.0, gt=0)  # incidents per hour in the recent window
    trend_saturation: float = Field(default=1.0, gt=0)  # incidents per hour above the baseline mean
    casualty_saturation: float = Field(default=5.0, gt=0)  # killed-equivalents in the recent window
    injured_weight: float = Field(default=0.25, ge=0)  # an injury counts this much of a death
    spread_saturation: int = Field(default=3, ge=2)  # distinct named sectors
    recency_half_life: timedelta = Field(default=timedelta(hours=6), gt=timedelta(0))

    @property
    def horizon(self) -> timedelta:
        """How far behind `as_of` an incident can still change the index."""
        return self.recent_window + self.baseline_window


def _unit(x: float) -> float:
    return min(1.0, max(0.0, x))


def measure(
    summaries: Iterable[IncidentSummary],
    as_of: datetime,
    config: FragilityConfig,
    last_violation_at: datetime | None = None,
) -> tuple[FragilityComponents, FragilityInputs]:
    """Components and the raw figures behind them, for the windows ending at `as_of`."""
    every = list(live(summaries))
    recent_start = as_of - config.recent_window
    recent = within(every, recent_start, as_of)
    baseline = within(every, recent_start - config.baseline_window, recent_start)
    recent_hours = config.recent_window / HOUR
    baseline_hours = config.baseline_window / HOUR
    rate = len(recent) / recent_hours
    baseline_mean = len(baseline) / baseline_hours
    rung = max((s.severity for s in recent), default=None)
    killed = sum(s.killed for s in recent)
    injured = sum(s.injured for s in recent)
    reciprocal = sum(1 for s in recent if s.reciprocal)
    sectors = sorted({name for s in recent for name in s.sectors})
    last = max((s.at for s in every if s.at <= as_of), default=None)
    if last_violation_at is not None and last_violation_at <= as_of:
        last = last_violation_at if last is None else max(last, last_violation_at)
    since = None if last is None else (as_of - last) / HOUR

    components = FragilityComponents(
        intensity=_unit(rate / config.intensity_saturation),
        trend=_unit((rate - baseline_mean) / config.trend_saturation),
        severity=0.0 if rung is None else int(rung) / int(TOP_RUNG),
        casualties=_unit((killed + config.injured_weight * injured) / config.casualty_saturation),
        reciprocity=reciprocal / len(recent) if recent else 0.0,
        spread=_unit((len(sectors) - 1) / (config.spread_saturation - 1)),
        recency=0.0 if since is None else 0.5 ** (since / (config.recency_half_life / HOUR)),
    )
    inputs = FragilityInputs(
        incidents_last_hour=len(within(recent, as_of - HOUR, as_of)),
        incidents_recent=len(recent),
        recent_hourly_rate=rate,
        baseline_hourly_mean=baseline_mean,
        max_severity=None if rung is None else int(rung),
        killed=killed,
        injured=injured,
        reciprocal_incidents=reciprocal,
        sectors=sectors,
        last_violation_at=last,
        hours_since_last_violation=since,
        recent_window_hours=recent_hours,
        baseline_window_hours=baseline_hours,
    )
    return components, inputs


def fragility_index(components: FragilityComponents, weights: FragilityWeights) -> float:
    """Weighted mean × 100: monotone (non-decreasing) in each component, bounded to [0, 100]."""
    w = weights.model_dump()
    c = components.model_dump()
    total = sum(w.values())
    return min(100.0, max(0.0, 100.0 * sum(w[name] * c[name] for name in w) / total))


def snapshot(
    ceasefire_id: str,
    summaries: Iterable[IncidentSummary],
    as_of: datetime,
    config: FragilityConfig,
    last_violation_at: datetime | None = None,
) -> FragilitySnapshot:
    components, inputs = measure(summaries, as_of, config, last_violation_at)
    return FragilitySnapshot(
        ceasefire_id=ceasefire_id,
        as_of=as_of,
        index=fragility_index(components, config.weights),
        components=components,
        weights=config.weights,
        inputs=inputs,
    )
