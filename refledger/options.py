"""Options shared by the commands, defined once."""

from __future__ import annotations

import functools

import click

from refledger.schemas.kafka_client import ENV_MECHANISM, ENV_PASSWORD, ENV_USERNAME, MECHANISMS, KafkaLogin
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


_LOGIN_OPTIONS = (
    click.option("--sasl-username", envvar=ENV_USERNAME, default=None, metavar="USER",
                 help=f"Log in to a broker that asks (SASL), as this user (or ${ENV_USERNAME}).", ),
    click.option("--sasl-password", envvar=ENV_PASSWORD, default=None, metavar="PASSWORD",
                 help=f"The user's password (or ${ENV_PASSWORD}, which other users of the machine cannot "
                      "see in the process list)."),
    click.option("--sasl-mechanism", envvar=ENV_MECHANISM, type=click.Choice(MECHANISMS),
                 default=MECHANISMS[0], show_default=True, help=f"How to log in (or ${ENV_MECHANISM})."),
)


def kafka_login_option(command):
    """``--sasl-username``/``--sasl-password``/``--sasl-mechanism`` (or their environment variables):
    who the command is to a broker that asks; the command receives them as one ``login``, a
    `KafkaLogin`, or None when no user name is given."""

    @functools.wraps(command)
    def with_login(*args, sasl_username, sasl_password, sasl_mechanism, **kwargs):
        if sasl_username and not sasl_password:
            raise click.UsageError(f"--sasl-username needs --sasl-password (or ${ENV_PASSWORD})")
        if sasl_password and not sasl_username:
            raise click.UsageError(f"--sasl-password needs --sasl-username (or ${ENV_USERNAME})")
        login = KafkaLogin(sasl_username, sasl_password, sasl_mechanism) if sasl_username else None
        return command(*args, login=login, **kwargs)

    for option in reversed(_LOGIN_OPTIONS):
        with_login = option(with_login)
    return with_login


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


def _shop_view(_ctx, _param, shop: str | None) -> str | None:
    """A shop's view names others by placeholders; a shop whose id is one of them cannot be told apart."""
    from refledger.reports.scoped import ALLIANCE_TOTAL, ANOTHER_MEMBER

    if shop in (ALLIANCE_TOTAL, ANOTHER_MEMBER):
        raise click.BadParameter(f"{shop!r} is what a member's view calls "
                                 f"{'the alliance total' if shop == ALLIANCE_TOTAL else 'another member'}; "
                                 "a shop of that id cannot have a view of its own apart from it")
    return shop


as_option = click.option(
    "--as", "as_shop", default=None, metavar="SHOP", callback=_shop_view,
    help="Show only what SHOP may see, to send it to that member: its own rows, and the alliance's totals "
         "where it needs them; no other member's numbers.")
