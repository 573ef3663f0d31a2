"""The source registry and signed reports (docs/security.md): who may report, for which party, how proven."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from schemas.ceasefire import Registry
from schemas.report import AcceptedReport
from schemas.source import SourceRegistry, load_sources
from services.correlate.state import Correlator
from services.ingest.signature import KEY_ID_HEADER, SIGNATURE_HEADER, load_keys, read_key_file, sign
from services.ingest.validate import Problem, Rules, validate
from services.runtime.settings import PROJECT_ROOT
from tests.support.reports import report

NOW = datetime(2025, 5, 11, tzinfo=UTC)
SECRET_A, SECRET_B = "in-army-secret-2025-aaaa", "in-army-secret-2025-bbbb"


@pytest.fixture(scope="module")
def shipped(registry: Registry) -> SourceRegistry:
    return load_sources(PROJECT_ROOT / "deploy" / "sources.yaml", registry)


def signed_registry(registry: Registry) -> SourceRegistry:
    doc = yaml.safe_load((PROJECT_ROOT / "deploy" / "sources.yaml").read_text())
    for source in doc["sources"]:
        if source["id"] == "in.army":
            source.update(keys=["in.army-a", "in.army-b"], signing="required")
    found = SourceRegistry.model_validate(doc)
    found.check_against(registry)
    return found


def verdict_of(doc: dict[str, Any], rules: Rules, headers: list[tuple[str, bytes]] | None = None) -> AcceptedReport | list[Problem]:
    return validate(orjson.dumps(doc), rules, NOW, headers)


def reason(verdict: AcceptedReport | list[Problem]) -> str:
    assert isinstance(verdict, list), f"accepted: {verdict}"
    return verdict[0].reason.value


# -- the registry -------------------------------------------------------------------------------------


def test_the_shipped_registry_covers_every_demo_source(shipped: SourceRegistry) -> None:
    from services.console.demo.story import SOURCES

    for name, source in SOURCES.items():
        registered = shipped.get(name)
        assert registered is not None, name
        assert registered.party_in("in-pk-2025-05-10") == source.party


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"parties": {"in-pk-2025-05-10": "LB"}}, "not a party"),
        ({"parties": {"*": "IN"}}, "only NEUTRAL"),
    ],
)
def test_a_registry_naming_a_party_that_does_not_exist_fails_at_start(registry: Registry, change: dict[str, Any], complaint: str) -> None:
    doc = {"sources": [{"id": "x.y", "name": "X", "kind": "media", **change}]}
    with pytest.raises(ValueError, match=complaint):
        SourceRegistry.model_validate(doc).check_against(registry)


def test_a_ceasefire_the_ceasefire_registry_does_not_hold_is_reported_not_refused(registry: Registry) -> None:
    doc = {"sources": [{"id": "x.y", "name": "X", "kind": "media", "parties": {"in-pk-1999": "IN", "in-pk-2025-05-10": "IN"}}]}
    assert SourceRegistry.model_validate(doc).check_against(registry) == [
        "source x.y names ceasefire 'in-pk-1999', which the ceasefire registry does not hold"
    ]


@pytest.mark.parametrize(
    "sources",
    [
        [{"id": "in.army", "name": "a", "kind": "military", "parties": {"*": "NEUTRAL"}},
         {"id": "IN.Army", "name": "b", "kind": "military", "parties": {"*": "NEUTRAL"}}],
        [{"id": "a", "name": "a", "kind": "media", "parties": {"*": "NEUTRAL"}, "keys": ["k"]},
         {"id": "b", "name": "b", "kind": "media", "parties": {"*": "NEUTRAL"}, "keys": ["k"]}],
        [{"id": "a", "name": "a", "kind": "media", "parties": {"*": "NEUTRAL"}, "signing": "required"}],
        [{"id": "a", "name": "a", "kind": "warlord", "parties": {"*": "NEUTRAL"}}],
    ],
    ids=["same id in two cases", "one key, two sources", "required without keys", "unknown kind"],
)
def test_an_inconsistent_registry_is_refused(sources: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError):
        SourceRegistry.model_validate({"sources": sources})


# -- who may report for whom --------------------------------------------------------------------------


def test_an_unknown_source_is_dead_lettered_when_enforced_and_taken_lower_cased_when_open(
    registry: Registry, shipped: SourceRegistry
) -> None:
    doc = report(source="Field.Team-7", source_party="IN", accused_party="PK")
    assert reason(verdict_of(doc, Rules(registry, sources=shipped))) == "unknown_source"
    accepted = verdict_of(doc, Rules(registry, sources=shipped, sources_enforced=False))
    assert isinstance(accepted, AcceptedReport) and accepted.source == "field.team-7"


def test_only_sources_registered_as_neutral_may_report_as_neutral(registry: Registry, shipped: SourceRegistry) -> None:
    forged = report(source="un.observer-team", source_party="NEUTRAL", accused_party=...)
    assert reason(verdict_of(forged, Rules(registry, sources=shipped))) == "unknown_source"
    assert reason(verdict_of(forged, Rules(registry, sources=shipped, sources_enforced=False))) == "party_mismatch"
    party_as_observer = report(source="pk.ispr", source_party="NEUTRAL", accused_party="IN")
    assert reason(verdict_of(party_as_observer, Rules(registry, sources=shipped, sources_enforced=False))) == "party_mismatch"
    observer = report(source="un.unmogip", source_party="NEUTRAL", accused_party=...)
    assert isinstance(verdict_of(observer, Rules(registry, sources=shipped)), AcceptedReport)


def test_a_source_speaks_for_its_registered_party_only(registry: Registry, shipped: SourceRegistry) -> None:
    rules = Rules(registry, sources=shipped)
    assert reason(verdict_of(report(source="pk.ispr", source_party="IN", accused_party="PK"), rules)) == "party_mismatch"
    lebanon = report(
        source="in.army", source_party="IL", accused_party="LB", ceasefire_id="il-lb-2024-11-27",
        location={"sector": "Naqoura"}, observed_at="2024-11-28T10:00:00Z",
    )
    assert reason(verdict_of(lebanon, rules)) == "party_mismatch"  # no standing in that ceasefire
    wire = report(source="media.reuters", source_party="NEUTRAL", accused_party=..., ceasefire_id="il-lb-2024-11-27",
                  location={"sector": "Naqoura"}, observed_at="2024-11-28T10:00:00Z")
    assert isinstance(verdict_of(wire, rules), AcceptedReport)  # "*": neutral everywhere


@pytest.mark.parametrize("spelling", ["IN.ARMY", "In.Army", "in.army"])
def test_a_case_variant_of_a_registered_source_is_that_source(registry: Registry, shipped: SourceRegistry, spelling: str) -> None:
    accepted = verdict_of(report(source=spelling), Rules(registry, sources=shipped))
    assert isinstance(accepted, AcceptedReport) and accepted.source == "in.army"


# -- signed reports -----------------------------------------------------------------------------------


@pytest.fixture
def signing(registry: Registry) -> Rules:
    keys = {"in.army-a": SECRET_A, "in.army-b": SECRET_B}
    from pydantic import SecretStr

    return Rules(registry, sources=signed_registry(registry), keys={k: SecretStr(v) for k, v in keys.items()})


def signed(raw: bytes, key_id: str, secret: str) -> list[tuple[str, bytes]]:
    return [(KEY_ID_HEADER, key_id.encode()), (SIGNATURE_HEADER, sign(raw, secret).encode())]


def test_a_good_signature_under_either_rotated_key_is_accepted(signing: Rules) -> None:
    raw = orjson.dumps(report())
    for key_id, secret in (("in.army-a", SECRET_A), ("in.army-b", SECRET_B)):
        assert isinstance(validate(raw, signing, NOW, signed(raw, key_id, secret)), AcceptedReport)
    upper = [(KEY_ID_HEADER, b"in.army-a"), (SIGNATURE_HEADER, sign(raw, SECRET_A).upper().replace("SHA256=", "sha256=").encode())]
    assert isinstance(validate(raw, signing, NOW, upper), AcceptedReport)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(KEY_ID_HEADER, b"in.army-a")],
        [(SIGNATURE_HEADER, b"sha256=" + b"0" * 64)],
        [(KEY_ID_HEADER, b"in.army-a"), (SIGNATURE_HEADER, b"0" * 64)],
        [(KEY_ID_HEADER, b"in.army-a"), (SIGNATURE_HEADER, b"sha256=zz")],
        [(KEY_ID_HEADER, b"in.army-a"), (SIGNATURE_HEADER, b"sha256=" + b"0" * 64)],
        [(KEY_ID_HEADER, b"pk.ispr-2025"), (SIGNATURE_HEADER, b"sha256=" + b"0" * 64)],
        [(KEY_ID_HEADER, b"\xff"), (SIGNATURE_HEADER, b"sha256=" + b"0" * 64)],
    ],
    ids=["none", "key id only", "signature only", "no scheme", "not hex", "wrong", "another source's key", "not ascii"],
)
def test_a_source_that_must_sign_is_dead_lettered_without_a_good_signature(signing: Rules, headers: list[tuple[str, bytes]]) -> None:
    assert reason(validate(orjson.dumps(report()), signing, NOW, headers)) == "signature"


def test_a_signed_report_reposted_under_another_source_fails(signing: Rules) -> None:
    raw = orjson.dumps(report())
    headers = signed(raw, "in.army-a", SECRET_A)
    moved = raw.replace(b'"in.army"', b'"in.bsf"')
    assert reason(validate(moved, signing, NOW, headers)) == "signature"  # other bytes
    other = orjson.dumps(report(source="in.bsf"))
    assert reason(validate(other, signing, NOW, signed(other, "in.army-a", SECRET_A))) == "signature"  # not its key


def test_a_signature_is_checked_even_where_signing_is_optional(signing: Rules) -> None:
    raw = orjson.dumps(report(source="pk.ispr", source_party="PK", accused_party="IN"))
    assert isinstance(validate(raw, signing, NOW), AcceptedReport)  # optional: unsigned is fine
    wrong = [(KEY_ID_HEADER, b"pk.ispr-2025"), (SIGNATURE_HEADER, sign(raw, "not-the-key-at-all!").encode())]
    assert reason(validate(raw, signing, NOW, wrong)) == "signature"  # no secret held, or wrong: never accepted


def test_the_secret_is_never_in_a_problem_or_a_repr(signing: Rules) -> None:
    raw = orjson.dumps(report())
    verdict = validate(raw, signing, NOW, [(KEY_ID_HEADER, b"in.army-a"), (SIGNATURE_HEADER, sign(raw, "x" * 20).encode())])
    assert isinstance(verdict, list)
    shown = repr(verdict) + repr(signing) + str(signing.keys)
    assert SECRET_A not in shown and SECRET_B not in shown


def test_keys_load_from_a_directory_or_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "in.army-a").write_text(SECRET_A + "\n")
    (folder / ".hidden").write_text("ignored")
    assert {k: v.get_secret_value() for k, v in load_keys(folder).items()} == {"in.army-a": SECRET_A}
    assert read_key_file(folder / "in.army-a") == ("in.army-a", SECRET_A)
    listing = tmp_path / "keys.yaml"
    listing.write_text(f"in.army-b: {SECRET_B}\n")
    assert load_keys(listing)["in.army-b"].get_secret_value() == SECRET_B
    (folder / "short").write_text("abc")
    with pytest.raises(ValueError, match="shorter") as refused:
        load_keys(folder)
    assert "abc" not in str(refused.value)


# -- tit-for-tat takes two ----------------------------------------------------------------------------


def lebanese(report_id: str, source: str, party: str, minute: int) -> AcceptedReport:
    doc = report(
        report_id=report_id, source=source, source_party=party, accused_party="LB" if party == "IL" else "IL",
        ceasefire_id="il-lb-2024-11-27", location={"lat": 33.12, "lon": 35.14, "precision_km": 1},
        observed_at=f"2024-11-28T10:{minute:02d}:00Z",
    )
    return AcceptedReport.model_validate({**doc, "ingested_at": "2024-11-28T11:00:00Z"})


def test_one_source_filing_for_both_parties_makes_no_mutual_incident(registry: Registry) -> None:
    ceasefire = registry.get("il-lb-2024-11-27")
    assert ceasefire is not None
    alone = Correlator(ceasefire)
    records = [r for n in range(4) for r in alone.add(lebanese(f"x-{n}", "sock.puppet", "IL" if n % 2 else "LB", n))]
    assert {r.status for r in records} == {"claimed"} and not any(r.reciprocal for r in records)
    two = Correlator(ceasefire)
    first = two.add(lebanese("a-1", "il.idf", "IL", 0))
    second = two.add(lebanese("b-1", "lb.army", "LB", 1))
    assert first[0].status == "claimed" and second[0].status == "mutual" and second[0].reciprocal


# -- POST /reports: the rate per source -----------------------------------------------------------------


def test_the_http_rate_limit_refills_per_source_and_says_how_long_to_wait() -> None:
    from services.ingest.http import RateLimit

    limit = RateLimit(per_minute=60, burst=3)  # one record a second, three at once
    assert limit.take("in.army", 3, now=0.0) == 0.0
    assert limit.take("in.army", 1, now=0.0) == pytest.approx(1.0)  # empty: one second for one more
    assert limit.take("pk.ispr", 2, now=0.0) == 0.0  # its own bucket
    assert limit.take("in.army", 2, now=2.0) == 0.0  # refilled two
    assert limit.take("in.army", 4, now=100.0) == float("inf")  # more than a burst never fits
