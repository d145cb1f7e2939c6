"""The local Kafka broker, topic admin and the `broker` commands, against real Kafka."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from kafka import KafkaAdminClient

from refledger import broker
from refledger.cli import cli
from refledger.cli_broker import broker as broker_cli
from refledger.producers.kafka_admin import KafkaAdminError, create_topic, partitions_for, wait_until_ready

pytestmark = pytest.mark.kafka


def test_the_session_broker_answers_metadata(kafka_bootstrap):
    wait_until_ready(kafka_bootstrap, timeout_s=10)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    assert cluster["cluster_id"]
    assert [b for b in cluster["brokers"] if not b.get("is_fenced")]


def test_create_topic_gives_six_partitions_and_is_idempotent(kafka_bootstrap):
    topic = f"orders-{uuid.uuid4().hex[:10]}"
    create_topic(kafka_bootstrap, topic)
    assert partitions_for(kafka_bootstrap, topic) == 6
    create_topic(kafka_bootstrap, topic)
    assert partitions_for(kafka_bootstrap, topic) == 6


def test_kafka_topic_fixture_gives_a_fresh_six_partition_topic(kafka_bootstrap, kafka_topic):
    assert partitions_for(kafka_bootstrap, kafka_topic) == 6


def test_partitions_for_a_missing_topic_is_an_error(kafka_bootstrap):
    with pytest.raises(KafkaAdminError, match="does not exist"):
        partitions_for(kafka_bootstrap, "no-such-topic-anywhere")


def test_cli_start_status_stop_round_trip(tmp_path):
    runner = CliRunner()
    port = broker.free_port()
    where = ["--port", str(port), "--dir", str(tmp_path / "broker")]
    try:
        started = runner.invoke(broker_cli, ["start", *where])
        assert started.exit_code == 0, started.output
        assert f"127.0.0.1:{port}" in started.output

        running = runner.invoke(broker_cli, ["status", *where, "--format", "json"])
        assert running.exit_code == 0, running.output
        shown = json.loads(running.output)
        assert shown["state"] == "running"
        assert shown["bootstrap"] == f"127.0.0.1:{port}"
        assert shown["pid"] > 0

        create_topic(shown["bootstrap"], "clicks")
        assert partitions_for(shown["bootstrap"], "clicks") == 6

        again = runner.invoke(broker_cli, ["start", *where])
        assert again.exit_code == 0, again.output
        assert f"pid {shown['pid']}" in again.output
    finally:
        stopped = runner.invoke(broker_cli, ["stop", *where])
    assert stopped.exit_code == 0, stopped.output

    after = runner.invoke(broker_cli, ["status", *where, "--format", "json"])
    assert json.loads(after.output)["state"] == "stopped"
    assert json.loads(after.output)["pid"] is None


def test_a_restarted_broker_keeps_its_topics(tmp_path):
    port = broker.free_port()
    try:
        info = broker.start(port, tmp_path)
        create_topic(info.bootstrap, "members")
        broker.stop(tmp_path)
        assert broker.status(tmp_path).state == "stopped"
        again = broker.start(port, tmp_path)
        assert again.pid != info.pid
        assert partitions_for(again.bootstrap, "members") == 6
    finally:
        broker.stop(tmp_path)


def _lingering_connections(port: int) -> int:
    """Sockets whose local port is ``port``, in TIME_WAIT (Linux: /proc/net/tcp and tcp6, state 06)."""
    rows = [row.split() for name in ("tcp", "tcp6")
            for row in Path("/proc/net", name).read_text().splitlines()[1:]]
    return sum(1 for row in rows if row[1].endswith(f":{port:04X}") and row[3] == "06")


def test_start_right_after_stop_while_a_client_was_connected(tmp_path):
    """The broker closes its clients' connections when it stops, and those linger in TIME_WAIT on its
    port for a minute; the operator's `broker start` right away must not take them for a busy port."""
    runner = CliRunner()
    port = broker.free_port()
    where = ["--port", str(port), "--dir", str(tmp_path / "broker")]
    client = None
    try:
        assert runner.invoke(broker_cli, ["start", *where]).exit_code == 0
        client = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        client.list_topics()  # a connection the broker will close on stop
        assert runner.invoke(broker_cli, ["stop", *where]).exit_code == 0
        assert _lingering_connections(port) > 0, "the broker's side of the connection lingers"
        again = runner.invoke(broker_cli, ["start", *where])
        assert again.exit_code == 0, again.output
        assert f"127.0.0.1:{port}" in again.output
    finally:
        if client is not None:
            client.close()
        runner.invoke(broker_cli, ["stop", *where])


def test_a_busy_port_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["broker", "start", "--port", str(port), "--dir", str(tmp_path / "b")]
        )
    assert result.exit_code == 1
    assert f"port {port}" in result.output and "--port" in result.output


def test_status_of_a_broker_never_started_says_stopped(tmp_path):
    result = CliRunner().invoke(broker_cli, ["status", "--dir", str(tmp_path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["state"] == "stopped"


def test_every_broker_command_has_an_example():
    for name, command in broker_cli.commands.items():
        assert "Example:" in (command.help or ""), name
    assert "Example:" in (broker_cli.help or "")
