"""Commands that read the ledger: balances, explain, quarantine, parked."""

from __future__ import annotations

import click

from refledger.options import as_option, db_option, format_option, people_options
from refledger.store.queries import BALANCE_COLUMNS, MONEY_ACCOUNTS, SWAP_COLUMNS
from refledger.render import echo, emit, emit_json, headers


def _query(db, name, **params):
    from refledger.store import queries
    from refledger.store.readside import query

    return query(db, getattr(queries, name), **params)


@click.command()
@db_option
@as_option
@format_option()
@people_options
def balances(db, as_shop, fmt, locale, zone):
    """Each shop's balances per currency: money as money in the table, minor units in JSON and CSV (SPEC §11).

    earned/owed, pending and payable, received and paid out; swap traffic
    credits as CLICK rows; the alliance fund ("alliance") as a party.

    Example: refledger balances --db ledger.duckdb --format json
    """
    rows = _query(db, "balances")
    if as_shop is not None:
        from refledger.reports.scoped import balances_as

        rows = balances_as(rows, as_shop)
    money = [r for r in rows if r["currency"] != "CLICK"]
    swaps = [r for r in rows if r["currency"] == "CLICK"]
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        emit(rows, "csv", BALANCE_COLUMNS + ("swap_given", "swap_received"))
    else:
        from refledger.reports.money import format_count, format_money
        from refledger.reports.words import label, party

        shown = [{**r, "shop_id": party(r["shop_id"], locale),
                  **{a: format_money(r[a], r["currency"], locale) for a in MONEY_ACCOUNTS}} for r in money]
        emit(shown, "table", BALANCE_COLUMNS, title=label("balances", locale), numeric=MONEY_ACCOUNTS,
             headers=headers(BALANCE_COLUMNS, locale))
        if swaps:
            counts = [{**r, **{a: format_count(r[a], locale) for a in ("swap_given", "swap_received")}}
                      for r in swaps]
            emit(counts, "table", SWAP_COLUMNS, title=label("swap_credits", locale),
                 numeric=("swap_given", "swap_received"), headers=headers(SWAP_COLUMNS, locale))


@click.command()
@db_option
@click.option("--order", "order_id", required=True, help="The order id.")
@click.option("--merchant", default=None, help="The merchant, when several share an order id.")
@as_option
@format_option()
@people_options
def explain(db, order_id, merchant, as_shop, fmt, locale, zone):
    """Why an order earned what it earned: clicks, winner, agreement, entries, refunds.

    Example: refledger explain --db ledger.duckdb --order o3 --format json
    """
    found = _query(db, "explain", order_id=order_id, merchant_shop_id=merchant)
    if found and as_shop is not None:
        from refledger.reports.scoped import NotVisible, explained_as

        try:
            found = explained_as(found, as_shop)
        except NotVisible:
            found = []
    if not found:
        raise click.ClickException(f"no order {order_id!r} in {db}" + (f" that {as_shop} took part in"
                                                                      if as_shop else ""))
    if fmt == "json":
        emit_json(found[0] if len(found) == 1 else found)
        return
    if fmt == "csv":
        emit([e for item in found for e in item["entries"]], "csv",
             ("seq", "entry_id", "event_id", "shop_id", "account", "counterparty_shop_id", "currency",
              "amount", "role", "agreement_id", "agreement_version", "rate_bp", "click_event_id", "refund_id"))
        return
    from refledger.reports.explained import explained_lines

    for item in found:
        for part in explained_lines(item, locale, zone.key):
            if isinstance(part, str):
                echo(part)
            else:
                title, rows, columns, numeric = part
                emit(rows, "table", columns, title=title, numeric=numeric, headers=headers(columns, locale))


@click.command()
@db_option
@click.option("--reason", default=None, help="Only this reason code.")
@format_option()
@people_options
def quarantine(db, reason, fmt, locale, zone):
    """Events that could not be folded, with their reason and source position.

    The table says what each reason code means, and shows the amounts of
    money and the times the fold's detail states as money and in the
    alliance's zone (a field's value quoted from the event stays as written);
    JSON and CSV keep the detail as the fold wrote it (minor units, UTC).

    Example: refledger quarantine --db ledger.duckdb --format json
    """
    rows = _query(db, "quarantine", reason=reason)
    columns = ("event_id", "reason", "position", "stage", "detail")
    if fmt != "table":
        emit(rows, fmt, columns)
        return
    from refledger.reports.words import label, quarantine_detail, quarantine_reason

    shown = [{**r, "meaning": quarantine_reason(r["reason"], locale),
              "detail": quarantine_detail(r["reason"], r["detail"], locale, zone)} for r in rows]
    columns = ("event_id", "reason", "meaning", "position", "stage", "detail")
    emit(shown, "table", columns, title=label("quarantine", locale), headers=headers(columns, locale))


@click.command()
@db_option
@format_option()
@people_options
def parked(db, fmt, locale, zone):
    """Refunds folded before their order, waiting for it (SPEC §7).

    Example: refledger parked --db ledger.duckdb
    """
    rows = _query(db, "parked_refunds")
    columns = ("event_id", "order_id", "merchant_shop_id", "refund_id", "amount_minor", "currency",
               "occurred_at", "topic", "partition", "offset")
    if fmt == "table":
        from refledger.reports.money import format_money
        from refledger.schemas.codec import parse_time
        from refledger.schemas.periods import show_time

        rows = [{**r, "amount_minor": format_money(r["amount_minor"], r["currency"], locale),
                 "occurred_at": show_time(parse_time(r["occurred_at"]), zone)} for r in rows]
    from refledger.reports.words import label

    emit(rows, fmt, columns, title=label("parked_refunds", locale), numeric=("amount_minor",),
         headers=headers(columns, locale))
