"""Topic administration and readiness checks against a Kafka cluster.

Thin helpers over kafka-python's `KafkaAdminClient`, used by the local broker,
the CLI and the tests:

- `wait_until_ready(bootstrap, timeout_s)` blocks until a broker answers a
  metadata request and lists at least one unfenced broker.
- `create_topic(bootstrap, topic, partitions=6)` creates a topic if missing
  (an existing topic is fine) and returns once metadata shows every partition
  with a leader.
- `partitions_for(bootstrap, topic)` counts a topic's partitions.
- `message_limit(bootstrap, topic)`: the largest message the topic takes.
- `grant_alliance_roles(bootstrap, topic, group, shop=, ledger=)`: the ACLs of
  a secured broker (shops write the topic, the ledger's group reads it).

Each takes the `login` to use on a broker that asks for one.

Infrastructure failures raise `KafkaAdminError` with what was tried.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ConfigResource, ConfigResourceType, NewTopic,
    ResourcePattern, ResourceType, UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError, TopicAlreadyExistsError, TopicAuthorizationFailedError

from refledger.schemas.kafka_client import BOOTSTRAP_TIMEOUT_MS, KafkaLogin, KafkaUnreachable, connect, port_open

PROBE_INTERVAL_S = 0.1
# The broker's own default for message.max.bytes, taken when the topic's setting cannot be read
# (a client allowed to write a topic is not always allowed to read its configuration).
BROKER_DEFAULT_MESSAGE_BYTES = 1_048_588


class KafkaAdminError(Exception):
    """The cluster cannot be reached or refuses an administrative request."""


@contextmanager
def admin_client(bootstrap: str, timeout_s: float = 10.0, login: KafkaLogin | None = None
                 ) -> Iterator[KafkaAdminClient]:
    """A `KafkaAdminClient` for `bootstrap`, logged in as `login`, closed on exit."""
    timeout_ms = max(int(timeout_s * 1000), 1000)
    try:
        client = connect(KafkaAdminClient, bootstrap, login, client_id="refledger-admin",
                         bootstrap_timeout_ms=min(timeout_ms, BOOTSTRAP_TIMEOUT_MS), request_timeout_ms=timeout_ms)
    except KafkaError as exc:
        raise KafkaAdminError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


def cluster_answers(bootstrap: str, timeout_s: float = 5.0, login: KafkaLogin | None = None) -> bool:
    """One probe: does a broker at `bootstrap` answer metadata with a live broker?"""
    if not port_open(bootstrap, timeout_s=min(timeout_s, 1.0)):
        return False
    try:
        with admin_client(bootstrap, timeout_s, login) as client:
            cluster = client.describe_cluster()
    except (KafkaAdminError, KafkaError, KafkaUnreachable, OSError):
        return False
    return any(not b.get("is_fenced", False) for b in cluster.get("brokers", []))


def wait_until_ready(bootstrap: str, timeout_s: float = 60.0, login: KafkaLogin | None = None) -> None:
    """Block until a broker at `bootstrap` answers metadata, or raise KafkaAdminError."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if cluster_answers(bootstrap, timeout_s=max(min(remaining, 5.0), 0.5), login=login):
            return
        if time.monotonic() >= deadline:
            raise KafkaAdminError(
                f"no Kafka broker answered at {bootstrap} within {timeout_s:.0f}s; "
                "start one with `refledger broker start` or check the address"
            )
        time.sleep(PROBE_INTERVAL_S)


def create_topic(
    bootstrap: str, topic: str, partitions: int = 6, timeout_s: float = 30.0, login: KafkaLogin | None = None
) -> None:
    """Create `topic` with `partitions` partitions (replication 1) unless it exists.

    Idempotent: an existing topic is accepted as it is, also by a client that
    may not create topics (a shop on a secured broker). Returns once metadata
    shows every partition of the topic with a leader.
    """
    with admin_client(bootstrap, timeout_s, login) as client:
        try:
            client.create_topics(
                [NewTopic(topic, partitions, 1)], timeout_ms=int(timeout_s * 1000)
            )
        except TopicAlreadyExistsError:
            pass
        except TopicAuthorizationFailedError as exc:
            if topic not in client.list_topics():
                raise KafkaAdminError(
                    f"topic {topic!r} does not exist at {bootstrap} and this client may not create it; "
                    "the alliance's operator creates it (`refledger broker start --secure --topic` does)"
                ) from exc
        except KafkaError as exc:
            raise KafkaAdminError(f"cannot create topic {topic!r} at {bootstrap}: {exc}") from exc
        try:
            client.wait_for_topics([topic], timeout_ms=int(timeout_s * 1000))
        except KafkaError as exc:
            raise KafkaAdminError(
                f"topic {topic!r} at {bootstrap} has partitions without a leader: {exc}"
            ) from exc


