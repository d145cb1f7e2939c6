"""A stored event can never stop a restart.

Whatever bytes a reader accepted were stored, folded and committed; a
consumer that starts again rebuilds each partition's fold from those stored
events. Every damaged message any reader accepts goes into a ledger through
the consumer's batch path, the consumer restarts (in this process and with
the fold in its own process), folds on, and ends with the ledger of a
consumer that never stopped. And an event stored under rules that have
since become stricter, or whose stored bytes were damaged on disk, is named
and left out of the rebuilt state, never a crash on every start.
"""

from __future__ import annotations

import logging
from itertools import chain
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.consumers.batch import LogProcessor
from refledger.ledger.fold import PartitionFold
from refledger.replay.verify import verify
from refledger.schemas import codec, shape, traffic
from refledger.schemas.messages import AVRO, Message
from refledger.store.ledger_file import LedgerStore
from tests.readers_support import SAMPLES, bit_flips, codec_answer, sample_messages, truncations

ROOT = Path(__file__).resolve().parents[1]
ENTRY_COLUMNS = "topic, partition, seq, entry_id, event_id, shop_id, account, amount, hash"
PRIMING = ("member", "agreement-cps", "agreement-cpc")  # the samples' alliance, so damaged events fold deep


def _members() -> list[bytes]:
    """li-kids and wang-bath made members, so that shop events are folded, not unknown_shop."""
    out = []
    for n, shop in enumerate(("li-kids", "wang-bath")):
        record = {**SAMPLES["member"], "event_id": f"m-{n}", "member": {**SAMPLES["member"]["member"],
                                                                        "member_shop_id": shop}}
        out.append(codec.encode(record))
    return out


def accepted_damage() -> list[bytes]:
    """Every single-bit flip and truncation of every sample message that the codec reads as an event."""
    seen, out = set(), []
    for _name, message in sample_messages():
        for _at, damaged in chain(bit_flips(message), truncations(message)):
            if damaged not in seen and isinstance(codec_answer(damaged), dict):
                seen.add(damaged)
                out.append(damaged)
    return out


def the_log() -> list[bytes]:
    samples = dict(sample_messages())
    return _members() + [samples[f"v3-{name}"] for name in PRIMING] + accepted_damage()


def _messages(values: list[bytes], start: int) -> list[Message]:
    return [Message("shop-events", 0, start + i, value, AVRO, 1_800_000_000_000) for i, value in enumerate(values)]


def fold_into(path: Path, values: list[bytes], start: int, *, fold_worker: bool = False, batch: int = 400) -> None:
    """Run a consumer over the messages (as Kafka records, in batches) and stop it."""
    store = LedgerStore(path)
    processor = LogProcessor(store, PartitionFold, source="test", fold_worker=fold_worker)
    try:
        messages = _messages(values, start)
        for at in range(0, len(messages), batch):
            processor.commit(processor.process(messages[at:at + batch], kafka_records=True))
    finally:
        processor.close()
        store.close()


def ledger_of(path: Path):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return (con.execute(f"SELECT {ENTRY_COLUMNS} FROM entries ORDER BY topic, partition, seq").fetchall(),
                con.execute('SELECT "offset", event_id, reason FROM quarantine ORDER BY ALL').fetchall(),
                con.execute('SELECT "offset", avro FROM events ORDER BY "offset"').fetchall())
    finally:
        con.close()


