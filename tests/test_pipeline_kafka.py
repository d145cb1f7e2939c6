"""The event pipeline against a real Apache Kafka broker (never skipped)."""

from __future__ import annotations

import json
import struct
import threading
import time

import duckdb
import pytest
from click.testing import CliRunner

from refledger.consumers.batch import LogProcessor
from refledger.consumers.kafka_consumer import LedgerConsumer
from refledger.ledger.fold import PartitionFold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.cli import cli
from refledger.store.ledger_file import LedgerStore
from refledger.schemas import codec
from tests.codec_support import encode_unchecked
from tests.pipeline_support import SCENARIOS, publish, read_topic, send_raw, stored_log

pytestmark = pytest.mark.kafka


def run_cli(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_produce_then_consume_stores_every_event_once(kafka_bootstrap, kafka_topic, tmp_path):
    db = tmp_path / "night-market.duckdb"
    source = SCENARIOS / "night-market.jsonl"
    run_cli("produce", source, "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic)
    consumed = json.loads(run_cli("consume", "--bootstrap-servers", kafka_bootstrap, "--db", db,
                                  "--topic", kafka_topic, "--group", f"{kafka_topic}-g",
                                  "--until-idle", 4, "--format", "json").output)
    stats = json.loads(run_cli("stats", "--db", db, "--format", "json").output)

    lines = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    distinct_ids = {line["event_id"] for line in lines}
    on_kafka = read_topic(kafka_bootstrap, kafka_topic)
    # c-1 comes three times: once, once more identical (skipped), once different (stored in the log, quarantined).
    assert stats["events"] == len(distinct_ids) + 1
    assert stats["duplicates_skipped"] == 1
    assert consumed["events_read"] == sum(len(v) for v in on_kafka.values())
    assert stats["positions"] == {f"{kafka_topic}:{p}": len(msgs) for p, msgs in on_kafka.items()}
    reasons = {(q["event_id"], q["reason"])
               for q in json.loads(run_cli("quarantine", "--db", db, "--format", "json").output)}
    assert ("c-1", "conflicting_duplicate") in reasons
    # Every partition holds its own copy of the alliance events, in log order.
    con = duckdb.connect(str(db), read_only=True)
    for partition, rows in stored_log(con, kafka_topic).items():
        ids = [eid for _, eid in rows]
        assert ids[:3] == ["m-1", "m-2", "m-3"], partition
        offsets = [o for o, _ in rows]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    con.close()


def test_batch_records_bounds_each_transaction_and_the_ledger_is_the_same(kafka_bootstrap, kafka_topic, tmp_path):
    """An operator short of memory asks for smaller batches: every transaction holds at most that many
    records, and the ledger is the one the default batches write."""
    sent = publish(kafka_bootstrap, kafka_topic, simulate(SimulationConfig(seed=8, events=6_000)))
    ledgers = {}
    for records in (None, 1000):
        db = tmp_path / f"ledger-{records}.duckdb"
        run_cli("consume", "--bootstrap-servers", kafka_bootstrap, "--db", db, "--topic", kafka_topic,
                "--group", f"{kafka_topic}-{records}", "--until-idle", 3,
                *(("--batch-records", records) if records else ()))
        con = duckdb.connect(str(db), read_only=True)
        sizes = [n for (n,) in con.execute("SELECT events_read FROM batches WHERE events_read > 0").fetchall()]
        ledgers[records] = con.execute("SELECT topic, partition, seq, entry_id, amount, hash FROM entries "
                                       "ORDER BY ALL").fetchall()
        con.close()
        assert sum(sizes) == sent  # (the alliance's own events go to every partition)
        if records:
            assert max(sizes) <= records and len(sizes) >= 6
    assert ledgers[1000] == ledgers[None] and len(ledgers[None]) > 100


def test_two_group_members_split_the_partitions_without_loss_or_duplicate(kafka_bootstrap, kafka_topic,
                                                                          tmp_path):
    records = list(simulate(SimulationConfig(seed=3, events=6000, bad_rate=0.0)))
    store = LedgerStore(tmp_path / "ledger.duckdb")
    processor = LogProcessor(store, PartitionFold, source="test")
    lock = threading.Lock()
    members = [LedgerConsumer(kafka_bootstrap, processor, topic=kafka_topic, group=f"{kafka_topic}-g",
                              until_idle=8, lock=lock, client_id=f"member-{i}") for i in range(2)]
    threads = [threading.Thread(target=m.run) for m in members]
    for t in threads:
        t.start()
    # the traffic comes once the group has settled, so that neither member reads it all alone
    deadline = time.monotonic() + 30
    while not all(m.assigned for m in members) and time.monotonic() < deadline:
        time.sleep(0.05)
    publish(kafka_bootstrap, kafka_topic, records)
    on_kafka = read_topic(kafka_bootstrap, kafka_topic)
    for t in threads:
        t.join()

    assert all(m.summary.events_read > 0 for m in members), "both members must get partitions"
    assert sum(m.summary.events_read for m in members) == sum(len(v) for v in on_kafka.values())
    stored = stored_log(store.con, kafka_topic)
    expected = {p: [(off, codec.decode(value)["event_id"]) for off, value in msgs]
                for p, msgs in on_kafka.items()}
    assert stored == expected
    wal = tmp_path / "ledger.duckdb.wal"
    assert store.checkpoint_seconds > 0, "idle members fold the write-ahead log into the file"
    assert not wal.exists() or wal.stat().st_size == 0
    store.close()


def _schema_invalid_message() -> bytes:
    """Well-formed Avro whose payload does not match its type."""
    record = codec.record_from_json(json.loads((SCENARIOS / "baby-care.jsonl").read_text().splitlines()[5]))
    broken = dict(record)
    broken["type"] = "order"  # a click payload under type "order"
    return encode_unchecked(broken)


def test_bad_bytes_are_quarantined_and_consumption_goes_on(kafka_bootstrap, kafka_topic, tmp_path):
    good = [codec.record_from_json(line) for line in (SCENARIOS / "baby-care.jsonl").read_text().splitlines()]
    publish(kafka_bootstrap, kafka_topic, good[:6])
    unknown_fingerprint = b"\xc3\x01" + struct.pack("<q", 1234567) + b"\x02ab"
    send_raw(kafka_bootstrap, kafka_topic, [b"not avro at all", unknown_fingerprint, _schema_invalid_message()],
             partition=0)
    publish(kafka_bootstrap, kafka_topic, good[6:])

    db = tmp_path / "ledger.duckdb"
    run_cli("consume", "--bootstrap-servers", kafka_bootstrap, "--db", db, "--topic", kafka_topic,
            "--group", f"{kafka_topic}-g", "--until-idle", 4)
    rows = json.loads(run_cli("quarantine", "--db", db, "--format", "json").output)
    decode_stage = [r for r in rows if r["stage"] == "decode"]
    assert [r["reason"] for r in decode_stage] == ["undecodable", "undecodable", "schema_invalid"]
    assert all(r["position"].startswith(f"{kafka_topic}:0:") for r in decode_stage)
    stats = json.loads(run_cli("stats", "--db", db, "--format", "json").output)
    assert stats["events"] == len({r["event_id"] for r in good})
    on_kafka = read_topic(kafka_bootstrap, kafka_topic)
    assert stats["positions"][f"{kafka_topic}:0"] == len(on_kafka[0])
