"""Which held reports a new report links to, and through which report it joins each incident.

Every report checks every candidate the index proposes (about seven on the benchmark mix, half of
them linked), so this loop is the rule's hot path: the clauses that decide most candidates (time,
then the distance between two located reports) are evaluated inline, without building a `Link`
per candidate; every other pair goes to `LinkRule.explain`. The expressions are those of
`LinkRule.explain` and `great_circle_between`, so the same pairs link with the same floats
(tests/unit/test_partners.py checks the choice against `explain` on every pair).
"""

from __future__ import annotations

import math

from services.correlate.fold import IncidentState
from services.correlate.link import DIAMETER_KM, MINUTE_US, HeldReport, Link, LinkRule, parties_agree

LinkRank = tuple[float, int, float]  # Link.rank: gap, 0 by coordinates or 1 by sector, distance


def partners(
    held: HeldReport,
    candidates: list[HeldReport],
    rule: LinkRule,
    horizon_us: int,
) -> list[tuple[IncidentState, HeldReport, Link]]:
    """Each incident `held` links to, with its best link there; the future survivor first.

    Best: the closest in time, then place, then the smallest key, so that the choice does not
    depend on the order the index yields candidates in (a rebuilt state must choose the same).
    Candidates observed before `horizon_us` were evicted from linking.
    """
    best: dict[IncidentState, tuple[LinkRank, HeldReport]] = {}
    observed_us, window_us = held.observed_us, rule.window_us
    located = held.vector is not None
    phi, cos_phi, lon = held.phi, held.cos_phi, held.lon
    reach_km = rule.distance_km + held.precision_km  # + the candidate's: the order of explain's sum
    sin, sqrt, asin, radians = math.sin, math.sqrt, math.asin, math.radians
    for candidate in candidates:
        gap_us = observed_us - candidate.observed_us
        if gap_us < 0:
            gap_us = -gap_us
        if gap_us > window_us or candidate.observed_us < horizon_us:
            continue
        if located and candidate.vector is not None and parties_agree(held, candidate):
            # great_circle_between(held, candidate), inline
            dp, dl = candidate.phi - phi, radians(candidate.lon - lon)  # type: ignore[operator]
            h = sin(dp / 2) ** 2 + cos_phi * candidate.cos_phi * sin(dl / 2) ** 2
            root = sqrt(h)
            km = DIAMETER_KM * asin(root if root < 1.0 else 1.0)  # min(1.0, root), without the call
            if km > reach_km + candidate.precision_km:
                continue
            rank = (gap_us / MINUTE_US, 0, km)
        else:
            link = rule.explain(held, candidate)
            if not link.linked:
                continue
            rank = link.rank
        state: IncidentState = candidate.incident  # type: ignore[assignment]  # held: in an incident
        current = best.get(state)
        # The rank, then the candidate's key: ((rank, source, report_id) < ...) without building that tuple.
        if current is None or rank < current[0] or (rank == current[0] and candidate.key < current[1].key):
            best[state] = (rank, candidate)
    if not best:
        return []
    ordered = sorted(best.items(), key=lambda entry: entry[0].precedence) if len(best) > 1 else list(best.items())
    return [(state, candidate, _link(rule, held, candidate, rank)) for state, (rank, candidate) in ordered]


def _link(rule: LinkRule, held: HeldReport, candidate: HeldReport, rank: LinkRank) -> Link:
    """The link `rule.explain(held, candidate)` gives, for a pair that links with `rank`."""
    gap, by_sector, km = rank
    if by_sector:
        return rule.explain(held, candidate)
    return Link(True, "distance", gap, km)  # explain's verdict for two located reports within reach
