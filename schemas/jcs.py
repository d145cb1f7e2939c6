"""RFC 8785, the JSON Canonicalization Scheme (JCS), for the values events hold.

``canonical(value)`` is the UTF-8 JSON text RFC 8785 prescribes for a value
made of dicts (string keys), lists, strings, integers, booleans and None:

* no whitespace;
* object members sorted by their keys as arrays of UTF-16 code units
  (RFC 8785 §3.2.3: "\\ud83d\\ude00" sorts before "\\ufb33", unlike a sort by
  code point);
* strings as ECMAScript's JSON.stringify writes them (§3.2.2.2): ``\\"``,
  ``\\\\``, ``\\b \\t \\n \\f \\r``, other characters below U+0020 as ``\\u00xx``
  in lower-case hex, everything else (non-ASCII, U+007F, U+2028) as itself;
* integers as their decimal digits (§3.2.2.3 for integers of I-JSON's exact
  range, |n| ≤ 2**53 − 1).

Events hold no floating-point numbers (amounts are integer minor units,
rates integer basis points), so a float is refused, as are integers outside
the exact range (SPEC §2's bounds keep every event's integers well inside
it) and strings that are not Unicode text (a lone surrogate): such a value
has no canonical form and raises ``ValueError``.

orjson writes strings exactly as §3.2.2.2 says (a test compares it with
Python's ``json`` on every code point) and keeps a dict's insertion order,
so the work here is sorting the keys.
"""

from __future__ import annotations

import orjson

MAX_EXACT = 2**53 - 1


def _utf16_key(key: str) -> bytes:
    # big-endian UTF-16 bytes compare as the sequence of code units does
    return key.encode("utf-16-be", "surrogatepass")


def _sorted(value):
    kind = type(value)
    if kind is dict:
        keys = value
        if len(value) > 1:
            try:
                # code point order is UTF-16 order for ASCII keys (the schema's field names)
                keys = sorted(value) if "".join(value).isascii() else sorted(value, key=_utf16_key)
            except TypeError:
                keys = value  # a key that is not a string: named below
        out = {}
        for key in keys:
            if type(key) is not str:
                raise ValueError(f"object keys must be strings, got {key!r}")
            item = value[key]
            out[key] = item if type(item) is str or item is None else _sorted(item)
        return out
    if kind is list or kind is tuple:
        return [_sorted(item) for item in value]
    if kind is int:
        if not -MAX_EXACT <= value <= MAX_EXACT:
            raise ValueError(f"integer {value} is outside I-JSON's exact range")
        return value
    if kind is str or kind is bool or value is None:
        return value
    raise ValueError(f"no canonical JSON for {kind.__name__} values in an event")


def canonical(value) -> bytes:
    """The RFC 8785 canonical JSON of ``value`` (UTF-8 bytes); ``ValueError`` if it has none."""
    try:
        return orjson.dumps(_sorted(value))
    except orjson.JSONEncodeError as exc:  # a lone surrogate: not Unicode text
        raise ValueError(f"no canonical JSON: {exc}") from exc


def canonical_presorted(value) -> bytes:
    """``canonical(value)`` for a value built with its members already in JCS order and holding
    only strings, dicts and lists (a fast path; a test holds it to ``canonical``)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"no canonical JSON: {exc}") from exc
