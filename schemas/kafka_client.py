"""What every Kafka client of refledger shares: where the brokers are, who the client is, and a
quick look that something listens there.

The publisher, the consumer, the admin client, the archive and the replay
all make their kafka-python client with `connect`, which

1. checks that one of the bootstrap servers accepts a TCP connection:
   nothing listening is known at once (connection refused), where
   kafka-python would retry for half a minute and then give up with a
   timeout;
2. logs in with SASL when given a `KafkaLogin` (SCRAM-SHA-256 by default,
   as `refledger broker start --secure` sets up; over plain TCP, so for a
   broker on this machine or a trusted network);
3. turns a broker that accepts the connection but never lets the client in
   (a wrong password, no login for a broker that asks for one) into one line.

Failures raise `KafkaUnreachable`. The command line reads the login from
``--sasl-username``/``--sasl-password``/``--sasl-mechanism`` or from the
environment variables named here.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

CONNECT_TIMEOUT_S = 3.0        # per bootstrap server, for the first look
BOOTSTRAP_TIMEOUT_MS = 10_000  # then for kafka-python's own bootstrap (login, metadata)

ENV_USERNAME = "REFLEDGER_SASL_USERNAME"
ENV_PASSWORD = "REFLEDGER_SASL_PASSWORD"
ENV_MECHANISM = "REFLEDGER_SASL_MECHANISM"
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")


class KafkaUnreachable(Exception):
    """Nothing listens at the bootstrap servers, or the brokers there do not let this client in."""


@dataclass(frozen=True)
class KafkaLogin:
    """Who a client is to a broker that asks (SASL over plain TCP)."""

    username: str
    password: str = field(repr=False)
    mechanism: str = MECHANISMS[0]

    def __post_init__(self):
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"SASL mechanism must be one of {', '.join(MECHANISMS)}, got {self.mechanism!r}")

    def settings(self) -> dict:
        """kafka-python's settings for this login."""
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username, "sasl_plain_password": self.password}


def host_port(server: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as (host, port)."""
    host, _, port = server.strip().rpartition(":")
    if not host or not port.isdigit():
        raise KafkaUnreachable(f"bootstrap servers must look like HOST:PORT, got {server!r}")
    return host.strip("[]"), int(port)


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


def port_open(bootstrap: str, timeout_s: float = 0.5) -> bool:
    """True when the first bootstrap server accepts a TCP connection."""
    try:
        check_listening(bootstrap.split(",")[0], timeout_s)
    except KafkaUnreachable:
        return False
    return True


def connect(client_class, bootstrap: str, login: KafkaLogin | None = None, **settings):
    """A kafka-python client (`KafkaProducer`, `KafkaConsumer` or `KafkaAdminClient`) for `bootstrap`,
    logged in as `login`, with the client's own `settings` on top."""
    from kafka.errors import KafkaTimeoutError

    check_listening(bootstrap)
    try:
        return client_class(**{"bootstrap_servers": bootstrap, "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
                               **(login.settings() if login else {}), **settings})
    except KafkaTimeoutError as exc:
        seconds = settings.get("bootstrap_timeout_ms", BOOTSTRAP_TIMEOUT_MS) / 1000
        if login is None:
            why = ("if it asks for a login, give --sasl-username and --sasl-password "
                   f"(or ${ENV_USERNAME} and ${ENV_PASSWORD})")
        else:
            why = f"is the password of {login.username!r} right, and is {login.mechanism} what the broker asks for?"
        raise KafkaUnreachable(f"Kafka at {bootstrap} accepts connections but did not let this client in within "
                               f"{seconds:.0f}s: {why}") from exc
