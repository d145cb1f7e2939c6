"""The operator's view (SPEC §14): traffic, members, health, report.

Each command asks one read query (on the file, or through a running
consumer's read socket) and renders its answer: tables in the alliance's
language with money as money, or JSON, CSV and Parquet in minor units.
"""

from __future__ import annotations

import sys
from dataclasses import fields

import click

from refledger.options import db_option, format_option, people_options
from refledger.render import console, emit, emit_json, emit_parquet, emit_table, headers

out_option = click.option("--out", type=click.Path(dir_okay=False), default=None,
                          help="Write the Parquet file here (other formats go to standard output).")


def _ask(db, func, **params):
    from refledger.store.readside import query

    return query(db, func, **params)


def _at(text, zone):
    from refledger.schemas.periods import PeriodError, parse_moment

    if text is None:
        return None
    try:
        return parse_moment(text, zone)
    except PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from exc


def _period(period):
    from refledger.schemas.periods import PeriodError, parse_period

    try:
        parse_period(period)
    except PeriodError as exc:
        raise click.BadParameter(str(exc), param_hint="--period") from exc
    return period


@click.command()
@db_option
@click.option("--period", required=True, metavar="YYYY-MM", help="The month, in the alliance's time zone.")
@format_option("table", "json", "csv", "parquet")
@out_option
@people_options
def traffic(db, period, fmt, out, locale, zone):
    """Who brings what to whom: views, clicks, UV, orders, GMV and commission per referrer → merchant.

    One row per pair and currency for the month (SPEC §14), by GMV, with
    conversion (orders / UV) and GMV per UV.

    Example: refledger traffic --db ledger.duckdb --period 2026-11 --format json
    """
    from refledger.reports.readable import TRAFFIC_CELLS, traffic_cells
    from refledger.reports.traffic import COLUMNS, traffic as traffic_query
    from refledger.reports.words import label

    rows = _ask(db, traffic_query, period=_period(period), zone=zone.key)
    if fmt == "parquet":
        import pyarrow as pa

        types = {name: pa.int64() for name in COLUMNS}
        types.update({name: pa.string() for name in COLUMNS[:3]}, conversion=pa.float64())
        emit_parquet(rows, {name: types[name] for name in COLUMNS}, out)
    elif fmt in ("json", "csv"):
        emit(rows, fmt, COLUMNS)
    elif not rows:
        console().print(label("traffic_title", locale, period=period) + ": —")
    else:
        emit_table([traffic_cells(row, locale) for row in rows], TRAFFIC_CELLS,
                   title=label("traffic_title", locale, period=period), headers=headers(TRAFFIC_CELLS, locale),
                   numeric=set(TRAFFIC_CELLS[3:]))


@click.command()
@db_option
@click.option("--period", default=None, metavar="YYYY-MM", help="One month, in the alliance's time zone.")
@click.option("--at", "at_text", default=None, metavar="T",
              help="Everything up to T (2026-12-15 is the end of that day; default: the latest event).")
@format_option("table", "json", "csv", "parquet")
@out_option
@people_options
def members(db, period, at_text, fmt, out, locale, zone):
    """Each member's scorecard: traffic given and received, GMV, commission, rank and status.

    For a month (--period) or for everything up to a time (--at, default the
    latest event): views, clicks and UV out and in, reciprocity (clicks out /
    clicks in), orders and GMV referred, total GMV and GMV via the alliance,
    commission earned and owed, rank by GMV referred, status and its dates.

    Example: refledger members --db ledger.duckdb --period 2026-11
    """
    from refledger.reports.readable import SCORECARD_CELLS, scorecard_cells
    from refledger.reports.scorecard import COLUMNS, members as members_query
    from refledger.reports.words import label
    from refledger.schemas.periods import show_time

    if period and at_text:
        raise click.UsageError("give --period or --at, not both")
    at = _at(at_text, zone)
    rows = _ask(db, members_query, period=_period(period) if period else None, at=at, zone=zone.key)
    if fmt == "parquet":
        import pyarrow as pa

        types = {name: pa.int64() for name in COLUMNS}
        types.update({name: pa.string() for name in ("shop_id", "currency", "status", "status_since",
                                                     "status_changes")}, reciprocity=pa.float64())
        emit_parquet([_flat_changes(row) for row in rows], types, out)
    elif fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        emit([_flat_changes(row) for row in rows], "csv", COLUMNS)
    else:
        window = period or (label("up_to", locale, at=show_time(at, zone)) if at is not None else label("to_date", locale))
        for currency in dict.fromkeys(row["currency"] for row in rows):
            cards = [scorecard_cells(row, zone, locale) for row in rows if row["currency"] == currency]
            title = label("members_title", locale, window=window) + (f" · {currency}" if currency else "")
            emit_table(cards, SCORECARD_CELLS, title=title, headers=headers(SCORECARD_CELLS, locale),
                       numeric=set(SCORECARD_CELLS) - {"shop_id", "member_status", "status_since"})
        if not rows:
            console().print(label("members_title", locale, window=window) + ": —")


