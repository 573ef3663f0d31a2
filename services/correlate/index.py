"""Where to look for a report's link candidates without scanning every held report.

Held reports are bucketed by event time (buckets one link window wide, so a report's partners lie in
its own bucket or the two beside it) and, inside a bucket, by a latitude/longitude grid cell for
reports with coordinates and by sector name for reports without. The grid cover of a disc is derived
from the haversine formula, so it is a guaranteed superset: the index may propose a report that does
not link, never miss one that does (an H3 disc would need a safety margin for H3's cell-size spread).
Dropping a whole time bucket is how eviction frees memory.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from schemas.ceasefire import EARTH_RADIUS_KM, Ceasefire, Sector
from services.correlate.link import MINUTE_US, HeldReport

Cell = int  # row * columns + column: an int hashes and compares faster than a (row, column) pair
_KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180
_MIN_CELL_KM = 5.0
_SLACK = 1e-9  # relative widening of every cover, against rounding at an exact boundary
_BLOCKS_KEPT = 4096  # covers remembered (~20 cells each) before starting afresh


class Grid:
    """Square cells of `degrees` in latitude and longitude, longitude wrapping at the antimeridian."""

    def __init__(self, cell_km: float) -> None:
        self.degrees = cell_km / _KM_PER_DEGREE
        self.columns = math.ceil(360 / self.degrees)
        self.rows = math.ceil(180 / self.degrees)
        # Every report asks for a cover: the longitude reach depends only on the row and the radius,
        # and nearby reports ask for the same block of cells.
        self._reach: dict[tuple[int, float], float | None] = {}
        self._blocks: dict[tuple[int, int, int, int], list[Cell]] = {}

    def cell(self, lat: float, lon: float) -> Cell:
        row = min(int((lat + 90) // self.degrees), self.rows - 1)
        return row * self.columns + int((lon + 180) // self.degrees) % self.columns

    def cover(self, lat: float, lon: float, radius_km: float) -> list[Cell]:
        """Every cell holding a point within `radius_km` of (lat, lon), and maybe a few more (shared: read only)."""
        angle = radius_km * (1 + _SLACK) / EARTH_RADIUS_KM + 1e-12
        dlat = math.degrees(angle)
        first_row = max(0, int((lat - dlat + 90) // self.degrees))
        last_row = min(self.rows - 1, int((lat + dlat + 90) // self.degrees))
        row = min(int((lat + 90) // self.degrees), self.rows - 1)
        key = (row, radius_km)
        try:
            dlon = self._reach[key]  # one lookup on the usual hit
        except KeyError:
            dlon = self._reach[key] = self._longitude_reach(row, angle, dlat)
        if dlon is None:
            first, last = 0, self.columns - 1
        else:
            first = int((lon - dlon + 180) // self.degrees)
            last = int((lon + dlon + 180) // self.degrees)
            if last - first + 1 >= self.columns:
                first, last = 0, self.columns - 1
        block = (first_row, last_row, first, last)
        cells = self._blocks.get(block)
        if cells is None:
            if len(self._blocks) >= _BLOCKS_KEPT:
                self._blocks.clear()
            columns = [column % self.columns for column in range(first, last + 1)]
            width = self.columns
            cells = self._blocks[block] = [r * width + c for r in range(first_row, last_row + 1) for c in columns]
        return cells

    def _longitude_reach(self, row: int, angle: float, dlat: float) -> float | None:
        """Degrees of longitude a cover reaches either side of any point of `row`; None: every column.

        hav(d) = hav(dlat) + cos(lat1) cos(lat2) hav(dlon) >= cos(lat1) cos(lat2) hav(dlon), and lat2 is
        at most |lat1| + dlat from the equator: that bounds dlon for every point within the radius. The
        row's edge farthest from the equator (a hair beyond) gives the bound for all of its points."""
        south = row * self.degrees - 90
        farthest = max(abs(south), abs(south + self.degrees)) + 1e-9
        widest = farthest + dlat
        spread = math.cos(math.radians(farthest)) * math.cos(math.radians(widest)) if widest < 90 else 0.0
        bound = math.sin(angle / 2) ** 2 / spread if spread > 0 else math.inf
        if angle >= math.pi or bound >= 1:
            return None
        return math.degrees(2 * math.asin(math.sqrt(bound)))


@dataclass(slots=True)
class _Bucket:
    located: dict[Cell, list[HeldReport]] = field(default_factory=lambda: defaultdict(list))
    unlocated: dict[str, list[HeldReport]] = field(default_factory=lambda: defaultdict(list))
    named: dict[str, list[HeldReport]] = field(default_factory=lambda: defaultdict(list))  # located + sector


