"""Checks of plain data read from a file (a run record, a checkpoint, a pack manifest) against the keys
and types it should hold. A bool is never a number here: JSON's ``true`` is no count and no accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["Kind", "is_a", "kind_name", "first_bad_key", "key_problem"]

Kind = type | tuple[type, ...]
"""A type, or a tuple of types any of which will do (``(int, float)``: a number)."""


def is_a(value: Any, kind: Kind) -> bool:
    """``isinstance(value, kind)``, except that a bool is never an ``int`` or ``float``."""
    return isinstance(value, kind) and not isinstance(value, bool)


def kind_name(kind: Kind) -> str:
    """The name of ``kind`` in a message: ``int``, ``dict``, ...; ``number`` for a tuple of types."""
    return getattr(kind, "__name__", "number")


def first_bad_key(data: Mapping[str, Any], keys: Mapping[str, Kind]) -> str | None:
    """The first key of ``keys`` (in their order) that ``data`` lacks or holds with a value not of its
    kind (:func:`is_a`), else ``None``."""
    return next((key for key, kind in keys.items() if key not in data or not is_a(data[key], kind)), None)


def key_problem(data: Mapping[str, Any], keys: Mapping[str, Kind], *, missing: str, mistyped: str) -> str | None:
    """The first problem of ``data`` against ``keys`` (:func:`first_bad_key`) in words, else ``None``:
    ``missing`` for a key it lacks, ``mistyped`` for a value not of its kind; both are format strings of
    ``key`` (the key's repr), ``mistyped`` also of ``got`` (the value's type) and ``kind`` (:func:`kind_name`)."""
    key = first_bad_key(data, keys)
    if key is None:
        return None
    if key not in data:
        return missing.format(key=repr(key))
    return mistyped.format(key=repr(key), got=type(data[key]).__name__, kind=kind_name(keys[key]))
