"""How pydantic models cross Faust's boundary: topics carry raw bytes, models are (de)serialised here.

pydantic-core writes and parses JSON in Rust; Faust only ever sees bytes (`value_serializer="raw"`).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def encode(model: BaseModel) -> bytes:
    return model.__pydantic_serializer__.to_json(model)


def decode(model: type[M], raw: bytes) -> M:
    return model.model_validate_json(raw)
