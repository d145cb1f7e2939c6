"""What fuzzing asks of every input, for `bench/fuzz.py` and its seeded run in the tests.

Three targets, each a function from bytes to a list of findings (empty: all is
well). A finding is any disagreement between readers, any exception other than
the codec's own errors, or an event the fold (or the rows written for it)
cannot take:

* ``message``: the bytes as a Kafka value: every reader of Avro bytes
  (`tests.readers_support.disagreements`), then the consumer's decode step,
  the events table's columns and the fold, as `consume` runs them;
* ``json``: the bytes as a `.jsonl` file: every line read by the codec and by
  the consumer's decode step alike, what is stored reads back, and the fold
  takes it;
* ``container``: the bytes as a `.avro` file: the container reader never
  raises, gives at most one unreadable rest (last, from a whole block's
  first byte, exactly the file's bytes from there), each event's message
  reads back as its record, and file ingest's path takes every item.

``SEEDS`` are valid inputs of each kind to mutate from; ``mutate`` is the
seeded mutation engine used where atheris is not (and by the tests).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

from refledger.consumers.batch import PendingBatch
from refledger.consumers.folding import LogFold, fold_items
from refledger.ledger.fold import PartitionFold
from refledger.schemas import codec
from refledger.schemas.codec import CodecError
from refledger.schemas.event_files import read_messages
from refledger.schemas.messages import AVRO, Message
from refledger.schemas.personal_data import personal_fields
from refledger.store.columns import EVENT_COLUMNS, arrow_rows
from refledger.store.ledger_file import BatchWrite

from tests.readers_support import SAMPLES, _consumer, disagreements, sample_messages

TARGETS = ("message", "json", "container")
_PRIMING = ("agreement-cps", "agreement-cpc", "click", "order")
_REPRIME_EVERY = 100  # the fold keeps what it folded: start afresh now and then, or it slows down


class _Folds:
    """One partition's fold that accepted inputs go into, one after another, primed with the
    samples' alliance (members, agreements, a click and its order, under ids of their own) so that
    damaged events are folded deep, not refused as unknown_shop. Each input's event ids get the
    input's number, so an input is never a duplicate of an earlier one (within an input they are)."""

    def __init__(self):
        self.current: PartitionFold | None = None
        self.used = 0

    def fold_for_next_input(self) -> PartitionFold:
        if self.current is None or self.used % _REPRIME_EVERY == 0:
            fold = PartitionFold()
            for shop in ("li-kids", "wang-bath"):
                fold.apply({**SAMPLES["member"], "event_id": f"prime-{shop}",
                            "member": {**SAMPLES["member"]["member"], "member_shop_id": shop}})
            for name in _PRIMING:
                fold.apply({**codec.validate_record(SAMPLES[name]), "event_id": f"prime-{name}"})
            self.current = fold
        self.used += 1
        return self.current

    def take(self, items: list) -> None:
        """Fold one input's items."""
        fold = self.fold_for_next_input()
        suffix = f"~{self.used}"
        fold_items({("t", 0): LogFold(fold)}, [
            item._replace(event=item.event._replace(event_id=item.event.event_id + suffix)) if item.record is None
            else item._replace(record={**item.record, "event_id": item.record["event_id"] + suffix})
            for item in items])


_FOLDS = _Folds()


def _consume(messages: list[Message], kafka_records: bool = False) -> PendingBatch:
    """The consumer's path for a batch, short of the store: decode, the event columns, the fold."""
    pending = PendingBatch(BatchWrite(source="fuzz"))
    consumer = _consumer()
    items = consumer.decode_messages(messages, pending, kafka_records)
    consumer.signatures.verify()  # as `process` does: no thread writes a verdict while the fold reads it
    if pending.write.events:
        arrow_rows(pending.write.events, EVENT_COLUMNS)
    if items:
        _FOLDS.take(items)
    return pending


def _guarded(target: str, check) -> list[str]:
    try:
        return check()
    except CodecError as error:
        return [f"{target}: the codec's {type(error).__name__} escaped a reader that should catch it: {error}"]
    except Exception as error:  # noqa: BLE001 - the finding itself
        return [f"{target}: {type(error).__name__}: {error}"]


