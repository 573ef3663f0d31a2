"""The fragility index: how close one ceasefire is to breaking, 0–100, from seven transparent components.

Each component is a number in [0, 1] with a saturation constant (the value at which it reaches 1) and
is published beside the index; the index is their weighted mean × 100, so it is monotone in every
component. Pure functions over incident summaries (or their windows' `Tally`) and an event time `as_of`
(the watermark).
Formula, constants and a worked example: docs/fragility.md (a test recomputes the example).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class Tally:
    """What the two windows ending at `as_of` hold: everything the components are computed from.

    `measure` tallies a list of summaries; the alert engine keeps the same figures as running totals
    (`services/alert/held.py`), and both turn them into components with `assess`, so they agree exactly.
    """

    recent: int  # live incidents in the recent window
    baseline: int  # live incidents in the baseline window
    last_hour: int  # recent incidents in the last hour
    rung: Severity | None  # highest among recent incidents
    killed: int
    injured: int
    reciprocal: int
    sectors: list[str]  # named sectors of recent incidents, sorted
    last: datetime | None  # the latest `at` at or before `as_of`


def tally(summaries: Iterable[IncidentSummary], as_of: datetime, config: FragilityConfig) -> Tally:
    """The windows' figures, straight from the summaries."""
    every = list(live(summaries))
    recent_start = as_of - config.recent_window
    recent = within(every, recent_start, as_of)
    baseline = within(every, recent_start - config.baseline_window, recent_start)
    return Tally(
        recent=len(recent),
        baseline=len(baseline),
        last_hour=len(within(recent, as_of - HOUR, as_of)),
        rung=max((s.severity for s in recent), default=None),
        killed=sum(s.killed for s in recent),
        injured=sum(s.injured for s in recent),
        reciprocal=sum(1 for s in recent if s.reciprocal),
        sectors=sorted({name for s in recent for name in s.sectors}),
        last=max((s.at for s in every if s.at <= as_of), default=None),
    )


def assess(
    figures: Tally, as_of: datetime, config: FragilityConfig, last_violation_at: datetime | None = None
) -> tuple[FragilityComponents, FragilityInputs]:
    """Components and the raw figures behind them, from the windows' tally."""
    components = assess_components(figures, as_of, config, last_violation_at)
    rate, baseline_mean, last, since = _rates(figures, as_of, config, last_violation_at)
    rung, killed, injured = figures.rung, figures.killed, figures.injured
    inputs = FragilityInputs(
        incidents_last_hour=figures.last_hour,
        incidents_recent=figures.recent,
        recent_hourly_rate=rate,
        baseline_hourly_mean=baseline_mean,
        max_severity=None if rung is None else int(rung),
        killed=killed,
        injured=injured,
        reciprocal_incidents=figures.reciprocal,
        sectors=figures.sectors,
        last_violation_at=last,
        hours_since_last_violation=since,
        recent_window_hours=config.recent_window / HOUR,
        baseline_window_hours=config.baseline_window / HOUR,
    )
    return components, inputs


def _rates(
    figures: Tally, as_of: datetime, config: FragilityConfig, last_violation_at: datetime | None
) -> tuple[float, float, datetime | None, float | None]:
    """Recent rate, baseline mean, the last violation and the hours since it."""
    rate = figures.recent / (config.recent_window / HOUR)
    baseline_mean = figures.baseline / (config.baseline_window / HOUR)
    last = figures.last
    if last_violation_at is not None and last_violation_at <= as_of:
        last = last_violation_at if last is None else max(last, last_violation_at)
    since = None if last is None else (as_of - last) / HOUR
    return rate, baseline_mean, last, since


def assess_components(
    figures: Tally, as_of: datetime, config: FragilityConfig, last_violation_at: datetime | None = None
) -> FragilityComponents:
    return FragilityComponents(**component_values(figures, as_of, config, last_violation_at))


def component_values(
    figures: Tally, as_of: datetime, config: FragilityConfig, last_violation_at: datetime | None = None
) -> dict[str, float]:
    """The components as plain numbers: all that FragilityHigh needs at every evaluation."""
    rate, baseline_mean, _, since = _rates(figures, as_of, config, last_violation_at)
    rung, killed, injured = figures.rung, figures.killed, figures.injured
    return {
        "intensity": _unit(rate / config.intensity_saturation),
        "trend": _unit((rate - baseline_mean) / config.trend_saturation),
        "severity": 0.0 if rung is None else int(rung) / int(TOP_RUNG),
        "casualties": _unit((killed + config.injured_weight * injured) / config.casualty_saturation),
        "reciprocity": figures.reciprocal / figures.recent if figures.recent else 0.0,
        "spread": _unit((len(figures.sectors) - 1) / (config.spread_saturation - 1)),
        "recency": 0.0 if since is None else 0.5 ** (since / (config.recency_half_life / HOUR)),
    }


def measure(
    summaries: Iterable[IncidentSummary],
    as_of: datetime,
    config: FragilityConfig,
    last_violation_at: datetime | None = None,
) -> tuple[FragilityComponents, FragilityInputs]:
    """Components and the raw figures behind them, for the windows ending at `as_of`."""
    return assess(tally(summaries, as_of, config), as_of, config, last_violation_at)


def fragility_index(components: FragilityComponents, weights: FragilityWeights) -> float:
    """Weighted mean × 100: monotone (non-decreasing) in each component, bounded to [0, 100]."""
    return weighted_index(components.model_dump(), weights.model_dump())


def weighted_index(components: Mapping[str, float], weights: Mapping[str, float]) -> float:
    total = sum(weights.values())
    return min(100.0, max(0.0, 100.0 * sum(w * components[name] for name, w in weights.items()) / total))


def snapshot(
    ceasefire_id: str,
    summaries: Iterable[IncidentSummary],
    as_of: datetime,
    config: FragilityConfig,
    last_violation_at: datetime | None = None,
) -> FragilitySnapshot:
    return snapshot_of(ceasefire_id, tally(summaries, as_of, config), as_of, config, last_violation_at)


def snapshot_of(
    ceasefire_id: str,
    figures: Tally,
    as_of: datetime,
    config: FragilityConfig,
    last_violation_at: datetime | None = None,
) -> FragilitySnapshot:
    components, inputs = assess(figures, as_of, config, last_violation_at)
    return FragilitySnapshot(
        ceasefire_id=ceasefire_id,
        as_of=as_of,
        index=fragility_index(components, config.weights),
        components=components,
        weights=config.weights,
        inputs=inputs,
    )
