"""Identities of reports that eviction dropped, remembered for a while longer.

Eviction forgets a report once it can no longer link; but an upstream re-emit (at-least-once after a
crash, or a correlate restart that re-reads uncommitted offsets) can deliver it again, and it would
then found a second, "late" incident. Correlation must be idempotent on `(source, report_id)`, so the
identity stays here until it is `remember` older than the watermark (default 14 days, like dedup).
"""

from __future__ import annotations

import heapq

Key = tuple[str, str]
SEEN_PREFIX = "s\x1f"


class SeenReports:
    def __init__(self, remember_us: int) -> None:
        self.remember_us = remember_us
        self.observed: dict[Key, int] = {}
        self._expiry: list[tuple[int, Key]] = []
        self._dirty: set[Key] = set()

    def __contains__(self, key: Key) -> bool:
        return key in self.observed

    def remember(self, key: Key, observed_us: int) -> None:
        self.observed[key] = observed_us
        heapq.heappush(self._expiry, (observed_us, key))
        self._dirty.add(key)

    def expire(self, watermark_us: int) -> None:
        horizon = watermark_us - self.remember_us
        while self._expiry and self._expiry[0][0] < horizon:
            _, key = heapq.heappop(self._expiry)
            if self.observed.pop(key, None) is not None:
                self._dirty.add(key)

    def take_changes(self) -> tuple[dict[str, str], dict[str, None]]:
        """(entries to write, entries to delete): the shell writes the first before dropping reports."""
        sets: dict[str, str] = {}
        deletes: dict[str, None] = {}
        for key in sorted(self._dirty):
            entry = SEEN_PREFIX + key[0] + "\x1f" + key[1]
            if key in self.observed:
                sets[entry] = str(self.observed[key])
            else:
                deletes[entry] = None
        self._dirty.clear()
        return sets, deletes

    def restore(self, entry: str, value: str) -> None:
        source, _, report_id = entry[len(SEEN_PREFIX) :].partition("\x1f")
        key = (source, report_id)
        self.observed[key] = int(value)
        heapq.heappush(self._expiry, (int(value), key))
