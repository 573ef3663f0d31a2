"""How pydantic models cross Faust's boundary: topics carry raw bytes, models are (de)serialised here.

pydantic-core writes and parses JSON in Rust; Faust only ever sees bytes (`value_serializer="raw"`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:
    import faust

M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def decode(model: type[M], raw: bytes) -> M:
    return model.model_validate_json(raw)


def try_decode(model: type[M], raw: bytes | None) -> M | ValidationError:
    """Downstream topics are written by us; a record that still fails to decode (another writer, a
    schema change) is the stage's to dead-letter (services/runtime/failure.py), never a reason to stop."""
    try:
        return model.model_validate_json(raw or b"")
    except ValidationError as error:
        return error


def raw_topic(app: faust.App, name: str) -> faust.TopicT:
    """A topic whose keys and values reach agents as bytes (decoded here, not by Faust)."""
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")


MAX_BATCH_BYTES = 512 * 1024  # internal batch records stay well under a broker's request size


def pack(items: list[bytes], limit: int = MAX_BATCH_BYTES) -> list[list[bytes]]:
    """Group encoded records, in order, into runs of at most ~`limit` bytes (at least one run, and a
    record larger than `limit` alone in its run): one internal batch record per run."""
    runs: list[list[bytes]] = [[]]
    size = 0
    for item in items:
        if runs[-1] and size + len(item) > limit:
            runs.append([])
            size = 0
        runs[-1].append(item)
        size += len(item) + 1
    return runs