def message_findings(data: bytes) -> list[str]:
    """The bytes as a Kafka value."""
    def check():
        found = disagreements(data)
        if not found:
            _consume([Message("t", 0, 0, data, AVRO, None)], kafka_records=True)
        return found
    return _guarded("message", check)


def _scratch(suffix: str, data: bytes) -> Path:
    handle, name = tempfile.mkstemp(suffix=suffix, prefix="fuzz-", dir=_SCRATCH_DIR)
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    return Path(name)


_SCRATCH_DIR = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def json_findings(data: bytes) -> list[str]:
    """The bytes as a JSON Lines file, read as `ingest` reads it."""
    def check():
        path = _scratch(".jsonl", data)
        try:
            messages = list(read_messages(path, "t", 0, 0))
        finally:
            path.unlink()
        found = []
        pending = _consume(messages)
        stored = {row.offset: row for row in pending.write.events}
        quarantined = dict(zip(pending.write.quarantine["offset"], pending.write.quarantine["reason"]))
        for msg in messages:
            try:
                expected = codec.record_from_json(msg.value)
            except CodecError as error:
                if quarantined.get(msg.offset) != error.reason:
                    found.append(f"json: {msg.position}: the codec says {error.reason}, the consumer "
                                 f"{quarantined.get(msg.offset) or 'stored it'}")
                continue
            row = stored.get(msg.offset)
            if personal_fields(expected):  # SPEC §4b: quarantined right after the shape, kept redacted
                if quarantined.get(msg.offset) != "personal_data":
                    found.append(f"json: {msg.position}: personal data not quarantined")
            elif row is None:
                found.append(f"json: {msg.position}: the codec reads an event the consumer quarantined "
                             f"{quarantined.get(msg.offset)}")
            elif codec.decode(row.avro) != expected:
                found.append(f"json: {msg.position}: the stored event reads back otherwise")
        return found
    return _guarded("json", check)


def container_findings(data: bytes) -> list[str]:
    """The bytes as an Avro container file, read as `ingest` reads it."""
    def check():
        path = _scratch(".avro", data)
        try:
            events = list(codec.iter_container(path))
            messages = list(read_messages(path, "t", 0, 0))
        finally:
            path.unlink()
        found = []
        rests = [n for n, event in enumerate(events) if event.offset is not None]
        if rests and (len(rests) > 1 or rests[0] != len(events) - 1):
            found.append("container: an unreadable rest that is not the last item")
        for event in events:
            if event.offset is not None:
                if event.rest != data[event.offset:]:
                    found.append("container: the rest is not the file's bytes from its offset")
                continue
            try:
                again = codec.decode(event.message)
            except CodecError as error:
                again = error.reason
            if event.record is not None and again != event.record:
                found.append(f"container: event {event.index} reads back as {again!r:.200}")
            if event.error is not None and again != event.error.reason:
                found.append(f"container: event {event.index} is {event.error.reason}, its message {again!r:.80}")
        if len(messages) != len(events):
            found.append(f"container: {len(events)} items but file ingest reads {len(messages)} messages")
        pending = _consume(messages)
        if pending.write.events_read != len(messages) or \
                len(pending.write.events) + pending.write.quarantined != len(messages):
            found.append("container: a message is neither stored nor quarantined")
        return found
    return _guarded("container", check)


FINDINGS = {"message": message_findings, "json": json_findings, "container": container_findings}


# ---------------------------------------------------------------- seeds and the seeded mutation engine


def _json_lines() -> list[bytes]:
    return [codec.record_to_json_line(codec.validate_record(record)).encode() for record in SAMPLES.values()]


def _container(records: list[dict], compression: str) -> bytes:
    path = _scratch(".avro", b"")
    try:
        codec.write_container(path, records, codec=compression)
        return path.read_bytes()
    finally:
        path.unlink()


def seeds(target: str) -> list[bytes]:
    """Valid inputs of the target's kind to start from."""
    if target == "message":
        return [message for _name, message in sample_messages()]
    records = list(SAMPLES.values())
    if target == "json":
        lines = _json_lines()
        return lines + [b"\n".join(lines)]
    return [_container(records[:4], "null"), _container(records, "null"), _container(records, "deflate")]


