"""Shared pytest fixtures. Kafka fixtures never skip: no broker is a failure."""

from __future__ import annotations

import pytest

from tests import kafka_env


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """Bootstrap address ("host:port") of a real Kafka broker for the whole session."""
    with kafka_env.kafka_broker_or_fail() as bootstrap:
        yield bootstrap


@pytest.fixture
def kafka_topic(kafka_bootstrap, request):
    """A fresh topic with 6 partitions that no other test uses; returns its name."""
    return kafka_env.fresh_topic(kafka_bootstrap, request.node.name)
