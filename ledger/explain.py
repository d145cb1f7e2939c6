"""``explain``: everything the ledger knows about one order, as JSON-able data."""

from __future__ import annotations

from ledger.orders import decide


def _refund_row(refund, status: str) -> dict:
    return {"event_id": refund.event_id, "refund_id": refund.refund_id, "occurred_at": refund.occurred_at,
            "amount_minor": refund.amount_minor, "currency": refund.currency, "status": status}


def explain(fold, merchant_shop_id: str, order_id: str) -> dict | None:
    """The order, its latest attribution decision, every entry posted for it, every refund.

    None when the partition knows neither the order nor a refund waiting for it.
    The decision is recomputed from the fold's current state: its winner and
    terms are those of the last recomputation (every event that could change
    them triggers one, and it is named as ``event_id``); the clicks listed are
    all the visitor's clicks to the merchant known now.
    """
    orders, journal = fold.orders, fold.journal
    subject = orders.get(merchant_shop_id, order_id)
    parked = orders.parked_for(merchant_shop_id, order_id)
    if subject is None and not parked:
        return None
    result = {"merchant_shop_id": merchant_shop_id, "order_id": order_id, "order": None, "decision": None,
              "posted": None, "entries": [], "refunds": [_refund_row(r, "parked") for r in parked]}
    if subject is None:
        return result
    order = subject.order
    terms = subject.terms
    result["order"] = {
        "event_id": order.event_id, "occurred_at": order.occurred_at, "visitor_id": order.visitor_id,
        "currency": order.currency, "total_minor": order.total_minor,
        "lines": [{"sku": sku, "category": category, "quantity": quantity, "unit_price_minor": price}
                  for sku, category, quantity, price in order.lines],
    }
    decision, _terms = decide(subject, subject.decided_by, fold.clicks, fold.agreements, fold.membership)
    result["decision"] = decision.to_dict()
    result["posted"] = {
        "referrer_shop_id": terms.referrer_shop_id if terms else None,
        "currency": terms.currency if terms else None,
        "commission": terms.commission if terms else 0,
        "refunded_minor": subject.refunded,
        "net": subject.net,
        "settled": subject.settled,
    }
    result["entries"] = [e.to_dict() for e in journal.entries_for(subject.subject_id)]
    result["refunds"] = [_refund_row(r, status) for r, status in subject.refunds] + result["refunds"]
    return result
