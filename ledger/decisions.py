"""Attribution decisions: what the fold decided for an order, and why (for ``explain``)."""

from __future__ import annotations

from typing import NamedTuple

from refledger.ledger.attribution import ClickConsidered


class AttributionDecision(NamedTuple):
    """The (re)computed attribution and pricing of one order, caused by ``event_id``.

    A named tuple, like ``Entry``: immutable and cheap to build for every order repriced."""

    event_id: str
    order_event_id: str
    order_id: str
    merchant_shop_id: str
    visitor_id: str | None
    order_occurred_at: int
    clicks: tuple[ClickConsidered, ...]
    winning_click_event_id: str | None
    referrer_shop_id: str | None
    agreement_id: str | None
    agreement_version: int | None
    model: str | None
    rate_bp: int | None
    category_rates_bp: tuple[tuple[str, int], ...]
    commission: int
    currency: str
    hold_days: int | None

    @property
    def attributed(self) -> bool:
        return self.referrer_shop_id is not None

    def to_dict(self) -> dict:
        return {
            "event_id": self.event_id,
            "order_event_id": self.order_event_id,
            "order_id": self.order_id,
            "merchant_shop_id": self.merchant_shop_id,
            "visitor_id": self.visitor_id,
            "order_occurred_at": self.order_occurred_at,
            "clicks": [c.to_dict() for c in self.clicks],
            "winning_click_event_id": self.winning_click_event_id,
            "referrer_shop_id": self.referrer_shop_id,
            "agreement_id": self.agreement_id,
            "agreement_version": self.agreement_version,
            "model": self.model,
            "rate_bp": self.rate_bp,
            "category_rates_bp": dict(self.category_rates_bp),
            "commission": self.commission,
            "currency": self.currency,
            "hold_days": self.hold_days,
        }
