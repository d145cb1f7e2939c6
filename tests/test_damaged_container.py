"""A damaged `.avro` event file: what can be read is folded, the rest is quarantined with its byte offset.

A container file is a header and blocks of events. When a block (or the
header) cannot be read, nothing after it can be trusted: the events of the
whole blocks before it are folded, and the rest of the file from the start
of the damaged block becomes one quarantine row, `undecodable`, at
``FILE@BYTE``, with the bytes kept. Events read = folded + quarantined +
skipped still holds (SPEC §12.6), `verify` agrees, and ingest goes on with
the next file. Every single-bit flip and every cut of a small file is
tried: no event is ever lost without a quarantine row.
"""

from __future__ import annotations

import json
from itertools import chain
from pathlib import Path

import duckdb
import fastavro
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas import codec
from refledger.schemas.codec import Undecodable, iter_container
from refledger.schemas.event_files import read_records, write_event_file
from tests.scenario_files import SCENARIOS


def run(*args, code: int = 0) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def block_starts(path: Path) -> list[tuple[int, int]]:
    """(byte offset, events) of each block of a container file."""
    with open(path, "rb") as stream:
        return [(block.offset, block.num_records) for block in fastavro.block_reader(stream)]


@pytest.fixture(scope="module")
def alliance_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("events") / "alliance.avro"
    write_event_file(simulate(SimulationConfig(seed=5, visitors=200, days=20)), path)
    assert len(block_starts(path)) >= 4
    return path


def damaged_copy(source: Path, target: Path, damage) -> Path:
    data = bytearray(source.read_bytes())
    target.write_bytes(bytes(damage(data)))
    return target


def quarantined_rows(db: Path) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("""SELECT position, reason, stage, event_id, raw, detail FROM quarantine
                              ORDER BY batch_id, "offset" """).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("how", ["cut", "flipped byte"])
def test_the_rest_of_a_damaged_file_is_quarantined_at_its_byte_offset(alliance_file, tmp_path, how):
    blocks = block_starts(alliance_file)
    broken_at, _ = blocks[2]
    before = sum(n for _, n in blocks[:2])

    def damage(data: bytearray) -> bytearray:
        if how == "cut":
            return data[:broken_at + 100]
        data[broken_at + 200] ^= 0xFF
        return data

    damaged = damaged_copy(alliance_file, tmp_path / "alliance.avro", damage)
    good = SCENARIOS / "baby-care.jsonl"
    db = tmp_path / "ledger.duckdb"
    summary = json.loads(run("ingest", damaged, good, "--db", db, "--format", "json"))
    lines = sum(1 for line in good.read_text().splitlines() if line.strip())
    assert summary["events_read"] == before + 1 + lines
    [(position, reason, stage, event_id, raw, detail)] = [
        row for row in quarantined_rows(db) if row[0].startswith("alliance.avro")]
    assert (position, reason, stage, event_id) == (f"alliance.avro@{broken_at}", "undecodable", "decode", None)
    assert raw == damaged.read_bytes()[broken_at:], "the unreadable rest is kept"
    assert detail.startswith(f"unreadable Avro container from byte {broken_at} ")
    stats = json.loads(run("stats", "--db", db, "--format", "json"))
    assert stats["events_read"] == stats["events_stored"] + stats["duplicates_skipped"] + 1
    assert json.loads(run("verify", "--db", db, "--format", "json"))["ok"], "read = folded + quarantined + skipped"
    [row] = [q for q in json.loads(run("quarantine", "--db", db, "--format", "json"))
             if q["position"].startswith("alliance.avro")]
    assert row["reason"] == "undecodable"


@pytest.mark.parametrize("damage", [
    lambda data: b"Obk\x01" + data[4:],                             # not the container magic
    lambda data: data.replace(b'"name": "refledger.events.Event"', b'"name": "refledger.events.Evenu"', 1)
    if b'"name": "refledger.events.Event"' in data else data.replace(b"refledger.events.Event", b"refledger.evenus.Event", 1),
    lambda data: data[:40],                                          # cut inside the header
], ids=["magic", "schema", "cut"])
def test_a_file_whose_header_is_damaged_is_quarantined_whole(tmp_path, damage):
    source = tmp_path / "source.avro"
    write_event_file([codec.record_from_json(line) for line in
                      (SCENARIOS / "baby-care.jsonl").read_text().splitlines() if line.strip()], source)
    damaged = damaged_copy(source, tmp_path / "alliance.avro", damage)
    assert damaged.read_bytes() != source.read_bytes()
    db = tmp_path / "ledger.duckdb"
    run("ingest", damaged, "--db", db)
    [(position, reason, _stage, _id, raw, _detail)] = quarantined_rows(db)
    assert (position, reason, raw) == ("alliance.avro@0", "undecodable", damaged.read_bytes())


