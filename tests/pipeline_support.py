"""Helpers for tests that drive the pipeline against a real broker."""

from __future__ import annotations

import json
import subprocess
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from refledger.producers.publisher import AlliancePublisher
from refledger.producers.kafka_admin import create_topic

from tests.scenario_files import SCENARIOS


def publish(bootstrap: str, topic: str, records, partitions: int = 6) -> int:
    create_topic(bootstrap, topic, partitions)
    with AlliancePublisher(bootstrap, topic) as pub:
        for record in records:
            pub.publish(record)
        sent = pub.sent
    return sent


def consume_in_background(bootstrap: str, topic: str, db, until_idle: int = 5,
                          batch_records: int = 2000) -> subprocess.Popen:
    """`refledger consume` of ``topic`` into ``db`` as its own process, stopping after ``until_idle`` s idle;
    a commit every ``batch_records`` records, so that reads meant to land while it writes meet the ledger
    between many commits (the default batch would take a test's topic in one or two)."""
    return subprocess.Popen(
        [sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", bootstrap, "--db", str(db),
         "--topic", topic, "--group", f"{topic}-live", "--until-idle", str(until_idle),
         "--batch-records", str(batch_records)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def send_raw(bootstrap: str, topic: str, values, partition: int = 0) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for value in values:
        producer.send(topic, value=value, partition=partition)
    producer.flush()
    producer.close()


def read_topic(bootstrap: str, topic: str) -> dict[int, list[tuple[int, bytes]]]:
    """Every message of the topic, per partition, as (offset, value), in order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    end = consumer.end_offsets(parts)
    out = {tp.partition: [] for tp in parts}
    while any(consumer.position(tp) < end[tp] for tp in parts):
        for tp, records in consumer.poll(timeout_ms=1000, max_records=10_000).items():
            out[tp.partition].extend((r.offset, r.value) for r in records)
    consumer.close()
    return out


def stored_log(con, topic: str) -> dict[int, list[tuple[int, str]]]:
    rows = con.execute(
        'SELECT partition, "offset", event_id FROM events WHERE topic = ? ORDER BY partition, "offset"',
        [topic]).fetchall()
    out: dict[int, list[tuple[int, str]]] = {}
    for partition, offset, event_id in rows:
        out.setdefault(partition, []).append((offset, event_id))
    return out


def stats_json(runner_result) -> dict:
    return json.loads(runner_result.output)
