"""Events between bytes, JSON Lines and records: the codec every source and sink uses.

Wire format (Avro single-object encoding)::

    C3 01 | fingerprint (8 bytes, little-endian CRC-64-AVRO of the writer schema's
          |              Parsing Canonical Form) | Avro binary body

``encode`` always writes with the current (newest) schema. ``decode`` looks the
fingerprint up among all versions under ``schemas/v*/`` and resolves the body
to the current schema. Both return or take a *record* (docs/architecture.md,
"The record"): the JSON Lines layout with times as ``int`` epoch milliseconds,
only the payload named by ``type`` present, agreement defaults filled, and
``signature`` present only when the event carries one.

Errors are values of two kinds, each with ``.reason`` the SPEC section 4 code:
:class:`Undecodable` (bytes or text that cannot be read at all) and
:class:`SchemaInvalid` (readable, but breaks the event shape; the message
names the field).
"""

from __future__ import annotations

import copy
import json
import os
import re
from hashlib import blake2b
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from io import BytesIO
from pathlib import Path

import fastavro

from refledger.schemas.conform import ConverterOptions, TimeForm, compile_converter, compile_int_check
from refledger.schemas.errors import CodecError, SchemaInvalid, Undecodable, invalid
from refledger.schemas.jsonform import record_to_json_object
from refledger.schemas.shape import check_shape, datum_to_record
from refledger.schemas.timestamps import format_utc_millis, parse_utc_millis
from refledger.schemas.traffic import read_purchase, read_traffic
from refledger.schemas.versions import SchemaVersion, load_versions, strip_logical_types

__all__ = [
    "canonical_message",
    "content_digest",
    "decode_canonical",
    "CURRENT_FINGERPRINT",
    "CURRENT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "SCHEMA_VERSIONS",
    "CodecError",
    "ContainerEvent",
    "SchemaInvalid",
    "Undecodable",
    "canonical_body",
    "current_schema",
    "decode",
    "encode",
    "format_time",
    "iter_container",
    "MAX_JSON_DEPTH",
    "parse_json",
    "parse_time",
    "read_container",
    "record_from_json",
    "record_to_json",
    "record_to_json_line",
    "validate_record",
    "write_container",
]

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8

SCHEMA_VERSIONS: tuple[SchemaVersion, ...] = load_versions()
CURRENT_VERSION: SchemaVersion = SCHEMA_VERSIONS[-1]
CURRENT_FINGERPRINT: bytes = CURRENT_VERSION.fingerprint
_CURRENT_HEADER = MAGIC + CURRENT_FINGERPRINT


def _parse_plain(version: SchemaVersion) -> dict:
    """fastavro schema of a version with logical types stripped: times stay ``int`` millis."""
    return fastavro.parse_schema(strip_logical_types(version.schema()))


def _build_readers() -> Mapping[bytes, tuple[dict, dict | None]]:
    """One (writer schema, reader schema or None when no resolution is needed) per fingerprint."""
    readers: dict[bytes, tuple[dict, dict | None]] = {}
    current = _parse_plain(CURRENT_VERSION)
    for version in SCHEMA_VERSIONS:
        if version.fingerprint == CURRENT_FINGERPRINT:
            readers[version.fingerprint] = (current, None)
        else:
            readers.setdefault(version.fingerprint, (_parse_plain(version), current))
    return readers


_READERS = _build_readers()
_PLAIN_WRITER = _READERS[CURRENT_FINGERPRINT][0]
_DOCUMENTED_CURRENT = fastavro.parse_schema(CURRENT_VERSION.schema())

_FROM_JSON = compile_converter(CURRENT_VERSION.schema(), ConverterOptions(times=TimeForm.TEXT))
_FROM_RECORD = compile_converter(CURRENT_VERSION.schema(), ConverterOptions(times=TimeForm.MILLIS))
_CANONICAL = compile_converter(CURRENT_VERSION.schema(), ConverterOptions(times=TimeForm.MILLIS, sort_maps=True))
_INT_BEYOND_32_BITS = compile_int_check(CURRENT_VERSION.schema())  # fastavro reads an int as any varint


