"""`refledger catalog ...`: run a local PostgreSQL for a DuckLake ledger's catalog."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from refledger import catalog as local_catalog
from refledger.options import format_option
from refledger.render import emit_json, emit_table

dir_option = click.option(
    "--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="The catalog's directory: its settings, and lake/, the ledger's data path.")
port_option = click.option(
    "--port", type=click.IntRange(1, 65535), default=None,
    help=f"Port on 127.0.0.1 [default: the one it ran on before, else {local_catalog.DEFAULT_PORT}].")


@click.group()
def catalog():
    """Run a local PostgreSQL as the catalog of a ledger on DuckLake.

    Debian's PostgreSQL programs (apt-get install -y postgresql), on
    127.0.0.1, trusting local connections; as root, PostgreSQL runs as the
    postgres user. `status --format json` gives the --db and --data-path of
    the ledger to use with every other command.

    Example: refledger catalog start --dir ./catalog && refledger catalog status --dir ./catalog --format json
    """


@catalog.command()
@dir_option
@port_option
@click.option("--wait", "wait_s", type=float, default=60.0, show_default=True,
              help="Seconds to wait for PostgreSQL to accept connections.")
def start(directory: Path, port: int | None, wait_s: float):
    """Start the catalog in the background (set up on first use) and wait until it answers.

    Starting a catalog that already runs is not an error.

    Example: refledger catalog start --dir ./catalog --port 55432
    """
    info = local_catalog.start(directory, port, wait_s)
    click.echo(f"catalog running on {local_catalog.HOST}:{info.port} (pid {info.pid}); "
               f"--db '{info.db}' --data-path {info.data_path}")


@catalog.command()
@dir_option
def stop(directory: Path):
    """Stop the catalog (consumers writing to it fail their next batch and should be stopped first).

    Stopping a catalog that is not running is not an error.

    Example: refledger catalog stop --dir ./catalog
    """
    info = local_catalog.stop(directory)
    click.echo(f"catalog of {info.directory} {info.state}")


@catalog.command()
@dir_option
@format_option("table", "json")
def status(directory: Path, fmt: str):
    """Whether the catalog runs, and the --db and --data-path of its ledger (exit 1 when stopped).

    Example: refledger catalog status --dir ./catalog --format json
    """
    info = local_catalog.status(directory)
    if fmt == "json":
        emit_json(info.ledger())
    else:
        emit_table(info.as_rows(), ("field", "value"), title="DuckLake catalog")
    if info.state != "running":
        sys.exit(1)