def _flat_changes(row: dict) -> dict:
    """CSV and Parquet cells hold text: the status changes as ``TIME status; TIME status``."""
    return {**row, "status_changes": "; ".join(f"{c['at']} {c['status']}" for c in row["status_changes"])}


def threshold_options(command):
    """One option per SPEC §14 threshold, with SPEC's default."""
    from refledger.reports.health import THRESHOLD_HELP, Thresholds

    defaults = Thresholds()
    for spec in reversed(fields(Thresholds)):
        command = click.option(f"--{spec.name.replace('_', '-')}", spec.name, type=click.IntRange(min=0),
                               default=getattr(defaults, spec.name), show_default=True,
                               help=THRESHOLD_HELP[spec.name])(command)
    return command


@click.command()
@db_option
@click.option("--at", "at_text", default=None, metavar="T",
              help="The time the flags are raised at (default: the latest event; 2026-12-15 is the end of that day).")
@format_option("table", "json")
@threshold_options
@people_options
def health(db, at_text, fmt, locale, zone, **thresholds):
    """Member health flags: silent withdrawal, free rider, declining, inactive (exit 1 if any).

    Each flag comes with the numbers that raised it (SPEC §14), so the
    operator can check them; thresholds are options with SPEC's defaults.
    Exit status 1 when any flag is raised (for cron), 0 otherwise.

    Example: refledger health --db ledger.duckdb --at 2026-12-31
    """
    from refledger.reports.health import health as health_query

    rows = _ask(db, health_query, at=_at(at_text, zone), zone=zone.key, **thresholds)
    if fmt == "json":
        emit_json(rows)
    else:
        show_health(rows, zone, locale)
    sys.exit(1 if rows else 0)


def show_health(rows: list[dict], zone, locale: str) -> None:
    """The flags as a table for people, each with the sentence of numbers that raised it."""
    from refledger.reports.readable import evidence, in_words
    from refledger.reports.words import label, say
    from refledger.schemas.periods import show_time
    from refledger.schemas.timestamps import parse_utc_millis

    if not rows:
        console().print(say("no_flags", locale), markup=False)
        return
    at = show_time(parse_utc_millis(rows[0]["at"]), zone)
    emit_table([{"shop_id": row["shop_id"], "flag": in_words(row["flag"], locale),
                 "evidence": evidence(row, zone, locale)} for row in rows],
               ("shop_id", "flag", "evidence"), title=label("health_title", locale, at=at),
               headers=headers(("shop_id", "flag", "evidence"), locale))


@click.command()
@db_option
@click.option("--period", required=True, metavar="YYYY-MM", help="The month, in the alliance's time zone.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The HTML file to write.")
@threshold_options
@people_options
def report(db, period, out, locale, zone, **thresholds):
    """The operator's monthly page: traffic between members, given and received, GMV, health, the sheet.

    One self-contained HTML file that works offline (the charts' JavaScript
    is inside it): who sends whom traffic (a heatmap), clicks given and
    received per member, the alliance's GMV by month, the health flags with
    their evidence, the settlement sheet once the month is settled, and the
    scorecards. Chinese by default, English with --locale en_US.

    Example: refledger report --db ledger.duckdb --period 2026-11 --out report-2026-11.html
    """
    from pathlib import Path

    from refledger.reports.operator_report import operator_report
    from refledger.reports.report_page import render_report

    data = _ask(db, operator_report, period=_period(period), zone=zone.key, **thresholds)
    Path(out).write_text(render_report(data, zone, locale), encoding="utf-8")
    click.echo(f"wrote {out}")
