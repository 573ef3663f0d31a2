"""Validation never raises: whatever the bytes, the verdict is an accepted report or a list of known reasons.

Two generators: random bytes (the parser's edge), and valid reports mutated field by field (the schema's
and the registry's edges). Examples are counted deliberately: ~10K each keeps this file near 30 s on a
2-core machine.
"""

from __future__ import annotations

import copy
import operator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from schemas.ceasefire import Registry
from schemas.report import AcceptedReport
from schemas.source import SourceRegistry
from services.ingest.signature import sign
from services.ingest.validate import Problem, Reason, Rules, Verdict, primary_reason, validate
from tests.support.reports import report

NOW = datetime(2025, 5, 10, 13, 0, tzinfo=UTC)
RANDOM_BYTES_EXAMPLES = 10_000
MUTATION_EXAMPLES = 10_000
FUZZ = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# --- what a valid report looks like, in a few shapes -------------------------------------------------

SEEDS: list[dict[str, Any]] = [
    report(),
    report(location={"sector": "Poonch"}, casualties=..., description=..., evidence=...),
    report(
        source="un.unmogip", source_party="NEUTRAL", accused_party=..., reported_at="2025-05-10T12:30:00Z"
    ),
    report(
        report_id="ispr-77",
        source="pk.ispr",
        source_party="PK",
        accused_party="IN",
        location={"lat": 34.11, "lon": 73.87, "sector": "chakothi"},
        extensions={"tags": ["x"], "n": 1},
    ),
]
# Every field a mutation may hit: top-level keys and one level down.
PATHS: list[tuple[str | int, ...]] = [
    *((key,) for key in (*SEEDS[0], "reported_at", "extensions", "ingested_at", "unknown")),
    *(("location", key) for key in ("lat", "lon", "sector", "place", "precision_km", "altitude")),
    *(("casualties", key) for key in ("killed", "injured", "civilian", "wounded")),
    ("evidence", 0),
    ("extensions", "deep"),
]

# Tokens JSON encoders refuse to write but a careless reporter might: they are spliced in as raw bytes.
RAW_TOKENS = [
    b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e400", b"1e-400", b"-0", b"-0.0", b"1E2", b"0x10",
    b"123456789012345678901234567890", b"-123456789012345678901234567890", b"01", b".5", b"+1",
    b'"\\ud800"', b'"\\udfff\\ud800"', b'"\\u0000"', b"undefined", b"None", b"True", b"'single'",
    b"[" * 1100 + b"]" * 1100, b"{}", b"[]", b'"2025-05-10T12:10:00+24:00"', b'"2025-02-30T00:00:00Z"',
    b'"0001-01-01T00:00:00+01:00"', b'"9999-12-31T23:59:59-23:59"', b'"1746879000"', b'"1746879000.5"',
    b'"2025-05-10T12:10:00.123456789123Z"', b'"2025-05-10T25:00:00Z"', b'"2025-W19-6"',
]

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(["IN", "PK", "NEUTRAL", "Poonch", "poonch", "in-pk-2025-05-10", "2025-05-10T12:10:00Z"])
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
numbers = st.sampled_from([0, -1, 1, 90, 90.0001, -90.0001, 180.5, -180.5, 1e308, -1e308, 5e-324, 2**63 - 1])
offsets = st.none() | st.integers(-1439, 1439).map(lambda minutes: timezone(timedelta(minutes=minutes)))
timestamps = st.builds(lambda t, tz: t.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets)
# Values that pass the schema but test the registry and time rules.
PLAUSIBLE: dict[tuple[str, ...], list[Any]] = {
    ("source_party",): ["IN", "PK", "NEUTRAL", "IL", "CN"],
    ("accused_party",): ["IN", "PK", "NEUTRAL", "LB", None],
    ("ceasefire_id",): ["in-pk-2025-05-10", "il-lb-2024-11-27", "in-cn-2020"],
    ("location", "sector"): ["Poonch", "poonch", "KUPWARA", "Gotham", "Naqoura", None],
    ("location", "lat"): [33.0, 31.4999, 36.0, 36.0001, -33.0, None],
    ("location", "lon"): [74.0, 72.5, 76.5001, 35.2, None],
    ("observed_at",): ["2025-05-10T13:10:00Z", "2025-05-10T13:10:01Z", "2025-05-10T18:45:00+05:30"],
    ("reported_at",): ["2025-05-10T11:00:00Z", "2025-05-10T12:00:00Z", "2025-05-10T17:30:00+05:30", None],
    ("casualties",): [None, {}, {"killed": 0}, {"killed": None, "civilian": True}],
}


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    holder: Any = doc
    for part in path[:-1]:
        if isinstance(holder, dict):
            holder = holder.setdefault(part, {})
        elif isinstance(holder, list) and isinstance(part, int) and part < len(holder):
            holder = holder[part]
        else:
            return
    last = path[-1]
    if isinstance(holder, dict):
        holder[str(last)] = value
    elif isinstance(holder, list) and isinstance(last, int):
        holder.insert(last, value)


