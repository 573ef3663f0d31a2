"""Identities of reports that eviction dropped, remembered for a while longer.

Eviction forgets a report once it can no longer link; but an upstream re-emit (at-least-once after a
crash, or a correlate restart that re-reads uncommitted offsets) can deliver it again, and it would
then found a second, "late" incident. Correlation must be idempotent on `(source, report_id)`, so the
identity stays here until it is `remember` older than the watermark (default 14 days, like dedup).

Each identity is a 128-bit digest of `(source, report_id)` (a chance collision, which would drop a
report, is ~1e-27 at a million identities), stored as the entry `s␟<32 hex digits>` = observed µs.
Fourteen days of a busy ceasefire are hundreds of thousands of identities: ~360K of the soak's
~424K entries in its biggest ceasefire, once ~130 MB of the worker as tuples of strings, then ~50 MB
as Python ints in a set and a heap (bench/NOTES.md). So membership is asked of the stored entries
(`stored`: the state's table, one RocksDB read), and only the expiry order stays in memory, packed:
per minute of observed time, an array of observed µs and a bytearray of digests (24 bytes an identity).
"""

from __future__ import annotations

import hashlib
import heapq
from array import array
from binascii import unhexlify
from collections.abc import Callable

Key = tuple[str, str]
Lookup = Callable[[str], "str | None"]
SEEN_PREFIX = "s\x1f"
_HEX = len(SEEN_PREFIX)
BUCKET_US = 60 * 1_000_000  # observed time one expiry bucket spans


def identity_digest(key: Key) -> bytes:
    """The 128-bit digest that stands for `(source, report_id)`."""
    return hashlib.blake2b(f"{key[0]}\x1f{key[1]}".encode(), digest_size=16).digest()


class SeenReports:
    def __init__(self, remember_us: int, stored: Lookup | None = None) -> None:
        """`stored` reads an entry `take_changes` returned, once the shell has stored it. Without one
        (tests, benchmarks), the entries are kept here."""
        self.remember_us = remember_us
        self._own: dict[str, str] | None = {} if stored is None else None
        self._stored: Lookup = stored if stored is not None else self._own.get  # type: ignore[union-attr]
        # bucket → the observed µs and the digests (16 bytes each) of its identities, in filing order
        self._buckets: dict[int, tuple[array[int], bytearray]] = {}
        self._order: list[int] = []  # the buckets, a heap: the oldest first
        self._remembered: dict[bytes, int] = {}  # digest → observed_us, remembered since take_changes
        self._forgotten: set[bytes] = set()  # forgotten since take_changes

    def __contains__(self, key: Key) -> bool:
        return self._holds(identity_digest(key))

    def remember(self, key: Key, observed_us: int) -> None:
        digest = identity_digest(key)
        self._remembered[digest] = observed_us
        self._forgotten.discard(digest)
        self._file(digest, observed_us)

    def expire(self, watermark_us: int) -> None:
        """Forget every identity observed before `watermark_us - remember_us`."""
        horizon = watermark_us - self.remember_us
        while self._order and self._order[0] * BUCKET_US < horizon:
            bucket = self._order[0]
            times, digests = self._buckets[bucket]
            if min(times) >= horizon:
                break
            kept_times, kept_digests = array("q"), bytearray()
            for i, observed in enumerate(times):
                digest = bytes(digests[i * 16 : i * 16 + 16])
                if observed < horizon:
                    self._forget(digest)
                else:
                    kept_times.append(observed)
                    kept_digests += digest
            if kept_times:
                self._buckets[bucket] = (kept_times, kept_digests)
                break
            heapq.heappop(self._order)
            del self._buckets[bucket]

    def take_changes(self) -> tuple[dict[str, str], dict[str, None]]:
        """(entries to write, entries to delete): the shell writes the first before dropping reports."""
        sets = {_entry(d): str(self._remembered[d]) for d in sorted(self._remembered)}
        deletes: dict[str, None] = {_entry(d): None for d in sorted(self._forgotten)}
        if self._own is not None:
            self._own.update(sets)
            for entry in deletes:
                self._own.pop(entry, None)
        self._remembered.clear()
        self._forgotten.clear()
        return sets, deletes

    def restore(self, entry: str, value: str) -> None:
        """A stored entry, while the state is rebuilt: only its place in the expiry order is kept."""
        self._file(unhexlify(entry[_HEX:]), int(value))
        if self._own is not None:
            self._own[entry] = value

    def _holds(self, digest: bytes) -> bool:
        if digest in self._remembered:
            return True
        return digest not in self._forgotten and self._stored(_entry(digest)) is not None

    def _forget(self, digest: bytes) -> None:
        if self._holds(digest):  # not if forgotten already (a record filed twice: see `_restore`)
            self._remembered.pop(digest, None)
            self._forgotten.add(digest)

    def _file(self, digest: bytes, observed_us: int) -> None:
        bucket = observed_us // BUCKET_US
        found = self._buckets.get(bucket)
        if found is None:
            found = self._buckets[bucket] = (array("q"), bytearray())
            heapq.heappush(self._order, bucket)
        found[0].append(observed_us)
        found[1].extend(digest)


def _entry(digest: bytes) -> str:
    return SEEN_PREFIX + digest.hex()
