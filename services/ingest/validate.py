"""Validation: raw bytes from the ingest topic in, an accepted report or a list of specific problems out.

Pure: no Faust, no Kafka. The clock is passed in, so a test fixes "now". Never raises on any input:
whatever the bytes, the verdict says accepted or why not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson
from pydantic import SecretStr, ValidationError

from schemas.ceasefire import NEUTRAL, Ceasefire, Registry
from schemas.report import MAX_REVISION, AcceptedReport, Location, is_report_id, is_source_id
from schemas.source import Source, SourceRegistry, fold, spelling
from services.ingest.lexical import lexical_findings
from services.ingest.signature import Headers, signature_problem


class Reason(StrEnum):
    """Why a record was dead-lettered: a fixed set, used as a metric label."""

    EMPTY = "empty"
    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    SCHEMA = "schema"
    SELF_ACCUSATION = "self_accusation"
    COORDINATES_OUT_OF_RANGE = "coordinates_out_of_range"
    UNKNOWN_CEASEFIRE = "unknown_ceasefire"
    PARTY_NOT_IN_CEASEFIRE = "party_not_in_ceasefire"
    UNKNOWN_SECTOR = "unknown_sector"
    OUTSIDE_CEASEFIRE_AREA = "outside_ceasefire_area"
    FUTURE_OBSERVED_AT = "future_observed_at"
    REPORTED_BEFORE_OBSERVED = "reported_before_observed"
    DUPLICATE_KEY = "duplicate_key"
    CONTROL_CHARACTER = "control_character"
    PRECISION_OUT_OF_RANGE = "precision_out_of_range"
    CASUALTIES_OUT_OF_RANGE = "casualties_out_of_range"
    BEFORE_CEASEFIRE = "before_ceasefire"
    FUTURE_REPORTED_AT = "future_reported_at"
    TOO_OLD = "too_old"  # ruled by dedup, which alone knows its partition's event time
    UNJUDGEABLE = "unjudgeable"  # dedup raised on the report: a defect, the report kept for a replay
    UNKNOWN_SOURCE = "unknown_source"
    PARTY_MISMATCH = "party_mismatch"
    SIGNATURE = "signature"
    STALE_REVISION = "stale_revision"  # ruled by dedup: an equal or lower revision with other content
    RETRACTED = "retracted"  # ruled by dedup: a revision after the report's retraction


@dataclass(frozen=True, slots=True)
class Problem:
    reason: Reason
    path: str  # JSON path of the offending field, "$" for the whole record
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason.value, "path": self.path, "message": self.message}


@dataclass(frozen=True, slots=True)
class Rules:
    """What validation checks against: the registry and the limits from settings."""

    registry: Registry
    max_bytes: int = 64 * 1024
    max_future: timedelta = timedelta(minutes=10)
    before_effective: timedelta = timedelta(hours=24)  # how long before a ceasefire's start a report may lie
    sources: SourceRegistry | None = None  # None: no source registry (every source taken on its word)
    sources_enforced: bool = True  # with a registry: an unregistered source is dead-lettered
    keys: Mapping[str, SecretStr] = field(default_factory=dict)  # signing key id → secret


Verdict = AcceptedReport | list[Problem]

_COORDINATE_BOUNDS = {"greater_than_equal", "less_than_equal"}
_BOUNDS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
_ACCUSED_PARTY_RULES = {"self_accusation", "neutral_accused"}


def validate(raw: bytes | None, rules: Rules, now: datetime, headers: Headers = None) -> Verdict:
    """Check one record's value (and its signature headers). `now` is the processing time, used for
    the future-time rule only."""
    if not raw:
        return [Problem(Reason.EMPTY, "$", "the record has no value")]
    if len(raw) > rules.max_bytes:
        return [Problem(Reason.TOO_LARGE, "$", f"{len(raw)} bytes is over the {rules.max_bytes}-byte limit")]
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [_undecodable(raw, exc)]
    if not isinstance(document, dict):
        return [Problem(Reason.SCHEMA, "$", f"a report is a JSON object, not {type(document).__name__}")]
    found = lexical_findings(raw, document)
    if found:
        return [Problem(Reason(kind), path, message) for kind, path, message in found]
    return _validate_document(document, rules, now, raw, headers)


def _undecodable(raw: bytes, exc: orjson.JSONDecodeError) -> Problem:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Problem(Reason.NOT_UTF8, "$", f"not UTF-8: invalid byte at position {bad.start}")
    return Problem(Reason.NOT_JSON, "$", f"not JSON: {exc.msg} at position {exc.pos}")


def _validate_document(
    document: dict[str, Any], rules: Rules, now: datetime, raw: bytes = b"", headers: Headers = None
) -> Verdict:
    for by_service in ("ingested_at", "ordered_at"):
        if by_service in document:
            return [Problem(Reason.SCHEMA, f"$.{by_service}", f"{by_service} is set by the service, not by reporters")]
    document["ingested_at"] = now
    try:
        report = AcceptedReport.model_validate(document)
    except ValidationError as exc:
        return [_schema_problem(error) for error in exc.errors(include_url=False)]
    ceasefire = rules.registry.get(report.ceasefire_id)
    if ceasefire is None:
        return [Problem(Reason.UNKNOWN_CEASEFIRE, "$.ceasefire_id", f"no ceasefire {report.ceasefire_id!r}")]
    trusted = _source_problems(report, rules, raw, headers)
    if isinstance(trusted, Problem):  # an untrusted report's other faults are moot
        return [trusted]
    problems = _registry_problems(trusted, ceasefire) + _time_problems(trusted, ceasefire, rules, now)
    if problems:
        return problems
    return _normalise_sector(trusted, ceasefire)


def _source_problems(report: AcceptedReport, rules: Rules, raw: bytes, headers: Headers) -> AcceptedReport | Problem:
    """The source registry's word on the report (docs/security.md): who it is (the registry's spelling
    of its id), whether its signature holds, and whether it speaks for the party it claims."""
    registry = rules.sources
    source = None if registry is None else registry.get(report.source)
    if registry is not None and source is None and rules.sources_enforced:
        return Problem(Reason.UNKNOWN_SOURCE, "$.source", f"source {report.source!r} is not in the source registry")
    wrong = signature_problem(raw, headers, source, registry, rules.keys)
    if wrong is not None:
        return Problem(Reason.SIGNATURE, "$", wrong)
    mismatch = _party_mismatch(report, source, registry is not None)
    if mismatch is not None:
        return Problem(Reason.PARTY_MISMATCH, "$.source_party", mismatch)
    spelled = fold(report.source) if source is None else source.id
    return report if spelled == report.source else report.model_copy(update={"source": spelled})


def _party_mismatch(report: AcceptedReport, source: Source | None, registered: bool) -> str | None:
    if source is None:
        if registered and report.source_party == NEUTRAL:
            return f"source {report.source!r} is not registered as neutral, so it may not report as {NEUTRAL}"
        return None
    party = source.party_in(report.ceasefire_id)
    if party is None:
        return f"source {source.id} has no party registered in ceasefire {report.ceasefire_id}"
    if party != report.source_party:
        return f"source {source.id} is registered as {party} in ceasefire {report.ceasefire_id}, not {report.source_party}"
    return None


def _schema_problem(error: Any) -> Problem:
    loc = tuple(error["loc"])
    path = "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    kind = error["type"]
    if kind in _ACCUSED_PARTY_RULES:  # report-level rules about one field: point at that field
        path = "$.accused_party"
    if kind == "self_accusation":
        reason = Reason.SELF_ACCUSATION
    elif loc[:1] == ("location",) and loc[1:2] in (("lat",), ("lon",)) and kind in _COORDINATE_BOUNDS:
        reason = Reason.COORDINATES_OUT_OF_RANGE
    elif loc == ("location", "precision_km") and kind in _BOUNDS:
        reason = Reason.PRECISION_OUT_OF_RANGE
    elif loc[:1] == ("casualties",) and kind in _BOUNDS:
        reason = Reason.CASUALTIES_OUT_OF_RANGE
    else:
        reason = Reason.SCHEMA
    return Problem(reason, path, f"{error['msg']} ({kind})")


def _registry_problems(report: AcceptedReport, ceasefire: Ceasefire) -> list[Problem]:
    problems: list[Problem] = []
    parties = ceasefire.party_codes
    if report.source_party != NEUTRAL and report.source_party not in parties:
        problems.append(_party_problem("source_party", report.source_party, ceasefire))
    if report.accused_party is not None and report.accused_party not in parties:
        problems.append(_party_problem("accused_party", report.accused_party, ceasefire))
    where = report.location
    if where.sector is not None and ceasefire.sector(where.sector) is None:
        known = ", ".join(s.name for s in ceasefire.sectors) or "none"
        problems.append(
            Problem(Reason.UNKNOWN_SECTOR, "$.location.sector", f"no sector {where.sector!r}; known: {known}")
        )
    if where.lat is not None and where.lon is not None and ceasefire.bbox and not ceasefire.bbox.contains(
        where.lat, where.lon
    ):
        problems.append(
            Problem(
                Reason.OUTSIDE_CEASEFIRE_AREA,
                "$.location",
                f"({where.lat}, {where.lon}) lies outside the area of ceasefire {ceasefire.id}",
            )
        )
    return problems


def _party_problem(field: str, code: str, ceasefire: Ceasefire) -> Problem:
    allowed = sorted(ceasefire.party_codes) + ([NEUTRAL] if field == "source_party" else [])
    return Problem(
        Reason.PARTY_NOT_IN_CEASEFIRE,
        f"$.{field}",
        f"{code!r} is not a party to ceasefire {ceasefire.id}; expected one of {', '.join(allowed)}",
    )


def _time_problems(report: AcceptedReport, ceasefire: Ceasefire, rules: Rules, now: datetime) -> list[Problem]:
    problems: list[Problem] = []
    # Differences, not sums: `date + timedelta` overflows near year 1 or 9999, a difference never does.
    ahead = report.observed_at - now
    if ahead > rules.max_future:
        problems.append(
            Problem(
                Reason.FUTURE_OBSERVED_AT,
                "$.observed_at",
                f"observed_at is {ahead} ahead of processing time (limit {rules.max_future})",
            )
        )
    early = ceasefire.effective_from - report.observed_at
    if early > rules.before_effective:
        problems.append(
            Problem(
                Reason.BEFORE_CEASEFIRE,
                "$.observed_at",
                f"observed_at is {early} before ceasefire {ceasefire.id} took effect"
                f" ({ceasefire.effective_from.isoformat()}; limit {rules.before_effective})",
            )
        )
    reported = report.reported_at
    if reported is not None and reported - now > rules.max_future:
        problems.append(
            Problem(
                Reason.FUTURE_REPORTED_AT,
                "$.reported_at",
                f"reported_at is {reported - now} ahead of processing time (limit {rules.max_future})",
            )
        )
    elif reported is not None and report.observed_at - reported > rules.max_future:
        problems.append(
            Problem(Reason.REPORTED_BEFORE_OBSERVED, "$.reported_at", "reported_at is before observed_at")
        )
    return problems


def _normalise_sector(report: AcceptedReport, ceasefire: Ceasefire) -> AcceptedReport:
    name = report.location.sector
    if name is None:
        return report
    canonical = ceasefire.sector(name)
    if canonical is None or canonical.name == name:
        return report
    location: Location = report.location.model_copy(update={"sector": canonical.name})
    return report.model_copy(update={"location": location})


@dataclass(frozen=True, slots=True)
class Named:
    """The report a record names, read as far as it can be: a dead letter goes on that report's receipt."""

    source: str  # as the report would be stored: the registry's spelling, or folded
    report_id: str
    ceasefire_id: str | None
    revision: int | None


def named_report(raw: bytes | None, rules: Rules | None = None) -> Named | None:
    """`(source, report_id)` of a record that may be broken in any other way; None when it names none.
    Without `rules`, the source as sent (no registry to spell it)."""
    try:
        document = orjson.loads(raw or b"")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    source, report_id = document.get("source"), document.get("report_id")
    if not isinstance(source, str) or not isinstance(report_id, str):
        return None
    source, report_id = source.strip(), report_id.strip()
    if not is_source_id(source) or not is_report_id(report_id):
        return None
    ceasefire_id, revision = document.get("ceasefire_id"), document.get("revision", 1)
    return Named(
        source=spelling(rules.sources, source) if rules is not None else source,
        report_id=report_id,
        ceasefire_id=ceasefire_id.strip()[:64] if isinstance(ceasefire_id, str) else None,
        revision=revision if type(revision) is int and 1 <= revision <= MAX_REVISION else None,
    )


def primary_reason(problems: list[Problem]) -> Reason:
    """The reason a dead letter is filed under: the most specific one among its problems."""
    for problem in problems:
        if problem.reason is not Reason.SCHEMA:
            return problem.reason
    return Reason.SCHEMA
