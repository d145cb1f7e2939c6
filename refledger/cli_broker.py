"""`refledger broker ...`: run a local single-node Apache Kafka (KRaft) for development."""

from __future__ import annotations

from pathlib import Path

import click

from refledger import broker as local_broker
from refledger.options import bootstrap_option, format_option, kafka_login_option, topic_option
from refledger.render import emit_json, emit_table


port_option = click.option(
    "--port", type=click.IntRange(1, 65535), default=local_broker.DEFAULT_PORT,
    show_default=True, help="PLAINTEXT port on 127.0.0.1 that clients connect to.")

dir_option = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Broker directory (config, data, logs) [default: ~/.local/state/refledger/broker-PORT].")


group_option = click.option(
    "--group", default=local_broker.DEFAULT_GROUP, show_default=True,
    help="The consumer group the ledger may read the topic in (with --secure).")


@click.group()
def broker():
    """Run a local single-node Apache Kafka broker (KRaft, no ZooKeeper).

    The Kafka jars are fetched from Maven Central with mvn on first use and
    cached in ~/.cache/refledger (or $REFLEDGER_KAFKA_CACHE). Needs java 17+.

    Example: refledger broker start && refledger produce events.jsonl --bootstrap-servers 127.0.0.1:9092
    """


@broker.command()
@port_option
@dir_option
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True,
              help="Seconds to wait for the broker to answer.")
@click.option("--secure", is_flag=True,
              help="Clients must log in (SASL/SCRAM) and each role may do only its part (ACLs): shops write "
                   "the topic, the ledger's group reads it, the operator does everything. A directory once "
                   "secured always starts secured.")
@topic_option
@group_option
def start(port: int, directory: Path | None, wait_s: float, secure: bool, topic: str, group: str):
    """Start the broker in the background and wait until it answers.

    Starting a broker that already runs is not an error. With --secure, the
    topic is made and the logins of the operator, the shops and the ledger
    are kept in DIR/logins/*.env, ready for `set -a; . FILE; set +a`.

    Example: refledger broker start --port 9092 --secure
    """
    info = local_broker.start(port=port, directory=directory, wait_s=wait_s, secure=secure, topic=topic,
                              group=group)
    click.echo(f"Kafka broker running on {info.bootstrap} (pid {info.pid}); logs in {info.log_file}")
    if info.secure:
        where = info.logins_dir
        click.echo(f"secured with SASL/SCRAM logins and ACLs; the logins are in {where}:\n"
                   f"  operator.env  the alliance's operator (everything)\n"
                   f"  shop.env      shops' integrations (write {topic})\n"
                   f"  ledger.env    the ledger (read {topic} in group {group})\n"
                   f"use one with: set -a; . {where}/shop.env; set +a")


@broker.command()
@port_option
@dir_option
def stop(port: int, directory: Path | None):
    """Stop the broker: SIGTERM, then SIGKILL if it does not exit in time.

    Stopping a broker that is not running is not an error.

    Example: refledger broker stop --port 9092
    """
    info = local_broker.stop(directory, port=port)
    click.echo(f"Kafka broker on {info.bootstrap} stopped ({info.directory})")


@broker.command()
@port_option
@dir_option
@format_option("table", "json")
def status(port: int, directory: Path | None, fmt: str):
    """Show whether the broker runs, where, and where it logs.

    state is running, unresponsive (process alive, no answer) or stopped.

    Example: refledger broker status --format json
    """
    shown = local_broker.status(directory, port=port).as_dict()
    if fmt == "json":
        emit_json(shown)
    else:
        rows = [{"field": key, "value": value} for key, value in shown.items()]
        emit_table(rows, ("field", "value"), title="Kafka broker")



@broker.command()
@bootstrap_option
@kafka_login_option
@topic_option
@group_option
@click.option("--shop-password", envvar="REFLEDGER_SHOP_PASSWORD", required=True,
              help="The password shops' integrations log in with as user shop (or $REFLEDGER_SHOP_PASSWORD).")
@click.option("--ledger-password", envvar="REFLEDGER_LEDGER_PASSWORD", required=True,
              help="The password the ledger logs in with as user ledger (or $REFLEDGER_LEDGER_PASSWORD).")
def grant(bootstrap_servers, login, topic, group, shop_password, ledger_password):
    """Give shops and the ledger their logins and ACLs on a secured broker, as its operator.

    For a broker secured by other means than `broker start --secure` (which
    does this itself), such as docker-compose.yml's kafka-secure: makes the
    topic, sets the SCRAM logins of users shop and ledger, and allows shop to
    write the topic and ledger to read it in --group. Run again to change a
    password; nothing else is granted.

    Example: refledger broker grant --bootstrap-servers localhost:9094
    """
    from refledger import secure_broker
    from refledger.schemas.kafka_client import KafkaLogin

    roles = {secure_broker.OPERATOR: login,
             secure_broker.SHOP: KafkaLogin(secure_broker.SHOP, shop_password),
             secure_broker.LEDGER: KafkaLogin(secure_broker.LEDGER, ledger_password)}
    secure_broker.open_for_the_alliance(bootstrap_servers, roles, topic, group)
    click.echo(f"at {bootstrap_servers}: shop may write {topic}; ledger may read it in group {group}")
