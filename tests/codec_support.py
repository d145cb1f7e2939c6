"""Bytes the product never writes, for tests that feed readers bad input."""

from __future__ import annotations

from io import BytesIO

import fastavro

from refledger.schemas import codec
from refledger.schemas.versions import SchemaVersion, strip_logical_types

_PAYLOADS = ("view", "click", "order", "refund", "member", "agreement", "settlement", "payout", "adjustment",
             "close", "policy")
_WRITERS: dict[str, dict] = {}


def _writer(version: SchemaVersion) -> dict:
    if version.name not in _WRITERS:
        _WRITERS[version.name] = fastavro.parse_schema(strip_logical_types(version.schema()))
    return _WRITERS[version.name]


def encode_unchecked(record: dict, version: SchemaVersion = codec.CURRENT_VERSION) -> bytes:
    """A single-object message of a record under a schema version (the current one unless told)
    without the shape rules (a payload under the wrong type, say). Types must still fit the
    schema: fastavro raises otherwise."""
    writer = _writer(version)
    names = {field["name"] for field in writer["fields"]}
    datum = {name: None for name in _PAYLOADS + ("signature",) if name in names}
    datum.update(record)
    stream = BytesIO()
    stream.write(codec.MAGIC + version.fingerprint)
    fastavro.schemaless_writer(stream, writer, datum)
    return stream.getvalue()
