"""Bytes the product never writes, for tests that feed readers bad input."""

from __future__ import annotations

from io import BytesIO

import fastavro

from refledger.schemas import codec
from refledger.schemas.versions import strip_logical_types

_WRITER = fastavro.parse_schema(strip_logical_types(codec.CURRENT_VERSION.schema()))
_PAYLOADS = ("view", "click", "order", "refund", "member", "agreement", "settlement", "payout", "adjustment",
             "close", "policy")


def encode_unchecked(record: dict) -> bytes:
    """A single-object message of a record under the current schema without the shape rules (a
    payload under the wrong type, say). Types must still fit the schema: fastavro raises otherwise."""
    names = {field["name"] for field in _WRITER["fields"]}
    datum = {name: None for name in _PAYLOADS + ("signature",) if name in names}
    datum.update(record)
    stream = BytesIO()
    stream.write(codec.MAGIC + codec.CURRENT_FINGERPRINT)
    fastavro.schemaless_writer(stream, _WRITER, datum)
    return stream.getvalue()
