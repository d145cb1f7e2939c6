"""Options shared by the commands, defined once."""

from __future__ import annotations

import functools

import click

from refledger.schemas.messages import DEFAULT_TOPIC


def ledger_at(db: str, data_path: str | None):
    """What ``--db`` (and ``--data-path``) name: the DuckDB file's path as given, or a `LakeLedger`."""
    if db.startswith("ducklake:"):
        from refledger.store.lake import lake_ledger

        return lake_ledger(db, data_path)
    if data_path:
        raise click.UsageError("--data-path goes with --db ducklake:postgres:...; a DuckDB file keeps its data "
                               "in itself")
    return db


def db_option(command):
    """``--db`` and ``--data-path``: the ledger, a DuckDB file or a DuckLake; the command gets ``db`` as
    the file's path or a `refledger.store.lake.LakeLedger`."""

    @functools.wraps(command)
    def with_ledger(*args, db, data_path, **kwargs):
        return command(*args, db=ledger_at(db, data_path), **kwargs)

    with_ledger = click.option(
        "--data-path", envvar="REFLEDGER_DATA_PATH", default=None, metavar="DIR",
        help="With a DuckLake ledger: the shared directory (or object store) of its Parquet files "
             "(or $REFLEDGER_DATA_PATH); needed when the lake is new.")(with_ledger)
    return click.option(
        "--db", "db", required=True, metavar="PATH|ducklake:postgres:CONN",
        help="The ledger: a DuckDB file, or a DuckLake whose catalog is the PostgreSQL database of a libpq "
             "connection string (see `refledger catalog status`).")(with_ledger)


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


def _zone(ctx, param, value):
    """The alliance's time zone as a ZoneInfo, checked while parsing (--tz, else $REFLEDGER_TZ, else Shanghai)."""
    from refledger.schemas.periods import PeriodError, alliance_zone

    try:
        return alliance_zone(value)
    except PeriodError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


def _locale(ctx, param, value):
    from refledger.reports.money import LocaleError, format_money

    try:
        format_money(0, "CNY", value)
    except LocaleError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    return value


tz_option = click.option(
    "--tz", "zone", default=None, callback=_zone, metavar="ZONE",
    help="The alliance's time zone for months and times shown (default: $REFLEDGER_TZ, else Asia/Shanghai).")

locale_option = click.option(
    "--locale", default="zh_CN", show_default=True, callback=_locale,
    help="How money and words are written for people (zh_CN or en_US); JSON and CSV keep minor units.")


def people_options(command):
    """``--locale`` and ``--tz``: how a command writes money, months and times for people (SPEC §11)."""
    return locale_option(tz_option(command))
