"""Event files: JSON Lines (`.jsonl`) and Avro container files (`.avro`).

`read_messages` turns a file into `Message`s for the batch processor without
decoding them, so a bad line becomes a quarantine row with its file and
line (`alliance.jsonl:12`; an Avro event by its number, `alliance.avro#12`),
not an exception. A container file damaged from some byte on ends with one
`DAMAGED` message holding the rest of the file, quarantined `undecodable` at
`alliance.avro@BYTE`. A file that cannot be opened or read raises
`EventFileError` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

from refledger.schemas.messages import AVRO, DAMAGED, JSON, Message, decode_message
from refledger.schemas import codec

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
AVRO_SUFFIXES = (".avro",)


class EventFileError(Exception):
    """An event file cannot be opened or read."""


def file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return JSON
    if suffix in AVRO_SUFFIXES:
        return AVRO
    raise EventFileError(f"{path}: unknown file type {suffix!r} (expected .jsonl or .avro)")


def read_messages(path: str | Path, topic: str, partition: int, first_offset: int) -> Iterator[Message]:
    """The file's events in file order, numbered from `first_offset`."""
    path = Path(path)
    kind = file_kind(path)
    offset = first_offset
    try:
        if kind == JSON:
            with path.open("rb") as fh:
                for lineno, line in enumerate(fh, start=1):
                    line = line.rstrip(b"\r\n")
                    if not line.strip():
                        continue
                    yield Message(topic, partition, offset, line, JSON, None, f"{path.name}:{lineno}")
                    offset += 1
        else:
            for event in codec.iter_container(path):
                if event.offset is None:
                    yield Message(topic, partition, offset, event.message, AVRO, None,
                                  f"{path.name}#{event.index + 1}")
                else:  # the unreadable rest of the file, from that byte on: one undecodable message
                    yield Message(topic, partition, offset, event.rest, DAMAGED, None,
                                  f"{path.name}@{event.offset}", str(event.error))
                offset += 1
    except OSError as exc:
        raise EventFileError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_records(path: str | Path) -> Iterator[tuple[str, dict | None, str | None]]:
    """(position, record or None, error) per event, for publishing files."""
    for msg in read_messages(path, "file", 0, 0):
        try:
            yield msg.position, decode_message(msg), None
        except codec.CodecError as exc:
            yield msg.position, None, f"{exc.reason}: {exc}"


def write_event_file(records: Iterable[dict], path: str | Path) -> int:
    """Write records as JSON Lines (``.jsonl``) or an Avro container (``.avro``); returns how many."""
    path = Path(path)
    if file_kind(path) == AVRO:
        return codec.write_container(path, records)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(codec.record_to_json_line(record) + "\n")
            count += 1
    return count