def partitions_for(bootstrap: str, topic: str, timeout_s: float = 10.0, login: KafkaLogin | None = None) -> int:
    """The number of partitions of `topic`; KafkaAdminError if it does not exist."""
    with admin_client(bootstrap, timeout_s, login) as client:
        try:
            described = client.describe_topics([topic])
        except KafkaError as exc:
            raise KafkaAdminError(f"cannot describe topic {topic!r} at {bootstrap}: {exc}") from exc
    for entry in described:
        if entry.get("name") == topic and entry.get("error_code", 0) == 0:
            return len(entry.get("partitions", []))
    raise KafkaAdminError(f"topic {topic!r} does not exist at {bootstrap}")


def message_limit(bootstrap: str, topic: str, timeout_s: float = 10.0, login: KafkaLogin | None = None) -> int:
    """The largest message, in bytes, that `topic` takes (its `max.message.bytes`, which follows the
    broker's `message.max.bytes` unless set for the topic); the broker's default when the
    configuration cannot be read."""
    key = "max.message.bytes"
    with admin_client(bootstrap, timeout_s, login) as client:
        try:
            described = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {key: None})],
                                                config_filter="all")
            value = described["topic"][topic][key]["value"]
            return int(value)
        except (KafkaError, KeyError, TypeError, ValueError):
            return BROKER_DEFAULT_MESSAGE_BYTES


def grant_alliance_roles(bootstrap: str, topic: str, group: str, *, shop: KafkaLogin, ledger: KafkaLogin,
                         login: KafkaLogin | None = None, timeout_s: float = 10.0) -> None:
    """The logins and ACLs of a secured alliance broker, set again (idempotent) by `login`, who
    must be allowed to (the operator, a super user):

    - `shop` (the shops' integrations) may log in with its SCRAM password, write `topic` and
      read its configuration (to size its messages); it may not read any topic nor join a group;
    - `ledger` (the ledger's consumer, archive, replay) may log in, read `topic` and use the
      consumer group `group`; it may not write.

    A secured broker allows nothing else; its super users everything.
    """
    def allow(user, operation, kind, name):
        return ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW,
                   ResourcePattern(kind, name, ACLResourcePatternType.LITERAL))

    credentials = [UserScramCredentialUpsertion(role.username, role.mechanism, role.password)
                   for role in (shop, ledger)]
    acls = [allow(shop.username, ACLOperation.WRITE, ResourceType.TOPIC, topic),
            allow(shop.username, ACLOperation.DESCRIBE_CONFIGS, ResourceType.TOPIC, topic),
            allow(ledger.username, ACLOperation.READ, ResourceType.TOPIC, topic),
            allow(ledger.username, ACLOperation.READ, ResourceType.GROUP, group)]
    with admin_client(bootstrap, timeout_s, login) as client:
        try:
            refused = {user: why for user, why in client.alter_user_scram_credentials(credentials).items() if why}
            result = client.create_acls(acls)
        except KafkaError as exc:
            raise KafkaAdminError(f"cannot grant the alliance's roles at {bootstrap}: {exc}") from exc
    if refused:
        who = repr(login.username) if login else "a client without a login"
        raise KafkaAdminError(f"cannot grant the alliance's roles at {bootstrap}: the broker refused to set the logins "
                              f"of {' and '.join(sorted(refused))} for {who} (only its operator, a super user, may)")
    if result.get("failed"):
        raise KafkaAdminError(f"cannot grant the alliance's roles at {bootstrap}: {result['failed']}")
