"""What one member may see: its own rows and the alliance's totals (`--as SHOP`).

An operator sends each member its statement, its balances and the story of
its orders. Members compete with each other as much as they cooperate, so
what goes to one member must not tell it what another earned, owes or
referred (the privacy firewall the alliance asked for): these functions cut
a report down to the shop's own rows, and put in their place, where a member
needs the context, the alliance's totals or an anonymous "another member".
They work on the JSON-able results of the read queries, after the query,
so every output form (table, JSON, CSV) is cut the same way.
"""

from __future__ import annotations

from refledger.ledger.entries import MONEY_ACCOUNTS

ANOTHER_MEMBER = "(another member)"
ALLIANCE_TOTAL = "(alliance total)"


class NotVisible(LookupError):
    """The shop may not see this (an order it had nothing to do with)."""


def balances_as(rows: list[dict], shop: str) -> list[dict]:
    """The shop's own balance rows, then one row per currency with the alliance's totals (every
    party's balances summed: what was earned and owed in all, not by whom)."""
    own = [r for r in rows if r["shop_id"] == shop]
    totals: dict[str, dict] = {}
    for r in rows:
        if r["currency"] == "CLICK":
            continue
        total = totals.setdefault(r["currency"], {"shop_id": ALLIANCE_TOTAL, "currency": r["currency"],
                                                  **dict.fromkeys(MONEY_ACCOUNTS, 0)})
        for account in MONEY_ACCOUNTS:
            total[account] += r[account]
    return own + [totals[c] for c in sorted(totals)]


def explained_as(found: list[dict], shop: str) -> list[dict]:
    """The explanations of an order that the shop may see: all of it when it is the merchant (its
    own order); when it referred (or tried to), its own clicks and entries, the others' clicks
    counted but not named, the winner named only when it is the shop."""
    visible = []
    for item in found:
        if item["merchant_shop_id"] == shop:
            visible.append(item)
            continue
        decision = item.get("decision") or {}
        clicks = decision.get("clicks") or []
        involved = any(c["referrer_shop_id"] == shop for c in clicks) or any(
            e["shop_id"] == shop for e in item["entries"])
        if not involved:
            continue
        visible.append(_as_referrer(item, shop))
    if not visible:
        raise NotVisible("no such order in the logs of the shop's own business")
    return visible


def _hide_decision(decision: dict | None, shop: str) -> dict | None:
    if decision is None:
        return None
    won = decision.get("referrer_shop_id") == shop
    hidden = dict(decision)
    hidden["clicks"] = [c if c["referrer_shop_id"] == shop else
                        {**c, "click_event_id": None, "referrer_shop_id": ANOTHER_MEMBER}
                        for c in decision.get("clicks") or ()]
    if not won:
        for key in ("referrer_shop_id", "winning_click_event_id"):
            if hidden.get(key) is not None:
                hidden[key] = ANOTHER_MEMBER if key == "referrer_shop_id" else None
        hidden["commission"] = None
    return hidden


def _as_referrer(item: dict, shop: str) -> dict:
    hidden = dict(item)
    hidden["decision"] = _hide_decision(item.get("decision"), shop)
    hidden["history"] = [_hide_decision(d, shop) for d in item.get("history") or ()]
    hidden["winning_click"] = hidden["decision"].get("winning_click_event_id") if hidden["decision"] else None
    hidden["entries"] = [e for e in item["entries"] if e["shop_id"] == shop]
    hidden["refused"] = []  # the merchant's own refused copies of its order are its business
    return hidden
