"""Canonical JSON in the style of RFC 8785 (JCS): one byte string per value, so that hashes are stable.

- object members sorted by their names' UTF-16 code units, no whitespace, UTF-8 output;
- strings escaped minimally (``"``, ``\\``, the short escapes ``\\b \\f \\n \\r \\t``, other control
  characters as lowercase ``\\u00xx``), everything else written literally;
- numbers as ECMAScript writes them (integers exactly; ``1.0`` becomes ``1``, ``1e21`` stays ``1e+21``);
  NaN and infinities are rejected;
- ``datetime`` values become ISO-8601 UTC strings with microseconds and a ``Z`` (a naive datetime is
  taken to be UTC already), ``date`` values ``YYYY-MM-DD``; tuples are arrays; enums use their value.

Anything else (bytes, sets, arbitrary objects, non-string keys) is an error naming where it was found.
"""

from __future__ import annotations

import enum
import json
import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

__all__ = ["CanonicalJSONError", "canonical_json", "canonical_text", "encode_string", "iso_utc"]


class CanonicalJSONError(ValueError):
    """A value cannot be written as canonical JSON; the message names where it is."""


_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode


def encode_string(s: str) -> str:
    """The JCS encoding of one string, quotes included."""
    # fast path: printable text without quotes or backslashes needs no escaping (isprintable is False
    # for control characters and lone surrogates, which take the careful path below)
    if s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    if any("\ud800" <= ch <= "\udfff" for ch in s):
        raise CanonicalJSONError("string contains a lone surrogate, which is not valid Unicode")
    return json.dumps(s, ensure_ascii=False)


def _simple(value: Any, depth: int = 0) -> bool:
    """True when the C JSON encoder writes ``value`` exactly as JCS does: only dicts with BMP-only
    string keys, lists, strings, ints, booleans and None (no floats, dates, enums or tuples)."""
    t = type(value)
    if t is dict:
        if depth > 64:
            return False
        for k, v in value.items():
            if type(k) is not str or (not k.isascii() and max(k) > "\uffff"):
                return False
            if type(v) not in (str, int, bool, type(None)) and not _simple(v, depth + 1):
                return False
        return True
    if t is list:
        if depth > 64:
            return False
        return all(type(v) in (str, int, bool, type(None)) or _simple(v, depth + 1) for v in value)
    return t in (str, int, bool, type(None))


def iso_utc(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (naive datetimes are taken to be UTC)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _number(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        raise CanonicalJSONError(f"{x!r} cannot be written as JSON")
    if x == 0:
        return "0"
    if x.is_integer() and abs(x) < 2**53:  # exact integers; larger ones take the digit path below
        return str(int(x))
    # repr gives the shortest round-tripping digits (as ECMAScript does); re-lay them out per ES rules:
    # the value is 0.d1..dk x 10^n.
    _sign, dig, e = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, dig)).lstrip("0")
    stripped = digits.rstrip("0")
    e = int(e) + (len(digits) - len(stripped))
    digits = stripped
    point = len(digits) + e
    k, n = len(digits), point
    sign = "-" if x < 0 else ""
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        es = f"e+{e}" if e >= 0 else f"e-{-e}"
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + es
    return sign + out


def _key(name: str) -> bytes:
    return name.encode("utf-16-be", "surrogatepass")


def _write(value: Any, out: list[str], path: str) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, enum.Enum):
        _write(value.value, out, path)
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        try:
            out.append(_number(value))
        except CanonicalJSONError as exc:
            raise CanonicalJSONError(f"{path}: {exc}") from None
    elif isinstance(value, str):
        try:
            out.append(encode_string(value))
        except CanonicalJSONError as exc:
            raise CanonicalJSONError(f"{path}: {exc}") from None
    elif isinstance(value, datetime):
        out.append('"' + iso_utc(value) + '"')
    elif isinstance(value, date):
        out.append('"' + value.isoformat() + '"')
    elif isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise CanonicalJSONError(f"{path}: object key {k!r} is not a string")
        out.append("{")
        first = True
        for k in sorted(value, key=_key):
            if not first:
                out.append(",")
            first = False
            out.append(encode_string(k))
            out.append(":")
            _write(value[k], out, f"{path}.{k}")
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out, f"{path}[{i}]")
        out.append("]")
    else:
        raise CanonicalJSONError(f"{path}: a {type(value).__name__} cannot be written as canonical JSON")


def canonical_text(value: Any) -> str:
    """The canonical JSON text of ``value``."""
    if _simple(value):
        text = _dumps(value)
        if text.isascii():
            return text
        try:
            text.encode("utf-8")  # lone surrogates cannot be encoded: the careful path names them
            return text
        except UnicodeEncodeError:
            pass
    out: list[str] = []
    _write(value, out, "$")
    return "".join(out)


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes (UTF-8) of ``value``."""
    return canonical_text(value).encode("utf-8")
