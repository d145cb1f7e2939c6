"""Which real Kafka broker the tests use, and fresh topics on it.

`kafka_broker()` yields a bootstrap address ("host:port"), choosing in order:

1. `$KAFKA_BOOTSTRAP_SERVERS` when set (a broker someone already runs);
2. a throwaway `apache/kafka` container through testcontainers, only when a
   Docker engine answers a ping (a docker client alone is not enough);
3. the local KRaft broker of `refledger.broker` on a free port in a
   temporary directory, stopped when the session ends; also used when the
   container does not come up.

Tests that need Kafka never skip: when none of these gives a broker,
`NoKafkaBroker` says what was tried and what to do.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import uuid
from contextlib import ExitStack, contextmanager
from typing import Iterator

import pytest

from refledger import broker
from refledger.producers.kafka_admin import KafkaAdminError, create_topic, wait_until_ready

KAFKA_IMAGE = "apache/kafka:4.3.1"
DOCKER_PING_TIMEOUT_S = 2
BROKER_WAIT_S = 90.0
TOPIC_PARTITIONS = 6


class NoKafkaBroker(RuntimeError):
    """No real Kafka broker could be found or started for the tests."""


@contextmanager
def kafka_broker() -> Iterator[str]:
    """Yield the bootstrap address of a running Kafka broker; clean up afterwards."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if configured:
        yield _answering(
            configured, 15.0, "KAFKA_BOOTSTRAP_SERVERS is set but no broker answers there",
            "Start that broker, or unset the variable to let the tests start their own.")
        return
    started = _start_container() if docker_engine_answers() else None
    if started is not None:
        container, bootstrap = started
        try:
            yield _answering(
                bootstrap, BROKER_WAIT_S, f"the {KAFKA_IMAGE} container does not answer",
                "See `docker logs` of the container, or set KAFKA_BOOTSTRAP_SERVERS.")
        finally:
            container.stop()
        return
    with _local_broker() as bootstrap:
        yield bootstrap


@contextmanager
def kafka_broker_or_fail() -> Iterator[str]:
    """`kafka_broker()`, with "no broker" reported as a plain pytest failure."""
    with ExitStack() as stack:
        try:
            bootstrap = stack.enter_context(kafka_broker())
        except NoKafkaBroker as exc:
            message = str(exc)
        else:
            yield bootstrap
            return
    pytest.fail(message, pytrace=False)


def _answering(bootstrap: str, timeout_s: float, problem: str, remedy: str) -> str:
    try:
        wait_until_ready(bootstrap, timeout_s=timeout_s)
    except KafkaAdminError as exc:
        raise NoKafkaBroker(f"{problem} ({bootstrap}): {exc}\n{remedy}") from exc
    return bootstrap


def docker_engine_answers() -> bool:
    """True when a Docker engine answers a ping within a couple of seconds."""
    try:
        import docker

        client = docker.from_env(timeout=DOCKER_PING_TIMEOUT_S)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _start_container():
    """(container, bootstrap) of a single-node KRaft container like docker-compose.yml, or None.

    The broker is published on a host port chosen up front, so the advertised
    listener can name it.
    """
    try:
        from testcontainers.core.container import DockerContainer

        host_port = broker.free_port()
        container = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, host_port)
        host = container.get_docker_client().host()
        for key, value in _container_env(host, host_port).items():
            container.with_env(key, value)
        container.start()
        return container, f"{host}:{host_port}"
    except Exception as exc:
        print(f"kafka_env: {KAFKA_IMAGE} did not start ({exc}); using the local broker",
              file=sys.stderr)
        return None


def _container_env(host: str, host_port: int) -> dict[str, str]:
    return {
        "CLUSTER_ID": "g8JsMN2X7p0wzzWB9G-IwA",
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{host}:{host_port}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_NUM_PARTITIONS": "6",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
    }


@contextmanager
def _local_broker() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="refledger-kafka-") as directory:
        try:
            info = broker.start(
                broker.free_port(), directory, wait_s=BROKER_WAIT_S, exit_with_parent=True
            )
        except broker.BrokerError as exc:
            raise NoKafkaBroker(
                "no Kafka broker for the tests: KAFKA_BOOTSTRAP_SERVERS is not set, no Docker "
                f"engine answers, and the local broker did not start:\n{exc}\n"
                "Fix the local broker (java 17+ and mvn on PATH), or point "
                "KAFKA_BOOTSTRAP_SERVERS at a running broker."
            ) from exc
        try:
            yield info.bootstrap
        finally:
            broker.stop(directory)


def fresh_topic(bootstrap: str, label: str = "test", partitions: int = TOPIC_PARTITIONS) -> str:
    """Create a topic no other test uses, named after `label`, and return its name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")[:80] or "test"
    name = f"{slug}-{uuid.uuid4().hex[:10]}"
    create_topic(bootstrap, name, partitions=partitions)
    return name
