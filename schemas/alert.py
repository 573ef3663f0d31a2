"""Alert schema v1 (topic `ceasefire.alerts.v1`, key `fingerprint`, compacted): Alertmanager-like records.

One record per change of an alert: it starts firing, its severity or count moves, a repeat falls due,
or it resolves. `version` counts the records of one fingerprint, so a compacted topic keeps the newest
and a consumer can drop anything older than what it has. All times are event time (the watermark of
the ceasefire's incidents), never wall time: replaying the same incidents yields the same records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

AlertStatus = Literal["firing", "resolved"]
AlertSeverity = Literal["warning", "critical"]

# Labels that say *which* alert this is. `severity` is left out on purpose: a warning that turns
# critical is the same alert changing, not a second alert.
NON_IDENTIFYING = frozenset({"severity"})


class AlertName(StrEnum):
    CEASEFIRE_VIOLATION = "CeasefireViolation"
    MUTUAL_ACCUSATION = "MutualAccusation"
    ESCALATION = "Escalation"
    CASUALTIES = "Casualties"
    VIOLATION_SURGE = "ViolationSurge"
    FRAGILITY_HIGH = "FragilityHigh"


def fingerprint(labels: Mapping[str, str]) -> str:
    """Hash of the sorted identifying labels: stable across versions, processes and replays."""
    material = "\x1e".join(f"{k}\x1f{v}" for k, v in sorted(labels.items()) if k not in NON_IDENTIFYING)
    return hashlib.blake2b(material.encode(), digest_size=8).hexdigest()


class Annotations(BaseModel):
    """What a person reads: never part of the fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    summary: str
    description: str
    incident_ids: list[str] = Field(default_factory=list)  # newest first, at most 20


class Alert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    fingerprint: str
    labels: dict[str, str]  # alertname, ceasefire, severity and, by rule, sector or incident
    annotations: Annotations
    status: AlertStatus
    starts_at: AwareDatetime  # event time the episode began
    ends_at: AwareDatetime | None = None  # None while firing
    updated_at: AwareDatetime  # event time of this record
    version: int = Field(ge=1)  # +1 per record of this fingerprint, across episodes

    @model_validator(mode="after")
    def _consistent(self) -> Alert:
        for name in ("alertname", "ceasefire", "severity"):
            if name not in self.labels:
                raise ValueError(f"label {name!r} is required")
        if self.fingerprint != fingerprint(self.labels):
            raise ValueError("fingerprint does not match the identifying labels")
        if (self.status == "resolved") != (self.ends_at is not None):
            raise ValueError("ends_at is set exactly when the alert is resolved")
        return self

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels["severity"]