_INTERESTING_BYTES = (b"\x00", b"\x01", b"\x02", b"\x7f", b"\x80", b"\xff", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                      b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"\xc3\x01", b"Obj\x01")
_INTERESTING_JSON = (json.loads("[" * 70 + "]" * 70), 10**12, 10**12 + 1, -(10**12) - 1, 10**6 + 1, 2**63,
                     -(2**63) - 1, 10**400, 1.5, -0.0, "", "x" * 65, "\ud800", "🧸", "2026-11-01T10:00:00.000+08:00",
                     "9999-12-31T23:59:59.999Z", None, True, {}, [], "alliance", "*", "ABC", "cny",
                     "13800138000", "+86-138-0013-8000", "li@example.cn", "11010519491231002X")


def _mutate_json(line: bytes, rng: random.Random) -> bytes:
    """A JSON-aware mutation: one value somewhere replaced, a key dropped or one added."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict):
        return line
    node, path = obj, []
    while isinstance(node, (dict, list)) and node and rng.random() < 0.6:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        path.append((obj, rng.choice(list(obj))))
    parent, key = path[-1]
    choice = rng.random()
    if choice < 0.7:
        parent[key] = rng.choice(_INTERESTING_JSON)
    elif choice < 0.85 and isinstance(parent, dict):
        del parent[key]
    elif isinstance(parent, dict):
        parent[rng.choice(("extra", "signature", "view", "close"))] = rng.choice(_INTERESTING_JSON)
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")


_OPERATIONS = ("flip", "sign", "set", "interesting", "delete", "copy", "cut", "splice", "insert", "json")
_WEIGHTS = {"message": (3, 2, 1, 1, 1, 1, 1, 1, 1, 0), "container": (3, 2, 1, 1, 1, 1, 1, 1, 1, 0),
            "json": (1, 1, 1, 1, 1, 1, 1, 1, 1, 4)}


def mutate(data: bytes, pool: list[bytes], rng: random.Random, target: str) -> bytes:
    """One mutation of ``data`` (more now and then): a bit flipped, a varint's sign (its low bit)
    flipped, a byte set, bytes inserted, deleted or copied, a cut, a splice with another input,
    or (JSON) a value swapped for an awkward one."""
    raw = bytearray(data)
    for _ in range(1 if rng.random() < 0.6 else rng.randint(2, 4)):
        op = rng.choices(_OPERATIONS, _WEIGHTS[target])[0]
        at = rng.randrange(len(raw) + 1)
        last = min(at, len(raw) - 1)
        if op == "json":
            lines = bytes(raw).split(b"\n")
            n = rng.randrange(len(lines))
            lines[n] = _mutate_json(lines[n], rng)
            raw = bytearray(b"\n".join(lines))
        elif op == "flip" and raw:
            raw[last] ^= 1 << rng.randrange(8)
        elif op == "sign" and raw:
            raw[last] ^= 1
        elif op == "set" and raw:
            raw[last] = rng.randrange(256)
        elif op == "interesting":
            raw[at:at] = rng.choice(_INTERESTING_BYTES)
        elif op == "delete":
            del raw[at:at + rng.randint(1, 16)]
        elif op == "copy" and raw:
            start = rng.randrange(len(raw))
            raw[at:at] = raw[start:start + rng.randint(1, 32)]
        elif op == "cut":
            del raw[at:]
        elif op == "splice":
            other = rng.choice(pool)
            raw = raw[:at] + other[rng.randrange(len(other) + 1):]
        else:
            raw[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(raw)


def run_mutations(target: str, *, seed: int, executions: int | None = None, seconds: float | None = None,
                  clock=None) -> tuple[int, list[tuple[str, bytes]]]:
    """The seeded mutation engine: mutate the seeds (and what came of them) for a number of executions
    or seconds; returns the executions run and the findings with their inputs."""
    import time

    clock = clock or time.monotonic
    rng = random.Random(seed)
    pool = seeds(target)
    check = FINDINGS[target]
    findings: list[tuple[str, bytes]] = []
    runs, deadline = 0, None if seconds is None else clock() + seconds
    for data in pool:
        runs += 1
        findings += [(problem, data) for problem in check(data)]
    while (executions is None or runs < executions) and (deadline is None or clock() < deadline):
        data = mutate(rng.choice(pool), pool, rng, target)
        runs += 1
        found = check(data)
        findings += [(problem, data) for problem in found]
        if len(pool) < 500 and rng.random() < 0.05:
            pool.append(data)  # keep some offspring to mutate further
    return runs, findings
