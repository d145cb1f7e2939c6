"""Audit commands: verify, checkpoints, statement (replay lives in `cli_replay`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from refledger.options import db_option, format_option
from refledger.render import console, emit, emit_json



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
        except (ValueError, KeyError, TypeError) as exc:
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
            out.print(f"[green]ok[/green]: {len(result['logs'])} chains, {entries:,} entries; "
                      f"checked {', '.join(result['checks'])}")
        else:
            out.print(f"[red]{len(result['problems'])} problem(s)[/red] in {db}:")
            emit(result["problems"], "table", ("check", "where", "detail"))
    sys.exit(0 if result["ok"] else 1)


@click.command()
@db_option
@format_option("table", "json")
def checkpoints(db, fmt):
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
        emit(rows, "table", ("kind", "event_id", "at", "topic", "partition", "entries", "head"),
             title="checkpoints (chain heads at each settlement and close)", numeric=("entries",))




@click.command()
@db_option
@click.option("--shop", "shop_id", required=True, help="The shop the statement is for.")
@click.option("--period", required=True, metavar="YYYY-MM", help="The month, by the time of each entry's event (UTC).")
@format_option("table", "json", "csv")
def statement(db, shop_id, period, fmt):
    """A shop's month: every entry with its provenance, opening and closing balances, and who pays whom.

    Entries belong to the month their causing event occurred in. Netting
    pairs each counterparty's payable balances at the month's close (SPEC §9):
    "li-kids pays zhang-toys 1,280 CNY".

    Example: refledger statement --db ledger.duckdb --shop li-kids --period 2026-11
    """
    from refledger.reports.statement import LINE_COLUMNS, period_bounds, statement as statement_query
    from refledger.store.readside import query

    period_bounds(period)
    result = query(db, statement_query, shop_id=shop_id, period=period)
    if fmt == "json":
        emit_json(result)
        return
    if fmt == "csv":
        emit(result["lines"], "csv", LINE_COLUMNS)
        return
    out = console()
    out.print(f"[bold]statement of {shop_id}[/bold] for {period} ({result['from']} – {result['until']})")
    _balance_table(result["opening"], "opening balances")
    emit(result["lines"], "table", ("occurred_at", "event_id", "event_type", "role", "account",
                                    "counterparty_shop_id", "currency", "change", "agreement", "rate_bp",
                                    "click_event_id", "refund_id", "reason"),
         title=f"{len(result['lines'])} entries in {period}", numeric=("change", "rate_bp"))
    _balance_table(result["closing"], "closing balances")
    emit(result["netting"], "table", ("counterparty_shop_id", "currency", "they_owe_payable", "we_owe_payable",
                                      "says", "they_owe_pending", "we_owe_pending"),
         title="netting of payable balances at the close", numeric=("they_owe_payable", "we_owe_payable",
                                                                    "they_owe_pending", "we_owe_pending"))
    for row in result["overall"]:
        out.print(f"[bold]{row['says']}[/bold]")


def _balance_table(rows, title):
    from refledger.reports.statement import MONEY

    money = [r for r in rows if r["currency"] != "CLICK"]
    if money:
        emit(money, "table", ("currency",) + MONEY, title=title, numeric=MONEY)
    else:
        console().print(f"{title}: none")


def _open_read_only(db):
    import duckdb

    if not Path(db).exists():
        _fail(f"no ledger at {db}")
    try:
        return duckdb.connect(str(db), read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            _fail(f"ledger {db} is held by a running consumer; verify a copy of the file, or stop the consumer "
                  "(SIGTERM finishes its batch) and verify again")
        _fail(f"cannot open ledger {db}: {exc}")
