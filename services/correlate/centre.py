"""An incident's centre, kept as its located reports arrive.

The centre is the mean of the reports' unit vectors weighted by 1/precision², back on the sphere;
its radius reaches every report (docs/link-rule.md). Floating-point sums depend on their order, and
the same reports must give the same centre however they arrived, so the sums run in publication
order (observed_at, source, report_id) and are kept as running sums: a report that arrives last
adds one term, one that arrives earlier than others re-adds the terms after it. The radius needs the
distance of every report from the new centre at each publication; the numbers it reads are kept in
lists of small tuples, not read from each report's many attributes.
"""

from __future__ import annotations

import math

from schemas.incident import Centre
from services.correlate.link import DIAMETER_KM, HeldReport
from services.correlate.trusted import trusted


class LocatedReports:
    """The reports of one incident that have coordinates, as the numbers its centre is made of."""

    __slots__ = ("weighted", "points", "sums")

    def __init__(self) -> None:
        # Per located report, in publication order (the tuples are the reports' own, made once):
        self.weighted: list[tuple[float, float, float]] = []  # its unit vector / precision²
        self.points: list[tuple[float, float, float, float]] = []  # its unit vector and precision_km
        self.sums: list[tuple[float, float, float]] = []  # the weighted vectors summed up to it

    def __len__(self) -> int:
        return len(self.points)

    def add(self, report: HeldReport, at: int) -> None:
        """Insert a located report as the `at`-th in publication order; bring the running sums up to date."""
        if report.weighted is None or report.point is None:
            return
        self.weighted.insert(at, report.weighted)
        self.points.insert(at, report.point)
        self.sums.append((0.0, 0.0, 0.0))
        self._sum_from(at)

    def replace(self, members: list[HeldReport]) -> None:
        """Start again from an incident's members, in publication order (after a merge)."""
        located = [r for r in members if r.weighted is not None and r.point is not None]
        self.weighted = [r.weighted for r in located]  # type: ignore[misc]
        self.points = [r.point for r in located]  # type: ignore[misc]
        self.sums = [(0.0, 0.0, 0.0)] * len(located)
        self._sum_from(0)

    def _sum_from(self, at: int) -> None:
        """Running sums from report `at` on; those before it are unchanged."""
        sums = self.sums
        x, y, z = sums[at - 1] if at else (0.0, 0.0, 0.0)
        for i in range(at, len(sums)):
            wx, wy, wz = self.weighted[i]
            x += wx
            y += wy
            z += wz
            sums[i] = (x, y, z)

    def centre(self) -> Centre | None:
        """The weighted mean back on the sphere, with the radius that reaches every report (None: no report)."""
        if not self.points:
            return None
        x, y, z = self.sums[-1]
        norm = math.sqrt(x * x + y * y + z * z) or 1.0  # zero only for reports at antipodes
        cx, cy, cz = x / norm, y / norm, z / norm
        lat_c = math.degrees(math.atan2(z, math.hypot(x, y)))
        lon_c = math.degrees(math.atan2(y, x))
        # Great-circle distance from the chord between unit vectors: the haversine without re-deriving
        # every report's trigonometry on every publication of a large incident.
        widest = 0.0
        sqrt, asin = math.sqrt, math.asin
        for vx, vy, vz, precision in self.points:
            half = sqrt((vx - cx) ** 2 + (vy - cy) ** 2 + (vz - cz) ** 2) / 2
            reach = DIAMETER_KM * asin(half if half < 1.0 else 1.0) + precision
            if reach > widest:
                widest = reach
        # Rounded (1e-7 degrees is about 1 cm, radius to 1 m): float noise of the sphere round trip is not news.
        return trusted(Centre, {"lat": round(lat_c, 7), "lon": round(lon_c, 7), "radius_km": round(widest, 3)})
