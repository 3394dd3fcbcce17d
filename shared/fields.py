"""Untrusted JSON and the numbers in it: one rule for every HTTP body, webhook delivery and event.

:func:`json_document` decodes bytes a client sent: strict UTF-8 (RFC 8259), no ``NaN`` or
``Infinity`` tokens (they are not JSON, and would come back out as invalid JSON), at most
:data:`MAX_DEPTH` levels of nesting (the decoder recurses: 100k nested arrays would raise
RecursionError, which nothing expects) and no integer of more than :data:`MAX_INT_DIGITS` digits.
:func:`whole_number` accepts an int (never a bool, never a float such as ``1e20`` or ``2.0``)
inside a stated range, so a value SQLite cannot store never reaches it. Both raise
:class:`~shared.errors.InvalidValue` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from shared.errors import InvalidValue

MAX_DEPTH = 64  # real bodies and events nest a few levels; the decoder recurses on each
MAX_INT_DIGITS = 30  # longer integers are refused by the decoder, before int() spends time on them
INT32_MAX = 2**31 - 1  # versions: Azure ML's REST API types them int32
INT64_MAX = 2**63 - 1  # SQLite's INTEGER and Table storage's Edm.Int64


def json_document(raw: bytes | str | None, *, what: str = "request body", empty: Any = None) -> Any:
    """``raw`` decoded as JSON (``empty`` for an empty body). Raises InvalidValue saying what is wrong."""
    if isinstance(raw, bytes | bytearray):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidValue(f"{what} is not UTF-8 text: byte 0x{raw[e.start]:02x} at offset {e.start} "
                               "(JSON must be UTF-8)") from None
    else:
        text = raw or ""
    if text.startswith("\ufeff"):
        text = text[1:]  # a UTF-8 byte order mark: tolerated, as most JSON readers do
    if not text.strip():
        return empty
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_int=_int, parse_float=_float)
    except _Refused as e:
        raise InvalidValue(f"{what} is not valid JSON ({e})") from None
    except RecursionError:
        raise InvalidValue(f"{what} is nested too deeply (at most {MAX_DEPTH} levels of arrays and objects)") \
            from None
    except json.JSONDecodeError as e:
        raise InvalidValue(f"{what} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    depth = nesting_depth(value)
    if depth > MAX_DEPTH:
        raise InvalidValue(f"{what} is nested {depth} levels deep; at most {MAX_DEPTH} levels of arrays and "
                           "objects are allowed")
    return value


def json_object(raw: bytes | str | None, *, what: str = "request body") -> dict[str, Any]:
    """``raw`` as a JSON object; an empty body is ``{}`` (``null`` is not an object: refused)."""
    value = json_document(raw, what=what, empty={})
    if not isinstance(value, dict):
        raise InvalidValue(f"{what} must be a JSON object, got {_json_type(value)}")
    return value


def nesting_depth(value: Any) -> int:
    """Levels of arrays and objects in a decoded JSON value (iterative: safe at any depth)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def whole_number(value: Any, *, field: str, minimum: int, maximum: int) -> int:
    """``value`` if it is an int in ``[minimum, maximum]``; InvalidValue naming ``field`` otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum:
        return value
    raise InvalidValue(f"field '{field}' must be a whole number from {minimum} to {maximum}, got "
                       f"{_shown(value)}")


def decimal_text(value: Any) -> int | None:
    """The int of a string of ASCII digits (``"42"``); None for anything else (``"²"``, ``"4.0"``)."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() \
            and len(value.strip()) <= MAX_INT_DIGITS:
        return int(value.strip())
    return None


class _Refused(ValueError):
    """A token the decoder read but this module does not accept."""


def _no_constant(token: str) -> Any:
    raise _Refused(f"{token} is not a JSON value")


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {digits} digits is too long; at most {MAX_INT_DIGITS}")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text[:40]} is out of the range of a double")
    return value


def _json_type(value: Any) -> str:
    names = {type(None): "null", list: "an array", dict: "an object", str: "a string", bool: "a boolean",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, bool | int | float | str) or value is None else _json_type(value)
    return text if len(text) <= 60 else text[:57] + "..."
