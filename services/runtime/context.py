"""What every stage is built with: settings, the ceasefire registry and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from schemas.ceasefire import Registry, load_registry
from services.runtime.metrics import Metrics
from services.runtime.settings import Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    registry: Registry
    prometheus: CollectorRegistry = field(default_factory=CollectorRegistry)
    metrics: Metrics = field(init=False)
    stages: dict[str, Any] = field(default_factory=dict)  # stage objects, for the read API and live view
    dead_letter_reasons: tuple[str, ...] = ()  # the `reason` label's fixed set, from the ingest domain

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", Metrics.create(self.prometheus, self.dead_letter_reasons))

    @classmethod
    def load(cls, settings: Settings, dead_letter_reasons: tuple[str, ...] = ()) -> Context:
        return cls(settings=settings, registry=load_registry(settings.registry_path), dead_letter_reasons=dead_letter_reasons)
