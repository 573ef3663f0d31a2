"""How dedup state is stored: the entries of the `dedup` table, read in one place.

One partition's entries are under `<partition>/` (the state's scope). Every value starts with the
event time it expires by, so that a sweep (and the retention rule) can read any entry alike.

| key | value | what |
|---|---|---|
| `id␟<source>␟<report_id>` | `<observed_at s>␟<report_id>␟<origin>␟<revisions>` | the exact rule: a report accepted at `origin`; `<revisions>` is `<revision>:<content digest>,…` of the revisions accepted (the newest last) |
| `fp␟<digest>` | the same | the resubmission rule: that report's content |
| `o␟<partition>:<offset>` | `<watermark s>␟<duplicate_of>␟<origin>` | a record ruled duplicate or too old, so its re-delivery is known |
| `rc␟<source>␟<report_id>` | `<observed_at s>␟<Receipt JSON>` | the report's receipt (schemas/receipt.py), as last published |
| `~watermark` | `<observed_at s>` | the newest `observed_at` the partition has seen |

Entries written before origins were kept have no `␟<origin>` (they still decide; they cannot tell a
re-delivery); entries written before revisions have no `␟<revisions>` (revision 1, content unknown).
"""

from __future__ import annotations

from typing import NamedTuple

SEP = "\x1f"
WATERMARK_KEY = "~watermark"
IDENTITY_PREFIX = "id" + SEP
FINGERPRINT_PREFIX = "fp" + SEP
ORIGIN_PREFIX = "o" + SEP
RECEIPT_PREFIX = "rc" + SEP


class Entry(NamedTuple):
    expires_by: float  # epoch seconds of event time
    report_id: str
    origin: str  # "" when unknown
    revisions: dict[int, str]  # revision → content digest ("" when unknown), the newest last


def identity_key(source: str, report_id: str) -> str:
    return f"{IDENTITY_PREFIX}{source}{SEP}{report_id}"


def receipt_entry_key(source: str, report_id: str) -> str:
    return f"{RECEIPT_PREFIX}{source}{SEP}{report_id}"


def fingerprint_key(digest: str) -> str:
    return FINGERPRINT_PREFIX + digest


def origin_key(origin: str) -> str:
    return ORIGIN_PREFIX + origin


def write_entry(time: float, report_id: str, origin: str = "", revisions: dict[int, str] | None = None) -> str:
    text = f"{time:.0f}{SEP}{report_id}" + (f"{SEP}{origin}" if origin or revisions else "")
    if revisions:
        text += SEP + ",".join(f"{revision}:{digest}" for revision, digest in revisions.items())
    return text


def read_entry(text: str) -> Entry:
    time, _, rest = text.partition(SEP)
    report_id, _, rest = rest.partition(SEP)
    origin, _, listed = rest.partition(SEP)
    revisions = {int(r): d for r, _, d in (item.partition(":") for item in listed.split(","))} if listed else {}
    return Entry(float(time), report_id, origin, revisions)


def expires_by(text: str) -> float:
    """The event time an entry expires by, read without parsing the rest."""
    return float(text.partition(SEP)[0])
