"""The bundled demo scenario (`deploy/demo/scenario.jsonl`): a seeded generator of JSON Lines reports.

SYNTHETIC. The ceasefire and the place names are real; every report, time, weapon and casualty figure in the
output is invented to exercise the pipeline, and none of it describes what happened on the ground.

The story, in event time after the ceasefire took effect (`in-pk-2025-05-10`, 2025-05-10T11:30Z):
1. calm: a few small-arms exchanges around Poonch on the evening of 10 May, then a light incident every few
   hours;
2. a tense night (11 May 15:00-23:00Z, at most four incidents in any hour): many sectors, mortars, mutual
   accusations, UNMOGIP corroboration;
3. a quiet day, then a flare-up (12 May 22:00Z - 13 May 10:00Z): artillery, then drones and missiles, deaths,
   and a surge of incidents in the hour from `SURGE_START` after a quiet 24 hours;
4. de-escalation: light incidents more than six hours apart, so open alerts resolve.
Replayed through the project's correlator and alert engine (tests/unit/test_scenario.py), every alert rule
fires; Escalation, Casualties, ViolationSurge and a critical FragilityHigh (index >= 75) first fire in the
flare-up.

Each incident is 1-4 reports by different sources that the link rule joins (close in time, and in place or
sector), and no two incidents come near each other (with a margin), so correlation rebuilds exactly the
planned incidents. On top: exact duplicates (~10 %), resubmissions (~3 %), garbage of many dead-letter kinds
(~3 %), one report ~3 h late and one that bridges two incidents. `EXPECTED` says what ingest makes of it.

Pure and deterministic: no wall clock, one `random.Random(seed)`; the same seed gives the same bytes.
`python -m services.console.demo [--out PATH] [--check]` writes the file, or checks that it is fresh.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from schemas.ceasefire import load_registry
from services.console.demo.planner import Draft, PlannedIncident, Planner, Scenario
from services.console.demo.story import (
    CEASEFIRE_ID,
    EXPECTED,
    PHASES,
    REGISTRY_PATH,
    REPLAY_NOW,
    SCENARIO_PATH,
    SEED,
    SOURCES,
    SURGE_START,
    Expected,
)
from services.console.views import plural
from services.ingest.validate import Reason

__all__ = [
    "CEASEFIRE_ID", "EXPECTED", "PHASES", "REPLAY_NOW", "SCENARIO_PATH", "SEED", "SOURCES", "SURGE_START",
    "PlannedIncident", "Planner", "Scenario", "build", "main",
]

def _stamp(at: datetime, tz: timezone) -> str:
    return at.astimezone(tz).isoformat().replace("+00:00", "Z")


def _document(d: Draft) -> dict[str, Any]:
    """The report as its source files it; a resubmission restates the same content a little differently."""
    tz = UTC if d.resubmission else d.source.tz  # the same instant, written in UTC
    doc: dict[str, Any] = {"report_id": d.report_id, "source": d.source.name, "source_party": d.source.party}
    if d.accused:
        doc["accused_party"] = d.accused
    doc |= {"ceasefire_id": CEASEFIRE_ID, "observed_at": _stamp(d.at, tz)}
    if d.stamped:
        doc["reported_at"] = _stamp(d.arrival, tz)
    location: dict[str, Any] = {"lat": d.point[0], "lon": d.point[1]} if d.point else {}
    if d.sector:
        location["sector"] = d.sector
    location |= {"place": d.place, "precision_km": d.precision}
    doc |= {"location": location, "violation_type": d.weapon}
    if d.casualties is not None:
        doc["casualties"] = d.casualties
    doc["description"] = d.description.replace(" ", "  ", 1) if d.resubmission else d.description
    if d.resubmission:
        doc["evidence"] = [f"https://example.org/{d.source.name}/{d.report_id}"]
    return doc


def _encode(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _assign_ids(drafts: list[Draft]) -> None:
    """Ids count per source and local day, in the order the reports were filed."""
    counters: Counter[tuple[str, str]] = Counter()
    for d in sorted(drafts, key=lambda d: (d.arrival, d.at, d.source.name)):
        day = d.at.astimezone(d.source.tz).date().isoformat()
        counters[(d.source.prefix, day)] += 1
        d.report_id = f"{d.source.prefix}-{day}-{counters[(d.source.prefix, day)]:04d}"


def _garbage(rng: random.Random, sample: list[dict[str, Any]]) -> list[tuple[Reason, bytes]]:
    """One line for each way a record goes wrong, made from reports of the scenario under ids of their own."""
    docs = [json.loads(_encode(d)) for d in rng.sample(sample, 12)]
    for n, doc in enumerate(docs, 1):
        doc["report_id"] = f"{doc['report_id'][:-4]}9{n:03d}"
    cut = _encode(docs[1])
    return [
        (Reason.NOT_JSON, b"Heavy firing reported in Uri sector since 2100 hrs, details to follow"),
        (Reason.NOT_JSON, cut[: len(cut) * 3 // 5]),
        (Reason.NOT_JSON, base64.b64encode(_encode(docs[2]))[:120]),
        (Reason.NOT_UTF8, bytes.fromhex("1f8b0808d2f1a76702ffab56ca4c51b252323430d051a8e5")),
        (Reason.SCHEMA, _encode(docs[0] | {"casualties": {"killed": "3", "injured": 2}})),
        (Reason.SCHEMA, _encode(docs[3] | {"observed_at": docs[3]["observed_at"][:19]})),
        (Reason.SCHEMA, _encode(docs[4] | {"observed_at": 1747000000})),
        (Reason.REPORTED_BEFORE_OBSERVED, _encode(docs[5] | {"reported_at": "2025-05-09T08:00:00Z"})),
        (Reason.UNKNOWN_CEASEFIRE, _encode(docs[6] | {"ceasefire_id": "in-pk-2021-02-25"})),
        (Reason.UNKNOWN_SECTOR, _encode(docs[7] | {"location": {"sector": "Krishna Ghati"}})),  # a sub-sector
        (Reason.SELF_ACCUSATION, _encode(docs[8] | {"source": "pk.ispr", "source_party": "PK",
                                                    "accused_party": "PK"})),
        (Reason.FUTURE_OBSERVED_AT, _encode(docs[9] | {"observed_at": "2099-05-12T22:40:00+05:30"})),
        (Reason.COORDINATES_OUT_OF_RANGE, _encode(docs[10] | {"location": {"lat": 334.53, "lon": 74.25}})),
        (Reason.OUTSIDE_CEASEFIRE_AREA, _encode(docs[11] | {"location": {"lat": 33.12, "lon": 35.14}})),
        (Reason.PARTY_NOT_IN_CEASEFIRE, _encode(docs[0] | {"accused_party": "AF"})),
    ]


def build(seed: int = SEED, registry_path: Path = REGISTRY_PATH) -> Scenario:
    """Plan the incidents, file their reports, then add resubmissions, duplicates and garbage."""
    rng = random.Random(seed)
    ceasefire = load_registry(registry_path).get(CEASEFIRE_ID)
    assert ceasefire is not None
    planner = Planner(rng, ceasefire)
    planner.plan()
    drafts = [d for _, reports in planner.incidents for d in reports]
    special = {id(d) for d in (*planner.late.values(), *planner.bridge.values())}
    ordinary = [d for d in drafts if id(d) not in special]
    resubmitted = []
    for d in rng.sample(ordinary, round(len(drafts) * 0.036)):
        later = d.arrival + timedelta(minutes=rng.randint(30, 150))
        resubmitted.append(replace(d, resubmission=True, stamped=True, arrival=later))
    _assign_ids(drafts + resubmitted)
    filed = [(d.arrival, n, _encode(_document(d))) for n, d in enumerate(drafts + resubmitted)]
    originals = [f for f, d in zip(filed, drafts, strict=False) if id(d) not in special]
    for n, (arrival, _, line) in enumerate(rng.sample(originals, round(len(drafts) * 0.12))):
        filed.append((arrival + timedelta(minutes=rng.randint(1, 90)), 100_000 + n, line))  # re-sent as is
    garbage = _garbage(rng, [_document(d) for d in ordinary])
    first, last = min(f[0] for f in filed), max(f[0] for f in filed)
    filed += [(first + (last - first) * rng.random(), -1 - n, line) for n, (_, line) in enumerate(garbage)]
    lines = tuple(line for _, _, line in sorted(filed))
    un = SOURCES["un.unmogip"].name
    incidents = tuple(
        PlannedIncident(
            phase, tuple((d.source.name, d.report_id) for d in reports),
            late=(un, planner.late[i].report_id) if i in planner.late else None,
            bridge=(un, planner.bridge[i].report_id) if i in planner.bridge else None,
        )
        for i, (phase, reports) in enumerate(planner.incidents)
    )
    duplicates = len(filed) - len(drafts) - len(resubmitted) - len(garbage)
    dead = dict(Counter(reason for reason, _ in garbage))
    return Scenario(lines, incidents, Expected(len(lines), len(drafts), duplicates, len(resubmitted), dead,
                                               len(incidents)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.console.demo", description="demo scenario")
    parser.add_argument("--out", type=Path, default=SCENARIO_PATH, help="file to write or check")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not what is generated")
    args = parser.parse_args(argv)
    scenario = build()
    if scenario.tally != EXPECTED:
        print(f"EXPECTED in {__name__} is stale; the generator now gives {scenario.tally}", file=sys.stderr)
        return 1
    rendered = scenario.render()
    if args.check:
        if not args.out.exists() or args.out.read_bytes() != rendered:
            print(f"{args.out} is stale: run python -m services.console.demo", file=sys.stderr)
            return 1
        return 0
    args.out.write_bytes(rendered)
    print(f"wrote {plural(len(scenario.lines), 'line')} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