def current_schema() -> dict:
    """The current schema, parsed by fastavro, docs and logical types kept (a fresh copy)."""
    return copy.deepcopy(_DOCUMENTED_CURRENT)


# ---------------------------------------------------------------- single-object messages


def _write_body(stream: BytesIO, datum: dict) -> bytes:
    fastavro.schemaless_writer(stream, _PLAIN_WRITER, datum)
    return stream.getvalue()


def _checked_datum(record: Mapping, converter=_FROM_RECORD) -> dict:
    datum = converter(record)
    check_shape(datum)
    return datum


def validate_record(record: Mapping) -> dict:
    """A checked copy of ``record`` in normal form (defaults filled); raises :class:`SchemaInvalid`."""
    return datum_to_record(_checked_datum(record))


def encode(record: Mapping) -> bytes:
    """Single-object Avro message of a record under the current schema; raises :class:`SchemaInvalid`."""
    stream = BytesIO()
    stream.write(_CURRENT_HEADER)
    return _write_body(stream, _checked_datum(record))


def _read_datum(data: bytes) -> dict:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise Undecodable(f"expected bytes, got {type(data).__name__}")
    if len(data) < HEADER_SIZE:
        raise Undecodable(f"too short for a single-object message: {len(data)} bytes, need at least {HEADER_SIZE}")
    if data[:2] != MAGIC:
        raise Undecodable(f"bad magic {bytes(data[:2]).hex()}, expected c301 (Avro single-object encoding)")
    writer_and_reader = _READERS.get(bytes(data[2:HEADER_SIZE]))
    if writer_and_reader is None:
        raise Undecodable(f"unknown schema fingerprint {bytes(data[2:HEADER_SIZE]).hex()}")
    stream = BytesIO(data)
    stream.seek(HEADER_SIZE)
    try:
        datum = fastavro.schemaless_reader(stream, *writer_and_reader)
    except Exception as error:  # any failure to read the body means the bytes are not an event
        raise Undecodable(f"unreadable Avro body: {type(error).__name__}: {error}") from None
    if stream.tell() != len(data):
        raise Undecodable(f"{len(data) - stream.tell()} trailing bytes after the Avro body")
    int_beyond = _INT_BEYOND_32_BITS(datum)
    if int_beyond:
        raise Undecodable(f"unreadable Avro body: {int_beyond}")
    return datum


def decode(data: bytes) -> dict:
    """The record in a single-object message written with any known schema version.

    Raises :class:`Undecodable` or :class:`SchemaInvalid`.
    """
    datum = _read_datum(data)
    check_shape(datum)
    return datum_to_record(datum)


def canonical_body(record: Mapping) -> bytes:
    """Avro body of the record under the current schema, map keys sorted.

    Equal for two encodings (JSON line, Avro of any version) of the same
    event, different when any field differs: the comparison behind SPEC
    section 4 ``conflicting_duplicate``.
    """
    return _write_body(BytesIO(), _checked_datum(record, _CANONICAL))


def canonical_message(record: Mapping) -> bytes:
    """Single-object message of the record's canonical body (current schema, map keys sorted)."""
    return _CURRENT_HEADER + canonical_body(record)


def content_digest(canonical: bytes, signature: str | None) -> bytes:
    """A digest of an event's content without its signature, from its canonical message: what SPEC §4
    compares to tell an identical re-delivery from a conflicting duplicate ("the duplicate comparison
    ignores signature"). The signature is the current schema's last field: a null branch (one byte),
    or branch 1 and the string."""
    if signature is None:
        body = canonical[:-1]
    else:
        raw = signature.encode("utf-8")
        body = canonical[:-(1 + _varint_size(2 * len(raw)) + len(raw))]
    return blake2b(body, digest_size=16).digest()