def _drop(doc: dict[str, Any], path: tuple[str | int, ...]) -> None:
    holder: Any = doc
    for part in path[:-1]:
        holder = holder.get(part) if isinstance(holder, dict) else None
    if isinstance(holder, dict):
        holder.pop(path[-1], None)


def _retype(value: Any) -> Any:
    """The same information in the wrong JSON type: "3" for 3, 1 for true, [x] for x."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return [value]
    if isinstance(value, dict):
        return list(value.values())
    return {"value": value}


def _get(doc: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    holder: Any = doc
    for part in path:
        if isinstance(holder, dict):
            holder = holder.get(part)
        elif isinstance(holder, list) and isinstance(part, int) and part < len(holder):
            holder = holder[part]
        else:
            return None
    return holder


def _deep(leaf: Any, depth: int, style: int) -> Any:
    """`depth` levels of lists, objects or both around `leaf`; beyond what orjson writes, as raw bytes."""
    if depth > 200:  # orjson writes at most 255 levels: deeper nesting is spliced in as raw bytes
        return Raw(b"[" * depth + b"]" * depth)
    for level in range(depth):
        leaf = [leaf] if level % style == 0 else {"k": leaf}
    return leaf


class Raw(bytes):
    """Bytes to splice into the encoded report where the value would be."""


class Drop:
    """Marks a field to remove."""


class Retype:
    """Marks a field to replace by the same value in the wrong JSON type."""


paths = st.sampled_from(PATHS)
plausible = st.sampled_from([(path, value) for path, choices in PLAUSIBLE.items() for value in choices])
huge = st.builds(operator.mul, st.sampled_from(["x", "é", "\U0001f4a3", " "]), st.integers(1, 70_000))
deep = st.builds(_deep, json_leaves, st.integers(1, 1500), st.integers(1, 3))
values = st.one_of(
    st.just(Drop()),
    st.just(Retype()),
    json_values,
    numbers,
    timestamps,
    huge,
    st.text(min_size=1, max_size=30),
    st.sampled_from(RAW_TOKENS).map(Raw),
    deep,
)
mutation = st.tuples(paths, values) | plausible | plausible  # twice: the registry and time rules need reach
# (one chance in ten, where in percent, bytes to write over one byte there)
damage = st.tuples(st.integers(0, 9), st.integers(0, 100), st.binary(max_size=3))


def _mutate(
    seed: dict[str, Any], mutations: list[tuple[tuple[str | int, ...], Any]], hit: tuple[int, int, bytes]
) -> bytes:
    doc = copy.deepcopy(seed)
    tokens: list[bytes] = []
    for path, value in mutations:
        if isinstance(value, Drop):
            _drop(doc, path)
        elif isinstance(value, Retype):
            _set(doc, path, _retype(_get(doc, path)))
        elif isinstance(value, Raw):
            _set(doc, path, f"@@raw{len(tokens)}@@")
            tokens.append(bytes(value))
        else:
            _set(doc, path, value)
    raw = orjson.dumps(doc)
    for index, token in enumerate(tokens):
        raw = raw.replace(f'"@@raw{index}@@"'.encode(), token)
    chance, where, junk = hit
    if chance == 0:  # now and then, damage the bytes too
        cut = where * len(raw) // 100
        raw = raw[:cut] + junk + raw[cut + 1 :]
    return raw


mutated_reports = st.builds(
    _mutate, st.sampled_from(SEEDS), st.lists(mutation, min_size=1, max_size=3), damage
)


def assert_verdict(verdict: Verdict) -> None:
    if isinstance(verdict, AcceptedReport):
        assert verdict.ingested_at == NOW
        assert verdict.observed_at.utcoffset() is not None and not verdict.observed_at.utcoffset()
        # What ingest publishes must read back as the same report downstream.
        assert AcceptedReport.model_validate_json(verdict.model_dump_json()) == verdict
        return
    assert isinstance(verdict, list) and verdict, f"neither accepted nor a problem list: {verdict!r}"
    for problem in verdict:
        assert isinstance(problem, Problem)
        assert problem.reason in Reason
        assert problem.path.startswith("$")


@settings(FUZZ, max_examples=RANDOM_BYTES_EXAMPLES)
@given(raw=st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"{" + b))
def test_random_bytes_never_raise(raw: bytes, registry: Registry) -> None:
    assert_verdict(validate(raw, Rules(registry), NOW))


@settings(FUZZ, max_examples=MUTATION_EXAMPLES)
@given(raw=mutated_reports)
def test_mutated_reports_never_raise(raw: bytes, registry: Registry) -> None:
    verdict = validate(raw, Rules(registry), NOW)
    assert_verdict(verdict)
    # `--hypothesis-show-statistics` shows how far the mutations reach: every reason should appear.
    event("accepted" if isinstance(verdict, AcceptedReport) else primary_reason(verdict).value)


def test_seeds_are_valid(registry: Registry) -> None:
    """The mutations start from valid reports, or they would only ever test one rejection."""
    for seed in SEEDS:
        assert isinstance(validate(orjson.dumps(seed), Rules(registry), NOW), AcceptedReport)


# --- the source registry and signatures (docs/security.md) -------------------------------------------

KEY = "fuzz-secret-0123456789"
SIGNED_SOURCES = SourceRegistry.model_validate(
    {
        "sources": [
            {"id": "in.army", "name": "Indian Army", "kind": "military", "parties": {"in-pk-2025-05-10": "IN"},
             "keys": ["in.army-1", "in.army-2"], "signing": "required"},
            {"id": "pk.ispr", "name": "ISPR", "kind": "military", "parties": {"in-pk-2025-05-10": "PK"}, "keys": ["pk.ispr-1"]},
            {"id": "un.unmogip", "name": "UNMOGIP", "kind": "observer_mission", "parties": {"*": "NEUTRAL"}},
        ]
    }
)
SIGNED_KEYS = {k: SecretStr(KEY + k) for k in ("in.army-1", "in.army-2", "pk.ispr-1")}
key_ids = st.sampled_from(["in.army-1", "in.army-2", "pk.ispr-1", "nobody", "", "in.army-1\x00", "ä"])


@st.composite
def signed_records(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A mutated or valid report, with headers that are right, wrong, half there, or garbage."""
    raw = draw(mutated_reports | st.sampled_from(SEEDS).map(orjson.dumps))
    key_id = draw(key_ids)
    good = sign(raw, KEY + key_id) if key_id in SIGNED_KEYS else sign(raw, KEY)
    signature = draw(
        st.sampled_from([good, good.upper(), good[:-1], "sha256=" + "0" * 64, good.removeprefix("sha256=")])
        | st.binary(max_size=80).map(lambda b: b.decode("latin-1"))
    )
    headers = [("ceasefire-key-id", key_id.encode("utf-8")), ("ceasefire-signature", signature.encode("latin-1"))]
    return raw, draw(st.sampled_from([headers, headers[:1], headers[1:], [], headers[::-1]]))


@settings(FUZZ, max_examples=3_000)
@given(record=signed_records(), enforced=st.booleans())
def test_signed_records_never_raise_and_only_good_signatures_pass(
    record: tuple[bytes, list[tuple[str, bytes]]], enforced: bool, registry: Registry
) -> None:
    raw, headers = record
    rules = Rules(registry, sources=SIGNED_SOURCES, sources_enforced=enforced, keys=SIGNED_KEYS)
    verdict = validate(raw, rules, NOW, headers)
    assert_verdict(verdict)
    event("accepted" if isinstance(verdict, AcceptedReport) else primary_reason(verdict).value)
    if isinstance(verdict, AcceptedReport):
        registered = SIGNED_SOURCES.get(verdict.source)
        assert registered is not None or not enforced
        if registered is not None:
            assert verdict.source == registered.id and verdict.source_party == registered.party_in(verdict.ceasefire_id)
        given_key = dict(headers).get("ceasefire-key-id")
        if registered is not None and registered.signing == "required" or given_key is not None:
            key_id = (given_key or b"").decode()
            assert key_id in registered.keys  # type: ignore[union-attr]
            assert dict(headers)["ceasefire-signature"].decode().lower() == sign(raw, KEY + key_id)