def test_ingesting_the_repaired_file_folds_the_rest(alliance_file, tmp_path):
    blocks = block_starts(alliance_file)
    damaged = damaged_copy(alliance_file, tmp_path / "alliance.avro", lambda data: data[:blocks[-1][0] + 10])
    db = tmp_path / "ledger.duckdb"
    run("ingest", damaged, "--db", db)
    run("ingest", alliance_file, "--db", db)
    whole = tmp_path / "whole.duckdb"
    run("ingest", alliance_file, "--db", whole)
    assert json.loads(run("balances", "--db", db, "--format", "json")) == \
        json.loads(run("balances", "--db", whole, "--format", "json"))


def test_produce_rejects_the_unreadable_rest_and_reads_the_events_before_it(alliance_file, tmp_path):
    blocks = block_starts(alliance_file)
    damaged = damaged_copy(alliance_file, tmp_path / "alliance.avro", lambda data: data[:blocks[1][0] + 5])
    read = list(read_records(damaged))
    assert all(error is None for _position, _record, error in read[:-1]) and len(read) == blocks[0][1] + 1
    position, record, error = read[-1]
    assert (position, record) == (f"alliance.avro@{blocks[1][0]}", None)
    assert error.startswith("undecodable: unreadable Avro container from byte ")


# ---------------------------------------------------------------- every flip and cut of a small file

def _without_docs(node):
    if isinstance(node, dict):
        return {key: _without_docs(value) for key, value in node.items() if key != "doc"}
    if isinstance(node, list):
        return [_without_docs(item) for item in node]
    return node


def small_file(path: Path) -> int:
    """A container of six events in blocks of about two, uncompressed, with a short header;
    returns how many events it holds."""
    records = [codec.record_from_json(line) for line in
               (SCENARIOS / "baby-care.jsonl").read_text().splitlines() if line.strip()][:6]
    schema = fastavro.parse_schema(_without_docs(codec.CURRENT_VERSION.schema()))
    with open(path, "wb") as stream:
        fastavro.writer(stream, schema, [codec.validate_record(r) for r in records], codec="null", sync_interval=100)
    return len(records)


def _blocks(path: Path) -> list[tuple[int, int, int]]:
    with open(path, "rb") as stream:
        return [(block.offset, block.offset + block.size, block.num_records)
                for block in fastavro.block_reader(stream)]


def _flips(data: bytes, positions):
    raw = bytearray(data)
    for at in positions:
        for bit in range(8):
            raw[at] ^= 1 << bit
            yield bytes(raw)
            raw[at] ^= 1 << bit


def test_no_flip_or_cut_of_a_file_loses_an_event_without_a_quarantined_rest(tmp_path):
    """Every bit of every block and of the header's start and sync marker flipped, the file cut at
    every length from the end of its header on (and every 50 bytes inside it): either every event is read, or the events of the whole blocks before the damage are,
    followed by the rest of the file from that block's first byte. A cut exactly between two
    blocks is the one damage nothing can tell: it reads as a shorter file (a container holds no
    count of its events)."""
    path = tmp_path / "small.avro"
    count = small_file(path)
    original = path.read_bytes()
    blocks = _blocks(path)
    assert len(blocks) >= 3
    header_end = blocks[0][0]
    boundaries = {header_end: 0} | {end: sum(n for _, e, n in blocks if e <= end) for _, end, _ in blocks}

    def check(damaged: bytes, cut: bool) -> str | None:
        path.write_bytes(damaged)
        events = list(iter_container(path))
        read = [e for e in events if e.offset is None]
        rest = [e for e in events if e.offset is not None]
        if not rest:
            if cut:
                return None if boundaries.get(len(damaged)) == len(read) else "a cut lost events unsaid"
            return None if len(read) == count else f"{count - len(read)} events lost unsaid"
        if len(rest) > 1 or events[-1] is not rest[0] or not isinstance(rest[0].error, Undecodable):
            return "the rest is not the last item"
        tail = rest[0]
        if tail.rest != damaged[tail.offset:]:
            return "the rest is not the file's bytes from its offset"
        if tail.offset not in (0, *boundaries) or len(read) != boundaries.get(tail.offset, 0):
            return f"the rest starts at byte {tail.offset}, after {len(read)} events"
        return None

    positions = chain(range(16), range(header_end - 16, len(original)))
    found = [problem for damaged in _flips(original, positions) if (problem := check(damaged, False))]
    cuts = chain(range(0, header_end - 16, 50), range(header_end - 16, len(original)))  # the schema: sampled
    found += [problem for length in cuts if (problem := check(original[:length], True))]
    assert found == []
