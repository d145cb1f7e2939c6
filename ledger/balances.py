"""Balances per (shop, currency) in the SPEC §11 JSON shape, from entries alone."""

from __future__ import annotations

from typing import Iterable

from refledger.ledger.entries import CLICK, CREDIT_ACCOUNTS, MONEY_ACCOUNTS, SWAP_ACCOUNTS, Entry


def balances(entries: Iterable[Entry | dict]) -> list[dict]:
    """One dict per (shop, currency): money rows first, then swap-credit (``CLICK``) rows,
    each group sorted by shop id then currency.

    Money rows: earned_pending, earned_payable, owed_pending, owed_payable,
    received, paid_out. Swap rows: swap_given, swap_received. Entries may be
    ``Entry`` objects or dicts with the same keys (e.g. rows read back from a store).
    """
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for entry in entries:
        if isinstance(entry, dict):
            shop, currency, account, amount = entry["shop_id"], entry["currency"], entry["account"], entry["amount"]
        else:
            shop, currency, account, amount = entry.shop_id, entry.currency, entry.account, entry.amount
        row = sums.get((shop, currency))
        if row is None:
            accounts = SWAP_ACCOUNTS if currency == CLICK else MONEY_ACCOUNTS
            row = sums[(shop, currency)] = dict.fromkeys(accounts, 0)
        row[account] += -amount if account in CREDIT_ACCOUNTS else amount
    keys = sorted(sums, key=lambda k: (k[1] == CLICK, k[0], k[1]))
    return [{"shop_id": shop, "currency": currency, **sums[(shop, currency)]} for shop, currency in keys]
