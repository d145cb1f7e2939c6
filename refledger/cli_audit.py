"""Audit commands: verify, checkpoints, statement (replay lives in `cli_replay`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from refledger.options import as_option, db_option, format_option, people_options, tz_option
from refledger.render import console, echo, emit, emit_json, headers, line



def _fail(message: str):
    raise click.ClickException(message)


@click.command()
@db_option
@click.option("--since-checkpoint", "checkpoint_file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="A file saved from `refledger checkpoints --format json`: prove the ledger extends it.")
@format_option("table", "json")
def verify(db, checkpoint_file, fmt):
    """Recompute every hash chain and check the ledger's invariants.

    Chains (seq, links, hashes), balanced transactions and Σ earned = Σ owed
    (SPEC §12.1), every event read accounted for once (§12.6), each shop's
    totals against an independent set-based SQL recomputation from the
    stored events, recorded checkpoints, and with --since-checkpoint that history before an
    auditor's saved checkpoint was not rewritten. Exit 0, or 1 naming each
    problem and where it is.

    Example: refledger verify --db ledger.duckdb --since-checkpoint checkpoints-2026-11.json
    """
    from refledger.replay.verify import read_checkpoint_file, verify as run_checks

    saved = None
    if checkpoint_file:
        try:
            saved = read_checkpoint_file(checkpoint_file)
        except (ValueError, OSError) as exc:
            _fail(f"cannot read checkpoints from {checkpoint_file}: {exc}")
    con = _open_read_only(db)
    try:
        result = run_checks(con, saved_checkpoints=saved)
    finally:
        con.close()
    if fmt == "json":
        emit_json(result)
    else:
        out = console()
        entries = sum(h["entries"] for h in result["logs"].values())
        if result["ok"]:
            out.print(line(("ok", "green"), f": {len(result['logs'])} chains, {entries:,} entries; "
                                            f"checked {', '.join(result['checks'])}"))
        else:
            out.print(line((f"{len(result['problems'])} problem(s)", "red"), f" in {db}:"))
            emit(result["problems"], "table", ("check", "where", "detail"))
    sys.exit(0 if result["ok"] else 1)


@click.command()
@db_option
@format_option("table", "json")
@tz_option
def checkpoints(db, fmt, zone):
    """The chain heads recorded at each settlement, per log.

    Save the JSON output; later `refledger verify --since-checkpoint FILE`
    proves the ledger still extends it.

    Example: refledger checkpoints --db ledger.duckdb --format json > checkpoints-2026-11.json
    """
    from refledger.store.queries import checkpoints as checkpoints_query
    from refledger.store.readside import query

    rows = query(db, checkpoints_query)
    if fmt == "json":
        emit_json({"ledger": str(db), "checkpoints": rows})
    else:
        from refledger.schemas.codec import parse_time
        from refledger.schemas.periods import show_time

        rows = [{**r, "at": show_time(parse_time(r["at"]), zone, seconds=True)} for r in rows]
        emit(rows, "table", ("kind", "event_id", "at", "topic", "partition", "entries", "head"),
             title="checkpoints (chain heads at each settlement and close)", numeric=("entries",))




@click.command()
@db_option
@click.option("--shop", "shop_id", default=None, help="The shop the statement is for (or --as).")
@click.option("--period", required=True, metavar="YYYY-MM",
              help="The month, in the alliance's time zone (--tz), by the time of each entry's event.")
@as_option
@format_option("table", "json", "csv")
@people_options
def statement(db, shop_id, period, as_shop, fmt, locale, zone):
    """A shop's month: every entry with its provenance, opening and closing balances, and who pays whom.

    The month is the alliance's, in its time zone: an order at 02:00 Beijing
    time on the 1st belongs to the new month. Entries belong to the month
    their causing event occurred in; what a settlement moves, to the month it
    closes. Netting pairs each counterparty's payable balances at the month's
    close (SPEC §9): "li-kids 付给 zhang-toys ¥20.72"; the alliance fund has
    its own section, and swap credits are shown per counterparty.

    Example: refledger statement --db ledger.duckdb --shop li-kids --period 2026-11
    """
    from refledger.reports.statement import LINE_COLUMNS, statement as statement_query
    from refledger.schemas.periods import parse_period
    from refledger.store.readside import query

    if as_shop is not None and shop_id not in (None, as_shop):
        raise click.UsageError(f"--as {as_shop} shows only {as_shop}'s own statement, not {shop_id}'s")
    shop_id = shop_id or as_shop
    if shop_id is None:
        raise click.UsageError("give --shop SHOP (or --as SHOP)")
    parse_period(period)
    result = query(db, statement_query, shop_id=shop_id, period=period, tz=zone.key, locale=locale)
    if fmt == "json":
        emit_json(result)
    elif fmt == "csv":
        emit(result["lines"], "csv", LINE_COLUMNS)
    else:
        _statement_tables(result, locale, zone)


def _statement_tables(result: dict, locale: str, zone) -> None:
    from refledger.reports.money import format_money
    from refledger.reports.words import amount, label
    from refledger.schemas import codec
    from refledger.schemas.periods import show_time

    def money(row, key):
        return format_money(row[key], row["currency"], locale)

    echo(say_statement_title(result, locale, zone))
    _balance_table(result["opening"], label("opening", locale), locale)
    lines = [{**line, "occurred_at": show_time(codec.parse_time(line["occurred_at"]), zone),
              "change": amount(line["change"], line["currency"], locale)} for line in result["lines"]]
    columns = ("occurred_at", "event_id", "event_type", "role", "account", "counterparty_shop_id", "change",
               "agreement", "rate_bp", "click_event_id", "refund_id", "reason")
    emit(lines, "table", columns, title=label("entries_in", locale, count=len(lines), period=result["period"]),
         numeric=("change", "rate_bp"), headers=headers(columns, locale))
    _balance_table(result["closing"], label("closing", locale), locale)
    sides = ("they_owe_payable", "we_owe_payable", "they_owe_pending", "we_owe_pending")
    for key, title in (("netting", label("netting", locale)), ("fund", label("fund_lines", locale))):
        if result[key]:
            rows = [{**row, **{side: money(row, side) for side in sides}} for row in result[key]]
            columns = ("counterparty_shop_id", "currency", "they_owe_payable", "we_owe_payable", "says",
                       "they_owe_pending", "we_owe_pending")
            emit(rows, "table", columns, title=title, numeric=sides, headers=headers(columns, locale))
    if result["swaps"]:
        columns = ("counterparty_shop_id", "given", "received", "given_to_date", "received_to_date", "balance")
        emit(result["swaps"], "table", columns, title=label("swap_credits", locale), numeric=columns[1:],
             headers={**headers(columns, locale), "received": label("clicks_received", locale)})
    for row in result["overall"]:
        echo(row["says"])


def say_statement_title(result: dict, locale: str, zone) -> str:
    from refledger.reports.words import say
    from refledger.schemas import codec
    from refledger.schemas.periods import show_time

    return say("statement_title", locale, shop=result["shop_id"], period=result["period"], zone=zone.key,
               start=show_time(codec.parse_time(result["from"]), zone),
               end=show_time(codec.parse_time(result["until"]), zone))


def _balance_table(rows, title, locale):
    from refledger.reports.money import format_money
    from refledger.reports.statement import MONEY

    money = [{"currency": r["currency"], **{a: format_money(r[a], r["currency"], locale) for a in MONEY}}
             for r in rows if r["currency"] != "CLICK"]
    if money:
        emit(money, "table", ("currency",) + MONEY, title=title, numeric=MONEY,
             headers=headers(("currency",) + MONEY, locale))
    else:
        echo(f"{title}: -")


def _open_read_only(db):
    import duckdb

    from refledger.store.lake import is_lake, reading

    if is_lake(db):
        return reading(db)  # one snapshot of whole batches, however many consumers write meanwhile
    if not Path(db).exists():
        _fail(f"no ledger at {db}")
    try:
        return duckdb.connect(str(db), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            _fail(f"ledger {db} is held by a running consumer; verify a copy of the file, or stop the consumer "
                  "(SIGTERM finishes its batch) and verify again")
        _fail(f"cannot open ledger {db}: {exc}")
