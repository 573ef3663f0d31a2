"""Fragility schema v1 (topic `ceasefire.fragility.v1`, key `ceasefire_id`): is a ceasefire near breaking?

The index (0–100) is a weighted mean of seven components, each 0–1 and published beside it so that a
reader can see *why* the number moved (docs/fragility.md). `as_of` is the event time described: the
watermark of the ceasefire's incidents, never wall time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class FragilityComponents(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    intensity: float = Field(ge=0, le=1)
    trend: float = Field(ge=0, le=1)
    severity: float = Field(ge=0, le=1)
    casualties: float = Field(ge=0, le=1)
    reciprocity: float = Field(ge=0, le=1)
    spread: float = Field(ge=0, le=1)
    recency: float = Field(ge=0, le=1)


class FragilityWeights(BaseModel):
    """How much each component counts; the index divides by their sum, so they need not add to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    intensity: float = Field(default=0.25, ge=0)
    trend: float = Field(default=0.10, ge=0)
    severity: float = Field(default=0.15, ge=0)
    casualties: float = Field(default=0.15, ge=0)
    reciprocity: float = Field(default=0.15, ge=0)
    spread: float = Field(default=0.15, ge=0)
    recency: float = Field(default=0.05, ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> FragilityWeights:
        if sum(self.model_dump().values()) <= 0:
            raise ValueError("at least one fragility weight must be positive")
        return self


class FragilityInputs(BaseModel):
    """The raw figures behind the components, for explanation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    incidents_last_hour: int = Field(ge=0)
    incidents_recent: int = Field(ge=0)  # in the recent window
    recent_hourly_rate: float = Field(ge=0)
    baseline_hourly_mean: float = Field(ge=0)  # over the baseline window before the recent one
    max_severity: int | None = None  # highest weapon-ladder rung in the recent window
    killed: int = Field(ge=0)  # sum of `killed_high` over recent incidents
    injured: int = Field(ge=0)
    reciprocal_incidents: int = Field(ge=0)
    sectors: list[str]  # named sectors with recent incidents, sorted
    last_violation_at: AwareDatetime | None = None
    hours_since_last_violation: float | None = None
    recent_window_hours: float = Field(gt=0)
    baseline_window_hours: float = Field(gt=0)


class FragilitySnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    ceasefire_id: str
    as_of: AwareDatetime
    index: float = Field(ge=0, le=100)
    components: FragilityComponents
    weights: FragilityWeights
    inputs: FragilityInputs
    # "grid": the series, one per step of event time (CEASEFIRE_FRAGILITY_STEP_MINUTES), the same for any
    # arrival order; "change": the index as a batch left it; "repeat": the latest again, for dashboards
    kind: Literal["grid", "change", "repeat"] = "change"
