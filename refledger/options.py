"""Options shared by the commands, defined once."""

from __future__ import annotations

import click

from refledger.schemas.messages import DEFAULT_TOPIC

db_option = click.option(
    "--db", "db", required=True, type=click.Path(dir_okay=False),
    help="The ledger's DuckDB file.")


def format_option(*formats: str):
    """``--format``: the first of ``formats`` is the default; table is for people, the rest
    (json, csv, parquet) for programs."""
    formats = formats or ("table", "json", "csv")
    people = [f for f in formats if f == "table"]
    programs = [f for f in formats if f != "table"]
    hint = " or ".join(programs)
    return click.option(
        "--format", "fmt", type=click.Choice(formats), default=formats[0], show_default=True,
        help=f"{'table for people, ' if people else ''}{hint} for programs.")


bootstrap_option = click.option(
    "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", required=True, metavar="HOST:PORT",
    help="Kafka bootstrap servers (or $KAFKA_BOOTSTRAP_SERVERS).")

topic_option = click.option(
    "--topic", default=DEFAULT_TOPIC, show_default=True, help="The alliance's event topic.")
