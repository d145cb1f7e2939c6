"""What an attributed order earns (SPEC §6), in exact integer arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

from refledger.ledger.events import Agreement, Order

BP = 10_000


def round_half_up(num: int, den: int) -> int:
    """num / den rounded to a whole unit, halves away from zero (den > 0)."""
    if den <= 0:
        raise ValueError("round_half_up needs a positive denominator")
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


@dataclass(frozen=True, slots=True)
class Pricing:
    """The commission C of one order under one agreement."""

    commission: int
    currency: str
    model: str
    rate_bp: int | None
    category_rates_bp: tuple[tuple[str, int], ...]  # the category rates that applied to a line
    line_commissions: tuple[int, ...]


def price_order(order: Order, agreement: Agreement) -> Pricing:
    """cps: Σ round(q × price × rate / 10000) per line; cpa: the agreement's amount."""
    if agreement.model == "cps":
        per_line = []
        used: dict[str, int] = {}
        category_rates = agreement.category_rates_bp
        for _sku, line_category, quantity, unit_price in order.lines:
            rate = None
            if category_rates:
                for category, category_rate in category_rates:
                    if category == line_category:
                        rate = used[category] = category_rate
                        break
            if rate is None:
                rate = agreement.rate_bp or 0
            per_line.append(round_half_up(quantity * unit_price * rate, BP))
        return Pricing(sum(per_line), order.currency, "cps", agreement.rate_bp,
                       tuple(sorted(used.items())), tuple(per_line))
    if agreement.model == "cpa":
        return Pricing(agreement.amount_minor or 0, agreement.currency or order.currency, "cpa",
                       None, (), ())
    return Pricing(0, order.currency, agreement.model, None, (), ())