class LinkIndex:
    """Candidate search for one ceasefire: cost per report stays flat however many reports are held."""

    def __init__(self, ceasefire: Ceasefire) -> None:
        self.ceasefire = ceasefire
        self.width_us = max(1, round(ceasefire.link.window_minutes * MINUTE_US))
        self.grid = Grid(max(ceasefire.link.distance_km, _MIN_CELL_KM))
        self.buckets: dict[int, _Bucket] = {}
        self.widest_precision_km = 0.0  # of any report ever indexed: bounds the search radius
        self.distance_km = ceasefire.link.distance_km
        self.unlocated = 0  # reports held without coordinates: only they need the sectors of a point
        self.sector_cells: dict[str, list[Cell]] = {}
        self.sectors_near: dict[Cell, list[Sector]] = defaultdict(list)
        for sector in ceasefire.sectors:
            cells = self.grid.cover(sector.lat, sector.lon, sector.radius_km)
            self.sector_cells[sector.name] = cells
            for cell in cells:
                self.sectors_near[cell].append(sector)

    def bucket_of(self, observed_us: int) -> int:
        return observed_us // self.width_us

    def add(self, report: HeldReport) -> None:
        number = report.observed_us // self.width_us
        bucket = self.buckets.get(number)
        if bucket is None:
            bucket = self.buckets[number] = _Bucket()
        if report.lat is not None and report.lon is not None:
            bucket.located[self.grid.cell(report.lat, report.lon)].append(report)
            if report.sector is not None:
                bucket.named[report.sector].append(report)
            if report.precision_km > self.widest_precision_km:
                self.widest_precision_km = report.precision_km
        elif report.sector is not None:
            bucket.unlocated[report.sector].append(report)
            self.unlocated += 1

    def remove(self, report: HeldReport) -> None:
        """Take a held report out (replaced by a newer revision); nothing if its bucket was dropped."""
        bucket = self.buckets.get(report.observed_us // self.width_us)
        if bucket is None:
            return
        lists = [bucket.unlocated.get(report.sector or "", [])]
        if report.lat is not None and report.lon is not None:
            lists = [bucket.located.get(self.grid.cell(report.lat, report.lon), []), bucket.named.get(report.sector or "", [])]
        for held in lists:
            for at, candidate in enumerate(held):
                if candidate is report:
                    del held[at]
                    if held is lists[0] and report.lat is None:
                        self.unlocated -= 1
                    break

    def candidates(self, report: HeldReport) -> list[HeldReport]:
        """Held reports in link range of `report` by time and place (a superset; the link rule decides)."""
        middle = self.bucket_of(report.observed_us)
        near = [b for b in map(self.buckets.get, (middle - 1, middle, middle + 1)) if b is not None]
        if not near:
            return []
        if report.lat is not None and report.lon is not None:
            return self._near_point(report, report.lat, report.lon, near)
        return list(self._near_sector(report, near))

    def _near_point(self, report: HeldReport, lat: float, lon: float, near: list[_Bucket]) -> list[HeldReport]:
        reach = self.distance_km + report.precision_km + self.widest_precision_km
        cells = self.grid.cover(lat, lon, reach)
        found: list[HeldReport] = []
        for bucket in near:
            located = bucket.located
            for cell in located.keys() & cells:  # in C: most cells of a cover hold nothing
                found += located[cell]
        if not self.unlocated:
            return found
        # Sector-only reports link by their sector: the one this report names, or one holding its point.
        nearby = self.sectors_near.get(self.grid.cell(lat, lon), ())
        sectors = {s.name for s in nearby if s.contains(lat, lon)}
        if report.sector is not None:
            sectors.add(report.sector)
        for bucket in near:
            for name in sectors:
                held = bucket.unlocated.get(name)
                if held:
                    found += held
        return found

    def _near_sector(self, report: HeldReport, near: list[_Bucket]) -> Iterator[HeldReport]:
        name = report.sector
        if name is None:
            return
        seen: set[int] = set()
        for bucket in near:
            yield from bucket.unlocated.get(name, ())
            for held in bucket.named.get(name, ()):
                seen.add(id(held))
                yield held
            for cell in self.sector_cells.get(name, ()):
                for held in bucket.located.get(cell, ()):
                    if id(held) not in seen:
                        yield held

    def drop_before(self, horizon_us: int) -> int:
        """Forget every bucket that ends at or before `horizon_us`; returns how many reports went."""
        last_gone = horizon_us // self.width_us  # buckets below this one end at or before the horizon
        stale = [b for b in self.buckets if b < last_gone]
        dropped = 0
        for b in stale:
            bucket = self.buckets.pop(b)
            dropped += _count(bucket)
            self.unlocated -= sum(len(v) for v in bucket.unlocated.values())
        return dropped

    def __len__(self) -> int:
        return sum(_count(b) for b in self.buckets.values())


def _count(bucket: _Bucket) -> int:
    return sum(len(v) for v in bucket.located.values()) + sum(len(v) for v in bucket.unlocated.values())
