"""`refledger broker ...`: run a local single-node Apache Kafka (KRaft) for development."""

from __future__ import annotations

from pathlib import Path

import click

from refledger import broker as local_broker
from refledger.options import format_option
from refledger.render import emit_json, emit_table


port_option = click.option(
    "--port", type=click.IntRange(1, 65535), default=local_broker.DEFAULT_PORT,
    show_default=True, help="PLAINTEXT port on 127.0.0.1 that clients connect to.")

dir_option = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Broker directory (config, data, logs) [default: ~/.local/state/refledger/broker-PORT].")


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
def start(port: int, directory: Path | None, wait_s: float):
    """Start the broker in the background and wait until it answers.

    Starting a broker that already runs is not an error.

    Example: refledger broker start --port 9092
    """
    info = local_broker.start(port=port, directory=directory, wait_s=wait_s)
    click.echo(f"Kafka broker running on {info.bootstrap} (pid {info.pid}); logs in {info.log_file}")


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

