"""The `refledger` command line: thin click commands over the library.

Every command is registered here. Library errors that mean "this cannot be
done as asked" (a missing ledger, an unreadable file, no broker answering)
become one clear line and exit status 1 at this one boundary; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from refledger import __version__
from refledger.cli_archive import archive
from refledger.cli_audit import checkpoints, statement, verify
from refledger.cli_broker import broker
from refledger.cli_catalog import catalog
from refledger.cli_demo import demo
from refledger.cli_keys import keygen
from refledger.cli_ledger import balances, explain, parked, quarantine
from refledger.cli_operator import settle, sheet
from refledger.cli_view import health, members, report, traffic
from refledger.cli_pipeline import compact, consume, ingest, produce, simulate, stats
from refledger.cli_replay import replay
from refledger.render import plain_lines

# (module, class): errors to report as one line. Looked up in sys.modules when one is raised,
# so that starting the command line imports none of these modules.
USER_ERRORS = (
    ("refledger.store.ledger_file", "StoreError"),
    ("refledger.store.readside", "ReadError"),
    ("refledger.store.queries", "QueryError"),
    ("refledger.schemas.event_files", "EventFileError"),
    ("refledger.producers.publisher", "PublishError"),
    ("refledger.producers.kafka_admin", "KafkaAdminError"),
    ("refledger.schemas.archive", "ArchiveError"),
    ("refledger.schemas.errors", "CodecError"),
    ("refledger.replay.history", "ReplayError"),
    ("refledger.broker", "BrokerError"),
    ("refledger.catalog", "CatalogError"),
    ("refledger.schemas.kafka_client", "KafkaUnreachable"),
    ("refledger.producers.operator", "OperatorError"),
    ("refledger.schemas.periods", "PeriodError"),
    ("refledger.reports.money", "LocaleError"),
    ("refledger.schemas.keys", "SigningKeyError"),
)


def user_message(exc: BaseException) -> str | None:
    """The one line to show for a library error, or None when it is not one."""
    for module_name, class_name in USER_ERRORS:
        module = sys.modules.get(module_name)
        if module is not None and isinstance(exc, getattr(module, class_name)):
            return str(exc)
    kafka_errors = sys.modules.get("kafka.errors")
    if kafka_errors is not None and isinstance(exc, kafka_errors.KafkaError):
        if isinstance(exc, (kafka_errors.AuthorizationError, kafka_errors.SaslAuthenticationFailedError)):
            return (f"Kafka refused this client: {exc} (check --sasl-username and --sasl-password, "
                    "or ask the alliance's operator for access)")
        return f"Kafka: {exc}"
    return None


class RefledgerGroup(click.Group):
    """A click group that turns library errors into a clear message and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            message = user_message(exc)
            if message is None:
                raise
            raise click.ClickException(plain_lines(message)) from exc


KAFKA_LOG_LEVELS = ("debug", "info", "warning", "error")


def show_kafka_log(level: str | None) -> None:
    """kafka-python logs every retry and reconnection; what matters reaches the user as one line at
    the boundary, so its own log stays off the terminal unless asked for."""
    logger = logging.getLogger("kafka")
    if level is None:
        logger.setLevel(logging.CRITICAL + 1)
        return
    logger.setLevel(level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@click.group(cls=RefledgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="refledger")
@click.option("--kafka-log", type=click.Choice(KAFKA_LOG_LEVELS), default=None,
              help="Show kafka-python's own log on stderr from this level (to diagnose a connection).")
def cli(kafka_log):
    """refledger: the commission ledger of a seller alliance.

    Shop events travel as Avro through Kafka (or files) into a DuckDB ledger
    that says who referred each order, how much is owed and why a balance
    changed.

    Example: refledger demo
    """
    show_kafka_log(kafka_log)


COMMANDS = (demo, broker, catalog, simulate, produce, consume, ingest, stats, compact, balances, explain, quarantine,
            parked, archive, replay, verify, checkpoints, statement, settle, sheet, traffic, members, health, report,
            keygen)

for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="refledger")