def test_every_accepted_damaged_message_is_stored_folded_and_survives_restarts(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the fold process imports the fold from here
    log = the_log()
    assert len(log) > 1000
    third = len(log) // 3
    fold_into(tmp_path / "never-stopped.duckdb", log, 0)
    fold_into(tmp_path / "restarted.duckdb", log[:third], 0)
    fold_into(tmp_path / "restarted.duckdb", log[third:2 * third], third)                    # rebuilt in-process
    fold_into(tmp_path / "restarted.duckdb", log[2 * third:], 2 * third, fold_worker=True)   # in the fold process
    fold_into(tmp_path / "restarted.duckdb", [], len(log))                                  # and once more

    entries, quarantined, stored = ledger_of(tmp_path / "restarted.duckdb")
    assert (entries, quarantined, stored) == ledger_of(tmp_path / "never-stopped.duckdb")
    assert len(stored) > 800 and len(entries) > 50, "damaged events were stored and earned"
    assert all(isinstance(codec_answer(avro), dict) for _offset, avro in stored), "every stored event reads back"


@pytest.fixture
def looser_bounds(monkeypatch):
    """The rules as they were before SPEC bounded amounts to 10^12 minor units."""
    def loosen():
        monkeypatch.setattr(shape, "MAX_MINOR", 10**15)
        monkeypatch.setattr(traffic, "MAX_MINOR", 10**15)
    return loosen


def _order(event_id: str, order_id: str, price: int) -> bytes:
    order = SAMPLES["order"]
    return codec.encode({**order, "event_id": event_id, "order": {
        **order["order"], "order_id": order_id, "total_minor": price,
        "lines": [{"sku": "crib", "category": "care", "quantity": 1, "unit_price_minor": price}]}})


def test_an_event_stored_under_looser_rules_never_stops_a_restart(tmp_path, looser_bounds, monkeypatch, caplog):
    """A ledger written before amounts were bounded holds an order of 10^13 fen. On restart the
    codec rejects it; the consumer names it, leaves it out of the rebuilt state and folds on; verify
    names it too."""
    samples = dict(sample_messages())
    path = tmp_path / "ledger.duckdb"
    looser_bounds()
    before = _members() + [samples["v3-agreement-cps"], samples["v3-click"], _order("o-big", "big", 10**13)]
    fold_into(path, before, 0)
    monkeypatch.undo()  # today's rules
    with pytest.raises(codec.SchemaInvalid):
        codec.decode(before[-1])

    caplog.set_level(logging.ERROR, logger="refledger")
    fold_into(path, [_order("o-small", "small", 10_000)], len(before))
    assert "shop-events:0 offset 4 event o-big" in caplog.text
    assert "unit_price_minor" in caplog.text

    entries, _quarantined, stored = ledger_of(path)
    assert [offset for offset, _ in stored] == [0, 1, 2, 3, 4, 5]
    assert {event_id for _t, _p, _s, _id, event_id, *_ in entries} == {"o-big", "o-small"}, "both earned"

    con = duckdb.connect(str(path), read_only=True)
    try:
        result = verify(con)
    finally:
        con.close()
    assert not result["ok"]
    unreadable = [p for p in result["problems"] if p["check"] == "stored"]
    assert len(unreadable) == 1
    assert unreadable[0]["where"] == "shop-events:0 offset 4 event o-big"
    assert "unit_price_minor" in unreadable[0]["detail"]

    replayed = CliRunner().invoke(cli, ["replay", "--db", str(path), "--format", "json"], catch_exceptions=False)
    assert replayed.exit_code == 1, replayed.output  # the entries o-big caused differ, and are shown
    assert "o-big" in replayed.output


def test_stored_bytes_damaged_on_disk_never_stop_a_restart(tmp_path, caplog):
    samples = dict(sample_messages())
    path = tmp_path / "ledger.duckdb"
    fold_into(path, _members() + [samples["v3-agreement-cps"], samples["v3-click"]], 0)
    con = duckdb.connect(str(path))
    con.execute("""UPDATE events SET avro = ? WHERE "offset" = 3""", [samples["v3-click"][:20]])  # the disk did it
    con.close()

    caplog.set_level(logging.ERROR, logger="refledger")
    fold_into(path, [samples["v3-order"]], 4)
    assert "shop-events:0 offset 3 event c-1" in caplog.text and "undecodable" in caplog.text
    entries, quarantined, stored = ledger_of(path)
    assert len(stored) == 5 and not quarantined
    assert not entries, "without its click the order is nobody's"
    con = duckdb.connect(str(path), read_only=True)
    try:
        result = verify(con)
    finally:
        con.close()
    assert [(p["check"], p["where"], p["detail"]) for p in result["problems"]] == [
        ("stored", "shop-events:0 offset 3 event c-1", result["problems"][0]["detail"]),
        ("bulk", "all logs", "not run: 1 stored event(s) cannot be read")]
    assert result["problems"][0]["detail"].startswith("can no longer be read (undecodable: ")


def test_a_snapshot_this_version_cannot_read_never_stops_a_restart(tmp_path, caplog):
    """A snapshot of another layout (written by another version of refledger) whose digest still
    matches its checkpoint: the restart rebuilds the fold from the events instead."""
    from refledger.store.ledger_file import snapshot_state
    from refledger.store.snapshots import digest

    samples = dict(sample_messages())
    close = codec.encode({**SAMPLES["close"], "event_id": "x-9"})
    path = tmp_path / "ledger.duckdb"
    fold_into(path, _members() + [samples["v3-agreement-cps"], samples["v3-click"], close], 0)
    con = duckdb.connect(str(path))
    [(snapshot_digest, inline)] = con.execute("SELECT digest, state FROM snapshots").fetchall()
    old = snapshot_state(con, snapshot_digest, inline)
    other_layout = b"RLSNAP\x00" + old[7:]
    con.execute("UPDATE snapshots SET state = ?, digest = ?", [other_layout, digest(other_layout)])
    con.execute("UPDATE checkpoints SET snapshot_digest = ? WHERE snapshot_digest IS NOT NULL",
                [digest(other_layout)])
    con.close()

    caplog.set_level(logging.WARNING, logger="refledger")
    fold_into(path, [samples["v3-order"]], 5)
    assert "cannot be read by this version" in caplog.text
    entries, quarantined, _stored = ledger_of(path)
    assert {row[4] for row in entries} == {"o-1"} and not quarantined, "the click was folded again: o-1 earns"
