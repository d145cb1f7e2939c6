"""Who referred an order (SPEC §5).

A click c is eligible for order O (merchant M, visitor V, time t) when it is
for M by V, c.occurred_at ≤ t, the referrer is not M, the referrer is active
at c.occurred_at, and the agreement resolved for (M, referrer) at t is cps or
cpa with t − c.occurred_at ≤ its window (inclusive). The last eligible click
wins: latest occurred_at, then the greater event id by code point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

from refledger.ledger.events import DAY_MS, Agreement, Order

class ClickRef(NamedTuple):
    """A click as the click index keeps it (see ``ledger.clicks``). Its natural order is the rules'
    (occurred_at, event_id) order. Built with ``tuple.__new__`` where clicks arrive by the million."""

    occurred_at: int
    event_id: str
    referrer_shop_id: str
    merchant_shop_id: str
    visitor_id: str | None

Resolve = Callable[[str, str, int], "Agreement | None"]
StatusAt = Callable[[str, int], "str | None"]

ATTRIBUTING_MODELS = ("cps", "cpa")


class ClickConsidered(NamedTuple):
    """One click the attribution looked at, and why it could or could not win (a named tuple:
    an order may look at many)."""

    click_event_id: str
    referrer_shop_id: str
    occurred_at: int
    eligible: bool
    reason: str

    def to_dict(self) -> dict:
        return {"click_event_id": self.click_event_id, "referrer_shop_id": self.referrer_shop_id,
                "occurred_at": self.occurred_at, "eligible": self.eligible, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Attribution:
    winner: ClickRef | None
    agreement: Agreement | None  # resolved for (M, winner's referrer) at the order's time
    considered: tuple[ClickConsidered, ...]


def why_not_eligible(order: Order, click: ClickRef, resolve: Resolve, status_at: StatusAt):
    """(reason, agreement): reason is None when the click is eligible."""
    merchant, t = order.merchant_shop_id, order.occurred_at
    at, referrer = click.occurred_at, click.referrer_shop_id
    if at > t:
        return "after the order", None
    if referrer == merchant:
        return "self-referral", None
    status = status_at(referrer, at)
    if status != "active":
        return (f"referrer {status} at the click" if status else "referrer not yet a member at the click"), None
    agreement = resolve(merchant, referrer, t)
    if agreement is None or agreement.model == "none":
        return "no agreement in effect (model none)", None
    if agreement.model not in ATTRIBUTING_MODELS:
        return f"agreement model {agreement.model}", None
    if t - at > agreement.attribution_window_days * DAY_MS:
        return f"outside {agreement.attribution_window_days}-day window", None
    return None, agreement


def attribute_order(order: Order, clicks: Iterable[ClickRef], resolve: Resolve, status_at: StatusAt) -> Attribution:
    """The winning click (or None), its agreement, and every click considered.

    ``clicks`` are the visitor's clicks to the order's merchant, in
    (occurred_at, event_id) order, as the click index keeps them.
    """
    checked = []
    winner = None
    winner_agreement = None
    for click in clicks:
        reason, agreement = why_not_eligible(order, click, resolve, status_at)
        checked.append((click, reason))
        if reason is None:
            winner, winner_agreement = click, agreement  # sorted: the last eligible one wins
    considered = tuple(
        ClickConsidered(c.event_id, c.referrer_shop_id, c.occurred_at, reason is None,
                        reason if reason is not None
                        else ("last eligible click: wins" if c is winner else "eligible, but a later click wins"))
        for c, reason in checked)
    return Attribution(winner, winner_agreement, considered)

