"""A secured local broker (`refledger broker start --secure`): SASL logins and ACLs for the
alliance's three roles.

- `operator`, the alliance's operator: a super user (topics, settlements,
  ACLs, tests). Logs in with SASL/PLAIN against the broker's own
  configuration, which is also how the broker talks to its controller, so
  the broker never needs a password on a command line.
- `shop`, the shops' integrations: may write the events topic (and read its
  configuration, to size messages), nothing else: no reading, no group.
- `ledger`, the ledger's consumer (and `archive`, `replay --source kafka`):
  may read the events topic and use the ledger's consumer group, not write.

`shop` and `ledger` log in with SASL/SCRAM-SHA-256; the operator sets their
credentials through the broker (salted and hashed in its metadata log) and
grants the ACLs on every secure start. Anything not granted is refused.

The passwords are drawn once, on the first secure start, and kept in
``DIR/logins/<user>.env`` (mode 0600, in a 0700 directory), written as the
environment the command line reads::

    set -a; . ~/.local/state/refledger/broker-9092/logins/shop.env; set +a
    refledger produce events.jsonl

`server.properties` holds the operator's password and is made 0600 too. A
broker directory with logins always starts secured: nothing downgrades it
to an open broker by leaving out ``--secure``. The listener is SASL over
plain TCP on 127.0.0.1: logins and ACLs, not encryption.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from refledger.producers.kafka_admin import create_topic, grant_alliance_roles
from refledger.schemas.kafka_client import ENV_MECHANISM, ENV_PASSWORD, ENV_USERNAME, KafkaLogin

OPERATOR, SHOP, LEDGER = "operator", "shop", "ledger"
ROLES = (OPERATOR, SHOP, LEDGER)
MECHANISM = {OPERATOR: "PLAIN", SHOP: "SCRAM-SHA-256", LEDGER: "SCRAM-SHA-256"}
LOGINS = "logins"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"


def is_secured(directory: Path) -> bool:
    return (directory / LOGINS).is_dir()


def logins(directory: str | os.PathLike) -> dict[str, KafkaLogin]:
    """The logins of a secured broker directory, by role (empty when it is not secured)."""
    found = {}
    for role in ROLES:
        path = Path(directory) / LOGINS / f"{role}.env"
        if path.is_file():
            values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
            found[role] = KafkaLogin(values[ENV_USERNAME], values[ENV_PASSWORD], values[ENV_MECHANISM])
    return found


def keep_logins(directory: Path, bootstrap: str) -> dict[str, KafkaLogin]:
    """The directory's logins, drawn on first use; each role's file rewritten with `bootstrap`."""
    folder = directory / LOGINS
    folder.mkdir(mode=0o700, exist_ok=True)
    folder.chmod(0o700)
    kept = logins(directory)
    for role in ROLES:
        login = kept.get(role) or KafkaLogin(role, secrets.token_urlsafe(24), MECHANISM[role])
        kept[role] = login
        write_private(folder / f"{role}.env",
                      f"# refledger: the {role} login of the broker in {directory}\n"
                      f"{BOOTSTRAP_ENV}={bootstrap}\n{ENV_USERNAME}={login.username}\n"
                      f"{ENV_PASSWORD}={login.password}\n{ENV_MECHANISM}={login.mechanism}\n")
    return kept


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (it may hold a password), never readable by others even
    for a moment."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    path.chmod(0o600)


def security_properties(operator: KafkaLogin) -> str:
    """server.properties lines for SASL on both listeners and ACLs (the caller names the listeners
    SASL_PLAINTEXT and CONTROLLER)."""
    plain = (f'org.apache.kafka.common.security.plain.PlainLoginModule required username="{operator.username}" '
             f'password="{operator.password}" user_{operator.username}="{operator.password}";')
    return f"""sasl.enabled.mechanisms=SCRAM-SHA-256,PLAIN
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config={plain}
listener.name.sasl_plaintext.plain.sasl.jaas.config={plain}
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:{operator.username}
allow.everyone.if.no.acl.found=false
"""


def open_for_the_alliance(bootstrap: str, kept: dict[str, KafkaLogin], topic: str, group: str,
                          partitions: int = 6) -> None:
    """As the operator: the events topic made, the shop's and the ledger's logins and ACLs set."""
    operator = kept[OPERATOR]
    create_topic(bootstrap, topic, partitions, login=operator)
    grant_alliance_roles(bootstrap, topic, group, shop=kept[SHOP], ledger=kept[LEDGER], login=operator)
