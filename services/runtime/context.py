"""What every stage is built with: settings, the ceasefire registry and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from schemas.ceasefire import Registry, load_registry
from schemas.source import SourceRegistry, load_sources
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
    sources: SourceRegistry | None = None
    keys: dict[str, SecretStr] = field(default_factory=dict, repr=False)  # signing secrets: never shown

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", Metrics.create(self.prometheus, self.dead_letter_reasons))

    @classmethod
    def load(cls, settings: Settings, dead_letter_reasons: tuple[str, ...] = ()) -> Context:
        from services.ingest.signature import load_keys  # the ingest domain's; loaded once, for every stage

        registry = load_registry(settings.registry_path)
        return cls(
            settings=settings,
            registry=registry,
            dead_letter_reasons=dead_letter_reasons,
            sources=load_sources(settings.sources_path, registry),
            keys=load_keys(settings.source_keys_path),
        )
