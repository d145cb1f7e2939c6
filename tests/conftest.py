"""Shared pytest fixtures. Kafka fixtures never skip: no broker is a failure."""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests import catalog_env, kafka_env

# bench/mutation.py runs each mutant's tests with `--hypothesis-profile=mutation`: the same
# examples on every run, none remembered from earlier runs (see tests/examples.py)
settings.register_profile("mutation", derandomize=True, database=None)


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """Bootstrap address ("host:port") of a real Kafka broker for the whole session."""
    with kafka_env.kafka_broker_or_fail() as bootstrap:
        yield bootstrap


@pytest.fixture
def kafka_topic(kafka_bootstrap, request):
    """A fresh topic with 6 partitions that no other test uses; returns its name."""
    return kafka_env.fresh_topic(kafka_bootstrap, request.node.name)


@pytest.fixture(scope="session")
def lake_catalog():
    """A running local PostgreSQL catalog (`refledger catalog`) for the whole session."""
    with catalog_env.local_catalog() as info:
        yield info


@pytest.fixture
def lake(lake_catalog, tmp_path, request):
    """A new, empty ledger on DuckLake (its own catalog database and data path)."""
    return catalog_env.fresh_lake(lake_catalog, tmp_path, request.node.name)
