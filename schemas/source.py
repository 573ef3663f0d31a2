"""The source registry (`deploy/sources.yaml`): who may file reports, for which party, with which keys.

Both parties to a ceasefire have reasons to shape the record, so a report's `source_party` is not taken
on its word: validation checks it against the party the registry gives its source in that ceasefire,
and only sources registered as `NEUTRAL` may report as neutral (docs/security.md). Source ids compare
case-insensitively; the registry's spelling is the one stored. Signing key ids are public and listed
here; the secrets behind them are not (services/ingest/signature.py reads them from a secrets path).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from schemas.ceasefire import NEUTRAL, Registry
from schemas.report import SOURCE_ID_PATTERN

SourceKind = Literal["military", "government", "observer_mission", "media", "ngo", "civil_society"]
log = logging.getLogger(__name__)
EVERY_CEASEFIRE = "*"  # a `parties` key: the party in any ceasefire not named (neutral observers, wire agencies)
KEY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def fold(source: str) -> str:
    """How source ids compare: ASCII case folded (the schema admits ASCII ids only)."""
    return source.lower()


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=SOURCE_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    kind: SourceKind
    # ceasefire id (or "*") → the party code it belongs to there, or NEUTRAL
    parties: dict[str, str] = Field(min_length=1)
    keys: tuple[str, ...] = ()  # ids of its signing keys (several: rotation)
    signing: Literal["required", "optional"] = "optional"

    @model_validator(mode="after")
    def _signable(self) -> Source:
        if self.signing == "required" and not self.keys:
            raise ValueError(f"source {self.id}: signing is required but no key ids are listed")
        return self

    def party_in(self, ceasefire_id: str) -> str | None:
        """Its party in a ceasefire (a code or NEUTRAL); None: it has no standing there."""
        return self.parties.get(ceasefire_id, self.parties.get(EVERY_CEASEFIRE))


class SourceRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: tuple[Source, ...]
    _by_id: dict[str, Source] = PrivateAttr(default_factory=dict)
    _by_key: dict[str, Source] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _unique(self) -> SourceRegistry:
        for source in self.sources:
            if fold(source.id) in self._by_id:
                raise ValueError(f"source {source.id} is listed twice (ids compare case-insensitively)")
            self._by_id[fold(source.id)] = source
            for key_id in source.keys:
                if key_id in self._by_key:
                    raise ValueError(f"key id {key_id} belongs to two sources")
                self._by_key[key_id] = source
        return self

    def get(self, source_id: str) -> Source | None:
        """Case-insensitive: `IN.ARMY` is `in.army`."""
        return self._by_id.get(fold(source_id))

    def key_owner(self, key_id: str) -> Source | None:
        return self._by_key.get(key_id)

    def check_against(self, ceasefires: Registry) -> list[str]:
        """Every party named is a party of its ceasefire, or NEUTRAL: a typo fails at start-up, not at
        the first report. A ceasefire the ceasefire registry does not hold is not an error (one source
        registry may serve deployments watching different ceasefires): returned, to be logged."""
        unknown: list[str] = []
        for source in self.sources:
            for ceasefire_id, party in source.parties.items():
                if ceasefire_id == EVERY_CEASEFIRE:
                    if party != NEUTRAL:
                        raise ValueError(f"source {source.id}: only NEUTRAL may stand for every ceasefire ({EVERY_CEASEFIRE})")
                    continue
                ceasefire = ceasefires.get(ceasefire_id)
                if ceasefire is None:
                    unknown.append(f"source {source.id} names ceasefire {ceasefire_id!r}, which the ceasefire registry does not hold")
                    continue
                if party != NEUTRAL and party not in ceasefire.party_codes:
                    raise ValueError(f"source {source.id}: {party!r} is not a party to ceasefire {ceasefire_id}")
        return unknown


def spelling(registry: SourceRegistry | None, source: str) -> str:
    """A source id as it is stored: the registry's spelling of a registered source, else folded."""
    registered = None if registry is None else registry.get(source)
    return fold(source) if registered is None else registered.id


def load_sources(path: Path, ceasefires: Registry | None = None) -> SourceRegistry:
    """Read and validate the source registry YAML; a broken registry fails loudly at start-up."""
    with path.open(encoding="utf-8") as fh:
        registry = SourceRegistry.model_validate(yaml.safe_load(fh))
    if ceasefires is not None:
        for complaint in registry.check_against(ceasefires):
            log.warning("%s: %s", path, complaint)
    return registry
