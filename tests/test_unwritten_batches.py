"""A batch the ledger did not take leaves a gap in each of its logs: nothing read after it from those
logs is written until they are read again from the ledger's positions (`LogProcessor.commit`).

A shared ledger refuses a batch when another writer has claimed one of its partitions (`FencedOut`);
the consumer then reads the logs that batch and the batches behind it held again, and goes on. Any
other failure (a full disk) stops all writing. Either way the ledger holds every event of a log at
most once and without a gap before it: these tests run `consume`'s loop against a stand-in for
Kafka, whose partitions are simulated alliances, and a real ledger file that refuses a chosen write.
"""

from __future__ import annotations

from collections import namedtuple

import duckdb
import pytest
from kafka import TopicPartition

from refledger.consumers import kafka_consumer
from refledger.consumers.batch import LogProcessor, NotWritten
from refledger.consumers.kafka_consumer import LedgerConsumer
from refledger.ledger.fold import PartitionFold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas import codec
from refledger.store.lake import FencedOut
from refledger.store.ledger_file import LedgerStore, StoreError

TOPIC = "alliance"
Record = namedtuple("Record", "topic partition offset value timestamp")


def partition_logs(partitions: int = 3) -> dict[int, list[Record]]:
    """Each partition a small simulated alliance's log, as Kafka hands out its records."""
    return {p: [Record(TOPIC, p, offset, codec.encode(record), 0) for offset, record in
                enumerate(simulate(SimulationConfig(seed=30 + p, visitors=40, days=6)))]
            for p in range(partitions)}


class StandInKafka:
    """What `LedgerConsumer` asks of kafka-python's consumer: each poll hands out up to ``step`` records of
    each partition the plan names for it (all of them once the plan is done), from where it was left or
    sought to."""

    def __init__(self, logs: dict[int, list[Record]], plan: list[list[int]], step: int = 100):
        self.logs, self.plan, self.step, self.polls = logs, plan, step, 0
        self.at = {TopicPartition(TOPIC, p): 0 for p in logs}
        self.listener = None

    def subscribe(self, topics, listener):
        self.listener = listener

    def partitions_for_topic(self, topic):
        return set(self.logs)

    def poll(self, timeout_ms=0, max_records=0):
        if self.listener is not None:  # the group's assignment comes with the first poll
            listener, self.listener = self.listener, None
            listener.on_partitions_assigned(set(self.at))
        partitions = self.plan[self.polls] if self.polls < len(self.plan) else sorted(self.logs)
        self.polls += 1
        polled = {}
        for p in partitions:
            tp = TopicPartition(TOPIC, p)
            records = self.logs[p][self.at[tp]:self.at[tp] + self.step]
            if records:
                polled[tp] = records
                self.at[tp] += len(records)
        return polled

    def seek(self, tp, offset):
        self.at[tp] = offset

    def seek_to_beginning(self, tp):
        self.at[tp] = 0

    def highwater(self, tp):
        return len(self.logs[tp.partition])

    def position(self, tp):
        return self.at[tp]

    def pause(self, *tps):
        pass

    def resume(self, *tps):
        pass

    def commit(self, offsets):
        pass

    def close(self, autocommit=True):
        pass


def refusing(monkeypatch, *refused: int, failure=None) -> list[dict]:
    """The ledger file refuses its writes numbered ``refused`` (from 1) as a shared ledger refuses a batch
    of a partition another writer claimed (or fails them with ``failure``); returns each write's positions."""
    write_batch, writes = LedgerStore.write_batch, []

    def write(self, batch):
        writes.append(dict(batch.positions))
        if len(writes) in refused:
            raise failure or FencedOut("another writer claimed partition 0", ())
        return write_batch(self, batch)

    monkeypatch.setattr(LedgerStore, "write_batch", write)
    return writes


