"""Commands that read the ledger: balances, explain, quarantine, parked."""

from __future__ import annotations

import click

from refledger.options import db_option, format_option
from refledger.store.queries import BALANCE_COLUMNS, MONEY_ACCOUNTS, SWAP_COLUMNS
from refledger.render import console, emit, emit_json, line


def _query(db, name, **params):
    from refledger.store import queries
    from refledger.store.readside import query

    return query(db, getattr(queries, name), **params)


@click.command()
@db_option
@format_option()
def balances(db, fmt):
    """Each shop's balances per currency, in minor units (SPEC §11).

    earned/owed, pending and payable, received and paid out; swap traffic
    credits as CLICK rows.

    Example: refledger balances --db ledger.duckdb --format json
    """
    rows = _query(db, "balances")
    money = [r for r in rows if r["currency"] != "CLICK"]
    swaps = [r for r in rows if r["currency"] == "CLICK"]
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        emit(rows, "csv", BALANCE_COLUMNS + ("swap_given", "swap_received"))
    else:
        emit(money, "table", BALANCE_COLUMNS, title="balances (minor units)", numeric=MONEY_ACCOUNTS)
        if swaps:
            emit(swaps, "table", SWAP_COLUMNS, title="swap traffic credits",
                 numeric=("swap_given", "swap_received"))


@click.command()
@db_option
@click.option("--order", "order_id", required=True, help="The order id.")
@click.option("--merchant", default=None, help="The merchant, when several share an order id.")
@format_option()
def explain(db, order_id, merchant, fmt):
    """Why an order earned what it earned: clicks, winner, agreement, entries, refunds.

    Example: refledger explain --db ledger.duckdb --order o3 --format json
    """
    found = _query(db, "explain", order_id=order_id, merchant_shop_id=merchant)
    if not found:
        raise click.ClickException(f"no order {order_id!r} in {db}")
    if fmt == "json":
        emit_json(found[0] if len(found) == 1 else found)
        return
    if fmt == "csv":
        emit([e for item in found for e in item["entries"]], "csv",
             ("seq", "entry_id", "event_id", "shop_id", "account", "counterparty_shop_id", "currency",
              "amount", "role", "agreement_id", "agreement_version", "rate_bp", "click_event_id", "refund_id"))
        return
    out = console()
    for item in found:
        decision = item["decision"] or {}
        out.print(line((f"order {item['order_id']}", "bold"), f" at {item['merchant_shop_id']} ({item['log']})"))
        for order in item["order"]:
            body = order["order"]
            out.print(f"  {order['occurred_at']}  visitor {order['visitor_id']}  "
                      f"total {body['total_minor']:,} {body['currency']}  event {order['event_id']}")
        emit(decision.get("clicks") or [], "table",
             ("click_event_id", "referrer_shop_id", "occurred_at", "eligible", "reason"),
             title="clicks considered")
        out.print(f"  winner: {decision.get('winning_click_event_id') or 'none (unattributed)'}"
                  f"  referrer: {decision.get('referrer_shop_id') or '-'}"
                  f"  agreement: {decision.get('agreement_id') or '-'} v{decision.get('agreement_version') or '-'}"
                  f"  model: {decision.get('model') or 'none'}  commission: {decision.get('commission')}")
        emit(item["entries"], "table",
             ("seq", "event_id", "shop_id", "account", "counterparty_shop_id", "amount", "currency", "role"),
             title="entries", numeric=("seq", "amount"))
        if item["refunds"]:
            emit(item["refunds"], "table", ("event_id", "refund_id", "amount_minor", "currency", "occurred_at"),
                 title="refunds", numeric=("amount_minor",))


@click.command()
@db_option
@click.option("--reason", default=None, help="Only this reason code.")
@format_option()
def quarantine(db, reason, fmt):
    """Events that could not be folded, with their reason and source position.

    Example: refledger quarantine --db ledger.duckdb --format json
    """
    rows = _query(db, "quarantine", reason=reason)
    emit(rows, fmt, ("event_id", "reason", "position", "stage", "detail"), title="quarantine")


@click.command()
@db_option
@format_option()
def parked(db, fmt):
    """Refunds folded before their order, waiting for it (SPEC §7).

    Example: refledger parked --db ledger.duckdb
    """
    rows = _query(db, "parked_refunds")
    emit(rows, fmt, ("event_id", "order_id", "merchant_shop_id", "refund_id", "amount_minor", "currency",
                     "occurred_at", "topic", "partition", "offset"),
         title="parked refunds", numeric=("amount_minor",))
