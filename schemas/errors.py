"""Exceptions raised for input the codec cannot turn into a record.

Each carries ``reason``, the SPEC section 4 quarantine reason code, so callers
can quarantine the input without knowing the exception classes.
"""

from __future__ import annotations


class CodecError(ValueError):
    """Input that is not a valid event; ``reason`` is its quarantine code."""

    reason: str = "undecodable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Undecodable(CodecError):
    """Bytes or text that cannot be read at all: bad magic, unknown schema, truncated, not JSON."""

    reason = "undecodable"


class SchemaInvalid(CodecError):
    """Readable input that breaks the event shape; ``field`` names the offending field."""

    reason = "schema_invalid"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot hold (lone surrogates) escaped, so messages can be stored."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def invalid(field: str, problem: str) -> SchemaInvalid:
    """A :class:`SchemaInvalid` whose message starts with the field path."""
    field = _encodable(field)
    return SchemaInvalid(f"{field}: {_encodable(problem)}", field=field)