def _varint_size(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _maps_sorted(datum: dict) -> bool:
    agreement = datum.get("agreement")
    if not agreement:
        return True
    rates = agreement.get("category_rates_bp")
    return not rates or len(rates) < 2 or list(rates) == sorted(rates)


def decode_canonical(data: bytes) -> tuple[dict, bytes]:
    """The record of a single-object message and its canonical message.

    A message written with the current schema whose maps are in key order
    already is its canonical form, so its bytes are returned as they are and
    nothing is re-encoded (the fast path of every live event). Encoders that
    pad varints or split arrays into several blocks are not supported by the
    fast path: such bytes are kept as received, so a re-delivery of the same
    event in other bytes is a conflicting duplicate, quarantined, never lost.
    Messages of older versions are resolved and re-encoded. Current-schema
    views and clicks, most of the traffic, are read by the fixed-layout
    reader of ``schemas.traffic`` (same record, a third of the time), and so
    are orders and refunds.
    """
    if type(data) is bytes:
        record = read_traffic(data, CURRENT_FINGERPRINT) or read_purchase(data, CURRENT_FINGERPRINT)
        if record is not None:
            return record, data
    datum = _read_datum(data)
    check_shape(datum)
    record = datum_to_record(datum)
    if data[2:HEADER_SIZE] == CURRENT_FINGERPRINT and _maps_sorted(datum):
        return record, bytes(data)
    return record, canonical_message(record)


# ---------------------------------------------------------------- JSON Lines


def parse_time(text: str, field: str = "occurred_at") -> int:
    """Epoch milliseconds of a UTC time in JSON Lines text form; :class:`SchemaInvalid` names ``field``."""
    if type(text) is not str:
        raise invalid(field, f"expected a UTC time string, got {type(text).__name__}")
    try:
        return parse_utc_millis(text)
    except ValueError as error:
        raise invalid(field, str(error)) from None


def format_time(millis: int) -> str:
    """JSON Lines text form (``2026-11-01T10:00:00.000Z``) of epoch milliseconds."""
    return format_utc_millis(millis)


# An event nests four levels deep (an order's lines); JSON nested deeper than this is not an event
# whoever reads it. Checked before parsing, so the answer never depends on how deep the reader's own
# call stack is (the parser's recursion limit does).
MAX_JSON_DEPTH = 64
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_JSON_TOKENS_IN_BYTES = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _nested_too_deep(text: str | bytes | bytearray) -> bool:
    """Whether JSON text opens more than MAX_JSON_DEPTH arrays and objects inside each other
    (brackets inside strings do not count)."""
    text_is_str = isinstance(text, str)
    openers = "[{" if text_is_str else b"[{"
    if text.count(openers[0:1]) + text.count(openers[1:2]) <= MAX_JSON_DEPTH:
        return False  # nearly every line: too few brackets to look closer
    depth = 0
    for token in (_JSON_TOKENS if text_is_str else _JSON_TOKENS_IN_BYTES).findall(text):
        if len(token) == 1:  # a bracket; a string token has its two quotes at least
            depth += 1 if token in openers else -1
            if depth > MAX_JSON_DEPTH:
                return True
    return False


def parse_json(line: str | bytes | bytearray) -> object:
    """The JSON value of one line of text; :class:`Undecodable` when it is not JSON, or nests
    arrays and objects deeper than ``MAX_JSON_DEPTH``."""
    if _nested_too_deep(line):
        raise Undecodable(f"not an event: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as error:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise Undecodable(f"not valid JSON: {error}") from None


def record_from_json(obj_or_line: Mapping | str | bytes | bytearray) -> dict:
    """The record of a JSON Lines event, given as one line of text or as the parsed object.

    Invalid JSON raises :class:`Undecodable`; JSON of the wrong shape raises
    :class:`SchemaInvalid` naming the field. Times must be UTC text with at most
    millisecond precision (see :mod:`schemas.timestamps`).
    """
    obj = parse_json(obj_or_line) if isinstance(obj_or_line, (str, bytes, bytearray)) else obj_or_line
    return datum_to_record(_checked_datum(obj, _FROM_JSON))


def record_to_json(record: Mapping) -> dict:
    """The JSON Lines object of a record (times as ``...T..:..:...mmmZ`` text)."""
    return record_to_json_object(validate_record(record))


def record_to_json_line(record: Mapping) -> str:
    """One JSON Lines line (no trailing newline) for a record."""
    return json.dumps(record_to_json(record), ensure_ascii=False)


# ---------------------------------------------------------------- Avro container files

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class ContainerEvent:
    """One event read from a container file, or the file's unreadable rest.

    ``index`` counts events from 0 in file order. ``message`` is the event as a
    single-object message under the current schema (the bytes to keep when it
    is quarantined). Exactly one of ``record`` and ``error`` is set. When the
    file cannot be read from some point on (a damaged header or block, a cut),
    the last item has ``rest``: the bytes from byte ``offset`` of the file to
    its end, with an :class:`Undecodable` ``error`` and no ``message``.
    """

    index: int
    message: bytes
    record: dict | None
    error: CodecError | None
    offset: int | None = None
    rest: bytes = b""


def _times_to_millis(value: object) -> object:
    """Undo fastavro's logical-type conversion of container data: datetimes back to epoch millis."""
    if isinstance(value, dict):
        return {key: _times_to_millis(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_times_to_millis(item) for item in value]
    if isinstance(value, datetime):
        return (value - _EPOCH) // _ONE_MS
    return value


def _container_event(index: int, datum: dict) -> ContainerEvent:
    datum = _times_to_millis(datum)
    stream = BytesIO()
    stream.write(_CURRENT_HEADER)
    # an int beyond 32 bits (fastavro reads an int as any varint) sits in a payload, a union branch,
    # which the writer refuses here: the block is then unreadable, and iter_container keeps its rest
    message = _write_body(stream, datum)
    try:
        check_shape(datum)
    except SchemaInvalid as error:
        return ContainerEvent(index, message, None, error)
    return ContainerEvent(index, message, datum_to_record(datum), None)


CONTAINER_MAGIC = b"Obj\x01"


def _block_data(block) -> list[dict]:
    """Every datum of a container block, read before any is given out; the block must hold
    exactly as many events as it says (a damaged count would otherwise drop events silently)."""
    data = list(block)
    if block.bytes_.tell() != len(block.bytes_.getbuffer()):
        raise ValueError(f"the block says it holds {block.num_records} events and has bytes beyond them")
    return data


def iter_container(path: str | os.PathLike) -> Iterator[ContainerEvent]:
    """Every event of an Avro container file written with any known schema version, errors included.

    Blocks are read whole: a damaged header or block (or a cut) ends the iteration with one item
    holding the unreadable rest of the file from the start of that block, with its byte offset (the
    whole file, from byte 0, when no event could be read), so nothing read is lost and nothing
    damaged is taken for an event.
    """
    index = 0
    with open(path, "rb") as stream:
        offset = 0  # where the part not read yet starts: after the header, then after each whole block
        try:
            if stream.read(len(CONTAINER_MAGIC)) != CONTAINER_MAGIC:  # fastavro does not look
                raise ValueError("not an Avro container file: it does not start with Obj\\x01")
            stream.seek(0)
            blocks = fastavro.block_reader(stream, reader_schema=_DOCUMENTED_CURRENT)
            offset = stream.tell()
            for block in blocks:
                events = [_container_event(index + n, datum) for n, datum in enumerate(_block_data(block))]
                yield from events
                index += len(events)
                offset = block.offset + block.size
        except Exception as error:  # a broken header or block: nothing after it can be trusted
            if not index:
                offset = 0  # nothing read (a header that does not resolve fails only at the first event)
            stream.seek(offset)
            rest = stream.read()
            problem = (f"unreadable Avro container from byte {offset} ({len(rest)} bytes to the end of the file, "
                       f"after {index} events): {type(error).__name__}: {error}")
            yield ContainerEvent(index, b"", None, Undecodable(problem), offset, rest)


def read_container(path: str | os.PathLike) -> Iterator[dict]:
    """The records of an Avro container file; raises the first :class:`CodecError` met."""
    for event in iter_container(path):
        if event.error is not None:
            raise event.error
        yield event.record


def write_container(path: str | os.PathLike, records: Iterable[Mapping], *, codec: str = "deflate") -> int:
    """Write records to an Avro container file under the current schema; returns how many.

    Every record is checked first (:class:`SchemaInvalid` leaves no file behind).
    """
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    count = 0

    def checked() -> Iterator[dict]:
        nonlocal count
        for record in records:
            yield _checked_datum(record)
            count += 1

    try:
        with open(partial, "wb") as stream:
            fastavro.writer(stream, _DOCUMENTED_CURRENT, checked(), codec=codec, validator=False)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return count
