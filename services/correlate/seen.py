"""Identities of reports that eviction dropped, remembered for a while longer.

Eviction forgets a report once it can no longer link; but an upstream re-emit (at-least-once after a
crash, or a correlate restart that re-reads uncommitted offsets) can deliver it again, and it would
then found a second, "late" incident. Correlation must be idempotent on `(source, report_id)`, so the
identity stays here until it is `remember` older than the watermark (default 14 days, like dedup).

Fourteen days of a busy ceasefire are hundreds of thousands of identities, so each is held as a
128-bit digest of `(source, report_id)` (a chance collision, which would drop a report, is ~1e-27 at
a million identities), and its expiry as one integer, the observed time above the digest: ~140 bytes
an identity instead of ~390 for the tuple of two strings, a dict slot and a heap tuple (bench/NOTES.md).
"""

from __future__ import annotations

import hashlib
import heapq

Key = tuple[str, str]
SEEN_PREFIX = "s\x1f"
_DIGEST_BITS = 128
_DIGEST_MASK = (1 << _DIGEST_BITS) - 1


def identity_digest(key: Key) -> int:
    """The 128-bit digest that stands for `(source, report_id)`."""
    material = f"{key[0]}\x1f{key[1]}".encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=_DIGEST_BITS // 8).digest(), "big")


class SeenReports:
    def __init__(self, remember_us: int) -> None:
        self.remember_us = remember_us
        self._digests: set[int] = set()
        self._expiry: list[int] = []  # observed_us << 128 | digest: heap order is expiry order
        self._remembered: dict[int, int] = {}  # digest → observed_us, remembered since take_changes
        self._forgotten: set[int] = set()
        self._heap_ok = True  # False after `restore`: one heapify, not one push per restored entry

    def __contains__(self, key: Key) -> bool:
        return identity_digest(key) in self._digests

    def __len__(self) -> int:
        return len(self._digests)

    def remember(self, key: Key, observed_us: int) -> None:
        digest = identity_digest(key)
        self._add(digest, observed_us)
        self._remembered[digest] = observed_us
        self._forgotten.discard(digest)

    def expire(self, watermark_us: int) -> None:
        self._order()
        horizon = watermark_us - self.remember_us
        while self._expiry and self._expiry[0] >> _DIGEST_BITS < horizon:
            digest = heapq.heappop(self._expiry) & _DIGEST_MASK
            if digest in self._digests:
                self._digests.discard(digest)
                self._remembered.pop(digest, None)
                self._forgotten.add(digest)

    def take_changes(self) -> tuple[dict[str, str], dict[str, None]]:
        """(entries to write, entries to delete): the shell writes the first before dropping reports."""
        sets = {_entry(d): str(self._remembered[d]) for d in sorted(self._remembered)}
        deletes: dict[str, None] = {_entry(d): None for d in sorted(self._forgotten)}
        self._remembered.clear()
        self._forgotten.clear()
        return sets, deletes

    def restore(self, entry: str, value: str) -> None:
        digest = int(entry[len(SEEN_PREFIX) :], 16)
        self._digests.add(digest)
        self._expiry.append(int(value) << _DIGEST_BITS | digest)
        self._heap_ok = False

    def _add(self, digest: int, observed_us: int) -> None:
        self._order()
        self._digests.add(digest)
        heapq.heappush(self._expiry, observed_us << _DIGEST_BITS | digest)

    def _order(self) -> None:
        if not self._heap_ok:
            heapq.heapify(self._expiry)
            self._heap_ok = True


def _entry(digest: int) -> str:
    return f"{SEEN_PREFIX}{digest:032x}"
