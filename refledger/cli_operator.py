"""The operator's commands: settle (the month end) and sheet (结算单)."""

from __future__ import annotations

from pathlib import Path

import click

from refledger.options import db_option, format_option, kafka_login_option, ledger_at, people_options, topic_option
from refledger.render import echo, emit, emit_json


@click.command()
@click.option("--period", required=True, metavar="YYYY-MM", help="The month to settle (in the alliance's zone).")
@click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None, metavar="HOST:PORT",
              help="Kafka bootstrap servers (or $KAFKA_BOOTSTRAP_SERVERS); not needed with --dry-run.")
@kafka_login_option
@topic_option
@click.option("--close-through", default=None, metavar="YYYY-MM",
              help="Also close the books through the end of this month (SPEC §9a); at most --period.")
@click.option("--alliance", "alliance_id", default=None,
              help="The alliance id on the events (default: that of the topic's first event).")
@click.option("--dry-run", is_flag=True, help="Publish nothing: show what the settlement would make payable (--db).")
@click.option("--db", default=None, metavar="PATH|ducklake:postgres:CONN",
              help="The ledger (a DuckDB file or a DuckLake): what becomes payable and the sheet are read from it.")
@click.option("--force", is_flag=True,
              help="Settle a month that has not ended yet in the alliance's zone (a dry run never refuses).")
@click.option("--signing-key", type=click.Path(dir_okay=False), default=None,
              help="Sign the month end's events with the operator's private key (PEM, from `refledger keygen`), "
                   "as a policy requiring signatures asks.")
@people_options
@format_option("table", "json")
def settle(period, bootstrap_servers, login, topic, close_through, alliance_id, dry_run, db, force, signing_key,
           locale, zone, fmt):
    """The operator's monthly run: publish the month's settlement (and a close), then show the sheet.

    The settlement's period end is the month's last millisecond in the
    alliance's time zone; --close-through closes the books through the end of
    that month the same way. Ids and every field are derived from the periods
    and each event is published at most once: a second run reads the topic,
    publishes nothing and says what was published before. With --db it shows
    what the settlement makes payable per pair and the sheet as it will stand
    (or as it stood, once the ledger has folded it).

    Example: refledger settle --period 2026-11 --close-through 2026-10 --db ledger.duckdb
    """
    from refledger.producers.operator import check_close_through, check_month_over, now_ms, run_month_end
    from refledger.store.lake import is_lake
    from refledger.schemas.periods import parse_period

    parse_period(period)
    check_close_through(period, close_through)
    if not force and not dry_run:  # a dry run publishes nothing: any month may be looked at
        check_month_over(period, zone, now_ms())
    if dry_run and not db:
        raise click.UsageError("--dry-run reads the ledger: give --db")
    if not dry_run and not bootstrap_servers:
        raise click.UsageError("give --bootstrap-servers (or $KAFKA_BOOTSTRAP_SERVERS), or --dry-run --db")
    db = ledger_at(db, None) if db else None
    if db and not is_lake(db) and not Path(db).exists():
        raise click.ClickException(f"no ledger at {db}")  # said before anything is published
    key = None
    if signing_key and not dry_run:
        from refledger.schemas.keys import read_key_file

        key = read_key_file(signing_key)
    published = [] if dry_run else run_month_end(bootstrap_servers, topic, period, zone, close_through=close_through,
                                                 alliance_id=alliance_id, signing_key=key, login=login)
    ledger = _month_in_ledger(db, period, zone, dry_run) if db else None
    if fmt == "json":
        emit_json({"period": period, "dry_run": dry_run, "published": [_published_json(e) for e in published],
                   **(ledger or {})})
        return
    from refledger.reports.words import say

    lines = [say("dry_run", locale)] if dry_run else [_published_line(e, locale, zone) for e in published]
    if ledger is None:
        lines.append(say("sheet_later", locale, command=f"refledger sheet --db LEDGER --period {period}"))
    elif "sheet" in ledger:
        from refledger.reports.sheet import sheet_lines

        lines += sheet_lines(ledger["sheet"], locale, zone.key)
    else:
        from refledger.reports.settlement_preview import preview_lines

        lines += preview_lines(ledger["preview"], locale, zone.key, per_pair=dry_run)
    _echo_lines(lines)


def _month_in_ledger(db, period, zone, dry_run: bool) -> dict:
    """What the settlement makes payable and the sheet it leads to; after a real run whose settlement
    the ledger has already folded in every log, the sheet as it stood right after it."""
    from refledger.reports.settlement_preview import settlement_preview
    from refledger.reports.sheet import SheetError, sheet
    from refledger.store.readside import query

    preview = query(db, settlement_preview, period=period, tz=zone.key)
    if preview["already_folded"] and not dry_run:
        try:
            done = query(db, sheet, period=period, tz=zone.key)
        except SheetError:
            done = None
        if done is not None and not done["logs_without_settlement"]:
            return {"sheet": done}
    return {"preview": preview}


def _published_json(event) -> dict:
    from refledger.schemas import codec

    return {"event_id": event.record["event_id"], "event": codec.record_to_json(event.record),
            "published_to": list(event.now),
            "published_before": [{"partition": p.partition, "offset": p.offset, "kafka_timestamp": p.timestamp_ms}
                                 for p in event.before]}


def _published_line(event, locale: str, zone) -> str:
    from refledger.reports.words import say
    from refledger.schemas.periods import show_time

    record = event.record
    if record["type"] == "settlement":
        what = say("settlement_what", locale, end=show_time(record["settlement"]["period_end"], zone))
    else:
        what = say("close_what", locale, end=show_time(record["close"]["closed_through"], zone))
    event_id = record["event_id"]
    if not event.before:
        return say("published_now", locale, event_id=event_id, what=what, count=len(event.now))
    if event.now:
        return say("published_rest", locale, event_id=event_id, before=len(event.before), count=len(event.now))
    first = min(p.timestamp_ms for p in event.before)
    return say("published_before", locale, event_id=event_id, what=what, count=len(event.before),
               when=show_time(first, zone, seconds=True))


@click.command()
@db_option
@click.option("--period", default=None, metavar="YYYY-MM",
              help="As the ledger stood right after that month's settlement (default: as it stands).")
@format_option("table", "json", "csv")
@people_options
def sheet(db, period, fmt, locale, zone):
    """The alliance's settlement sheet (结算单): who pays whom, netted per pair, with the fund's lines.

    Per pair of parties and currency, what each owes the other as payable,
    netted into one transfer; each party's total to pay and to receive; the
    alliance fund ("alliance") as a party. The table is plain lines to paste
    into the alliance's group chat; JSON and CSV keep minor units.

    Example: refledger sheet --db ledger.duckdb --period 2026-11
    """
    from refledger.reports.sheet import sheet as sheet_query, sheet_lines
    from refledger.schemas.periods import parse_period
    from refledger.store.readside import query

    if period is not None:
        parse_period(period)
    result = query(db, sheet_query, period=period, tz=zone.key)
    if fmt == "json":
        emit_json(result)
    elif fmt == "csv":
        emit(result["transfers"], "csv", ("from", "to", "currency", "amount_minor"))
    else:
        _echo_lines(sheet_lines(result, locale, zone.key))


def _echo_lines(lines) -> None:
    """Plain text: names from events are printed as they are, never read as markup."""
    echo("\n".join(lines))