def stored_offsets(db) -> dict[int, list[int]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute('SELECT partition, "offset" FROM events ORDER BY partition, "offset"').fetchall()
    finally:
        con.close()
    found: dict[int, list[int]] = {}
    for partition, offset in rows:
        found.setdefault(partition, []).append(offset)
    return found


def consume_with(monkeypatch, tmp_path, kafka: StandInKafka, **options):
    monkeypatch.setattr(kafka_consumer, "connect", lambda *args, **kwargs: kafka)
    store = LedgerStore(tmp_path / "ledger.duckdb")
    processor = LogProcessor(store, PartitionFold, source="test", fold_worker=options.pop("fold_worker", False))
    try:
        member = LedgerConsumer("stand-in", processor, topic=TOPIC, until_idle=0.2, max_records=300, **options)
        return member.run()
    finally:
        processor.close()
        store.close()


@pytest.mark.parametrize("fold_worker", [False, True], ids=["fold in process", "fold process"])
def test_after_a_refused_batch_every_partition_ends_whole_each_event_once(monkeypatch, tmp_path, fold_worker):
    """The first batch (partitions 0 and 1) is refused while the next ones are read; partition 2 first
    comes in a batch read before the member has recovered. In the end every partition's events are in the
    ledger, each once."""
    logs = partition_logs()
    writes = refusing(monkeypatch, 1)
    consume_with(monkeypatch, tmp_path, StandInKafka(logs, plan=[[0, 1], [0, 1], [0, 1], [0, 1, 2]]),
                 fold_worker=fold_worker)
    assert len(writes) > 1
    assert stored_offsets(tmp_path / "ledger.duckdb") == {p: list(range(len(log))) for p, log in logs.items()}


def test_a_refusal_holds_back_only_what_was_read_after_it_from_the_same_partitions(tmp_path, monkeypatch):
    """In the alliance's words: partition 0's batch is refused; partition 1's batch, read meanwhile from
    a reading of partition 1 that nothing failed in, is written; partition 0's next batch, read before
    partition 0 was read again, is not, nor a batch holding both. Read again, both go on."""
    logs = partition_logs(2)
    writes = refusing(monkeypatch, 1)
    store = LedgerStore(tmp_path / "ledger.duckdb")
    processor = LogProcessor(store, PartitionFold, source="test")
    try:
        refused = processor.process(logs[0][:100], kafka_records=True)
        other = processor.process(logs[1][:100], kafka_records=True)
        behind = processor.process(logs[0][100:200], kafka_records=True)
        both = processor.process(logs[0][200:300] + logs[1][100:200], kafka_records=True)
        with pytest.raises(FencedOut):
            processor.commit(refused)
        processor.commit(other)
        for batch in (behind, both):
            with pytest.raises(NotWritten) as unwritten:
                processor.commit(batch)
            assert unwritten.value.recoverable
        assert processor.logs_to_reread() == {(TOPIC, 0), (TOPIC, 1)}
        processor.reread(processor.logs_to_reread())
        assert processor.logs_to_reread() == set()
        assert store.positions() == {(TOPIC, 1): 100}
        processor.commit(processor.process(logs[0][:300] + logs[1][100:200], kafka_records=True))
        assert store.positions() == {(TOPIC, 0): 300, (TOPIC, 1): 200}
    finally:
        processor.close()
        store.close()
    assert len(writes) == 3
    assert stored_offsets(tmp_path / "ledger.duckdb") == {0: list(range(300)), 1: list(range(200))}


def test_a_full_disk_stops_all_writing(tmp_path, monkeypatch):
    """Any failure but a refusal: no batch after it is written, whatever is read again, and it says why."""
    logs = partition_logs(2)
    writes = refusing(monkeypatch, 1, failure=StoreError("cannot write to ledger: No space left on device"))
    store = LedgerStore(tmp_path / "ledger.duckdb")
    processor = LogProcessor(store, PartitionFold, source="test")
    try:
        failed = processor.process(logs[0][:100], kafka_records=True)
        with pytest.raises(StoreError):
            processor.commit(failed)
        processor.reread({(TOPIC, 0), (TOPIC, 1)})
        with pytest.raises(NotWritten, match="No space left") as unwritten:
            processor.commit(processor.process(logs[1][:100], kafka_records=True))
        assert not unwritten.value.recoverable
    finally:
        processor.close()
        store.close()
    assert len(writes) == 1
    assert stored_offsets(tmp_path / "ledger.duckdb") == {}


def test_a_member_whose_disk_fills_stops_consume_and_says_why(monkeypatch, tmp_path):
    """`consume --members 2`: one member's write fails on a full disk. `consume` stops, both members
    with it, and raises that failure, instead of returning the other member's summary as if all went
    well."""
    logs = partition_logs(2)
    writes = refusing(monkeypatch, 2, failure=StoreError("cannot write to ledger: No space left on device"))
    stand_ins = iter([StandInKafka({0: logs[0]}, plan=[]), StandInKafka({1: logs[1]}, plan=[])])
    monkeypatch.setattr(kafka_consumer, "connect", lambda *args, **kwargs: next(stand_ins))
    store = LedgerStore(tmp_path / "ledger.duckdb")
    processor = LogProcessor(store, PartitionFold, source="test")
    try:
        with pytest.raises(StoreError, match="No space left"):
            kafka_consumer.consume("stand-in", processor, topic=TOPIC, until_idle=30, members=2, max_records=300,
                                   handle_signals=False)
    finally:
        processor.close()
        store.close()
    assert len(writes) >= 2


def test_two_members_both_refused_each_read_their_own_partition_again(monkeypatch, tmp_path):
    """`consume --members 2` on a shared ledger, both members fenced at once (the process stalled): B's
    batch of partition 1 is refused, then A's of partition 0. A recovers first; B must still read
    partition 1 again from the ledger, or its first events would never be written."""
    import threading

    logs = partition_logs(2)
    refusing(monkeypatch, 1, 2)
    stand_ins = {0: StandInKafka({0: logs[0]}, plan=[]), 1: StandInKafka({1: logs[1]}, plan=[])}
    store = LedgerStore(tmp_path / "ledger.duckdb")
    processor = LogProcessor(store, PartitionFold, source="test")
    lock = threading.Lock()

    def member(partition):
        monkeypatch.setattr(kafka_consumer, "connect", lambda *args, **kwargs: stand_ins[partition])
        return LedgerConsumer("stand-in", processor, topic=TOPIC, max_records=300, lock=lock)

    def poll_once(m) -> bool:  # one turn of `run`'s loop; False once there was nothing to read
        polled = m.consumer.poll()
        if polled:
            m._fold_and_submit(polled)
        else:
            m.finish_pending()
        return bool(polled)

    a, b = member(0), member(1)
    try:
        poll_once(b)
        b._pending[0][0].exception()  # B's batch refused
        poll_once(a)
        a._pending[0][0].exception()  # then A's
        a.finish_pending()            # A recovers first
        while poll_once(a) | poll_once(b):
            pass
        for m in (a, b):
            m.finish_pending()
            m._writer.shutdown()
    finally:
        processor.close()
        store.close()
    assert stored_offsets(tmp_path / "ledger.duckdb") == {p: list(range(len(log))) for p, log in logs.items()}
