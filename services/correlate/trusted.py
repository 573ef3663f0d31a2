"""Published records built from values correlation computed itself, without validating them again.

An incident is republished on every change, and validating the record (its nested report records,
centre and casualty range) each time costs more than computing it. `trusted` sets the fields the way
`BaseModel.model_construct` does, minus its per-field Python loop (aliases, defaults): the caller
passes every field, in declaration order, with the type validation would have given it, and the
result is equal to the validated model and serialises to the same bytes
(tests/unit/test_trusted_records.py checks both for every model built this way).

The records of a model share one `model_fields_set` (every field is always given): pydantic only
ever changes the set of a model that is not frozen, or a copy (`model_copy`); these models are frozen.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__  # the models are frozen: their own __setattr__ refuses
_FIELDS: dict[type[BaseModel], set[str]] = {}
_SHARED_KEYS: dict[type[BaseModel], dict[str, Any]] = {}


def trusted(model: type[M], values: dict[str, Any]) -> M:
    """`model(**values)` for values already of their validated types; `values` becomes the record's own."""
    record = model.__new__(model)
    _set(record, "__dict__", values)
    _finish(model, record)
    return record


def compact(model: type[M], values: dict[str, Any]) -> M:
    """`trusted`, for a record kept long and read often: its `__dict__` shares its keys with every other
    record of the model (a CPython split dictionary, about half the memory of a dictionary of its own)."""
    shared = _SHARED_KEYS.get(model)
    if shared is None:
        template = model.__new__(model)
        for name in model.model_fields:
            _set(template, name, None)  # attributes set one by one: a split dictionary
        shared = _SHARED_KEYS[model] = template.__dict__
    fields = shared.copy()  # a copy of a split dictionary is one too
    fields.update(values)  # the same keys: the values change in place
    record = model.__new__(model)
    _set(record, "__dict__", fields)
    _finish(model, record)
    return record


def _finish(model: type[BaseModel], record: BaseModel) -> None:
    fields = _FIELDS.get(model)
    if fields is None:
        if not model.model_config.get("frozen"):
            raise TypeError(f"{model.__name__} is not frozen: its records cannot share their fields set")
        fields = _FIELDS[model] = set(model.model_fields)
    _set(record, "__pydantic_fields_set__", fields)
    _set(record, "__pydantic_extra__", None)
    _set(record, "__pydantic_private__", None)
