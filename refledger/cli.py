"""The `refledger` command line: thin click commands over the library."""

from __future__ import annotations

import click

from refledger import __version__
from refledger.cli_broker import broker
from refledger.cli_demo import demo
from refledger.cli_ledger import balances, explain, parked, quarantine
from refledger.cli_pipeline import consume, ingest, produce, simulate, stats
from replay.cli_archive import archive
from replay.cli_audit import checkpoints, statement, verify
from replay.cli_replay import replay


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="refledger")
def cli():
    """refledger: the commission ledger of a seller alliance.

    Shop events travel as Avro through Kafka (or files) into a DuckDB ledger
    that says who referred each order, how much is owed and why a balance
    changed.

    Example: refledger demo
    """


for command in (demo, broker, simulate, produce, consume, ingest, stats, balances, explain, quarantine, parked,
                archive, replay, verify, checkpoints, statement):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="refledger")
