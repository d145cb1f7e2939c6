"""Options shared by several commands."""

from __future__ import annotations

import click

from refledger.render import FORMATS

DEFAULT_TOPIC = "shop-events"

db_option = click.option(
    "--db", "db", required=True, type=click.Path(dir_okay=False),
    help="The ledger's DuckDB file.")

format_option = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
    help="table for people, json or csv for programs.")

bootstrap_option = click.option(
    "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", required=True, metavar="HOST:PORT",
    help="Kafka bootstrap servers (or $KAFKA_BOOTSTRAP_SERVERS).")

topic_option = click.option(
    "--topic", default=DEFAULT_TOPIC, show_default=True, help="The alliance's event topic.")
