"""Dead-letter records: the original key and value bytes, unchanged, with headers that say why.

Header names follow Kafka Connect's (`__connect.errors.*`), so existing DLQ tooling reads them.
`ceasefire.errors` holds the JSON list of every problem with its path.
"""

from __future__ import annotations

import orjson

from services.ingest.validate import Problem, primary_reason

PREFIX = "__connect.errors."


def dead_letter_headers(topic: str, partition: int, offset: int, problems: list[Problem]) -> list[tuple[str, bytes]]:
    reason = primary_reason(problems)
    summary = "; ".join(f"{p.path}: {p.message}" for p in problems[:5])
    if len(problems) > 5:
        summary += f"; and {len(problems) - 5} more"
    return [
        (PREFIX + "topic", topic.encode()),
        (PREFIX + "partition", str(partition).encode()),
        (PREFIX + "offset", str(offset).encode()),
        (PREFIX + "exception.class.name", f"ceasefire.{reason.value}".encode()),
        (PREFIX + "exception.message", summary.encode()),
        ("ceasefire.reason", reason.value.encode()),
        ("ceasefire.errors", orjson.dumps([p.as_dict() for p in problems])),
    ]
