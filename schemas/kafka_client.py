"""What every Kafka client of refledger shares: where the brokers are, and a quick look that
something listens there.

The publisher, the consumer, the admin client, the archive and the replay
all take their connection settings from `client_settings`, which first
checks that one of the bootstrap servers accepts a TCP connection. Nothing
listening is known at once (connection refused), where kafka-python would
retry for half a minute and then give up with a timeout; `KafkaUnreachable`
says so in one line.
"""

from __future__ import annotations

import socket

CONNECT_TIMEOUT_S = 3.0        # per bootstrap server, for the first look
BOOTSTRAP_TIMEOUT_MS = 15_000  # then for kafka-python's own bootstrap (metadata from a broker that listens)


class KafkaUnreachable(Exception):
    """Nothing listens at any of the bootstrap servers, or they are not written HOST:PORT."""


def host_port(server: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as (host, port)."""
    host, _, port = server.strip().rpartition(":")
    if not host or not port.isdigit():
        raise KafkaUnreachable(f"bootstrap servers must look like HOST:PORT, got {server!r}")
    return host.strip("[]"), int(port)


def port_open(bootstrap: str, timeout_s: float = 0.5) -> bool:
    """True when the first bootstrap server accepts a TCP connection."""
    try:
        with socket.create_connection(host_port(bootstrap.split(",")[0]), timeout=timeout_s):
            return True
    except OSError:
        return False


def check_listening(bootstrap: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Return when one of the bootstrap servers accepts a TCP connection; else `KafkaUnreachable`
    naming each server and why."""
    failures = []
    for server in (s for s in bootstrap.split(",") if s.strip()):
        try:
            with socket.create_connection(host_port(server), timeout=timeout_s):
                return
        except OSError as exc:
            failures.append(f"{server.strip()}: {exc.strerror or exc}")
    if not failures:
        raise KafkaUnreachable("no bootstrap servers given (HOST:PORT)")
    raise KafkaUnreachable(
        f"no Kafka broker listens at {bootstrap} ({'; '.join(failures)}); start one with "
        "`refledger broker start` or check --bootstrap-servers")


def client_settings(bootstrap: str) -> dict:
    """The connection settings of a kafka-python client (`KafkaProducer`, `KafkaConsumer`,
    `KafkaAdminClient`), once something listens at `bootstrap` (`KafkaUnreachable` otherwise)."""
    check_listening(bootstrap)
    return {"bootstrap_servers": bootstrap, "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS}
