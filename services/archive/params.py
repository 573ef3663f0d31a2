"""Reading the read API's query parameters: each bad one is named with a reason (a 400), never a 500.

Pure: takes the query as a mapping of name → values, so the CLI and the tests use the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from schemas.incident import Severity

# An RFC 3339 time whose `+hh:mm` offset came through a URL unencoded: `+` reads as a space.
_UNENCODED_PLUS = re.compile(r"^(\S+T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
SEVERITY_NAMES = {s.name.lower(): int(s) for s in Severity}


class BadParameter(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message

    def answer(self) -> dict[str, str]:
        return {"error": str(self), "parameter": self.name}


Query = Mapping[str, Sequence[str]]


def check_known(query: Query, known: Iterable[str]) -> None:
    unknown = sorted(set(query) - set(known))
    if unknown:
        raise BadParameter(unknown[0], f"not a parameter of this route (known: {', '.join(sorted(known))})")


def one(query: Query, name: str) -> str | None:
    values = query.get(name) or []
    if len(values) > 1:
        raise BadParameter(name, "given more than once")
    return values[0] if values else None


def time_param(query: Query, name: str) -> datetime | None:
    raw = one(query, name)
    if raw is None or raw == "":
        return None
    text = _UNENCODED_PLUS.sub(r"\1+\2", raw.strip())
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadParameter(name, "not an RFC 3339 date-time, e.g. 2025-05-10T12:00:00Z (encode + as %2B)") from None
    if parsed.tzinfo is None:
        raise BadParameter(name, "needs an offset (Z or ±hh:mm): without one the time is ambiguous")
    return parsed


def int_param(query: Query, name: str, default: int | None, lowest: int, highest: int) -> int | None:
    raw = one(query, name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw.strip()):
        raise BadParameter(name, f"not a whole number from {lowest} to {highest}")
    value = int(raw)
    if not lowest <= value <= highest:
        raise BadParameter(name, f"{value} is outside {lowest}..{highest}")
    return value


def bool_param(query: Query, name: str) -> bool | None:
    raw = one(query, name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadParameter(name, "true or false")


def choices(query: Query, name: str, allowed: Iterable[str]) -> list[str]:
    allowed = sorted(allowed)
    values = [v for raw in query.get(name) or [] for v in raw.split(",") if v]
    for value in values:
        if value not in allowed:
            raise BadParameter(name, f"{value!r} is not one of {', '.join(allowed)}")
    return values


def severity_param(query: Query, name: str) -> int | None:
    raw = one(query, name)
    if raw is None or raw == "":
        return None
    if raw.lower() in SEVERITY_NAMES:
        return SEVERITY_NAMES[raw.lower()]
    if raw.strip() in {str(v) for v in SEVERITY_NAMES.values()}:
        return int(raw)
    raise BadParameter(name, f"a rung 1..5 or one of {', '.join(SEVERITY_NAMES)}")


def text_param(query: Query, name: str, pattern: str, what: str) -> str | None:
    raw = one(query, name)
    if raw is None or raw == "":
        return None
    if not re.fullmatch(pattern, raw):
        raise BadParameter(name, f"not {what}")
    return raw


def window(since: datetime | None, until: datetime | None) -> None:
    if since and until and until <= since:
        raise BadParameter("until", "must be later than since")
