"""Commission reversed by refunds (SPEC §7).

After refunds totalling A the commission reversed so far is
round(C × A / total) half up; each refund posts the difference from the
previous cumulative figure, so a full refund reverses exactly C.
"""

from __future__ import annotations

from refledger.ledger.pricing import round_half_up


def cumulative_reversal(commission: int, refunded: int, total: int) -> int:
    """Commission reversed once ``refunded`` of ``total`` has been refunded."""
    if refunded <= 0 or total <= 0:
        return 0
    if refunded >= total:
        return commission
    return round_half_up(commission * refunded, total)


def reverse_for_refund(commission: int, refunded_before: int, refunded_after: int, total: int) -> int:
    """What one refund step reverses (a positive number reduces the referrer's net)."""
    return (cumulative_reversal(commission, refunded_after, total)
            - cumulative_reversal(commission, refunded_before, total))
