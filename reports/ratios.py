"""The ratios of SPEC §14, in exact integer arithmetic, rounded half up (never floats until shown).

* conversion = orders / UV, to 4 decimals;
* UV yield = GMV / UV, to a whole minor unit;
* reciprocity = clicks given / clicks received, to 4 decimals (our definition: 1 gives as much
  traffic as it takes, 0.25 gives one click for every four it receives).

Each is None when its denominator is 0. A ratio to 4 decimals comes back as the float nearest
to it, whose shortest text form is those 4 decimals (``0.0833``).
"""

from __future__ import annotations

SCALE = 10_000  # 4 decimals


def half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half away from zero (denominator > 0)."""
    quotient = (2 * abs(numerator) + denominator) // (2 * denominator)
    return quotient if numerator >= 0 else -quotient


def four_decimals(numerator: int, denominator: int) -> float | None:
    if denominator == 0:
        return None
    return half_up(numerator * SCALE, denominator) / SCALE


def conversion(orders: int, uv: int) -> float | None:
    return four_decimals(orders, uv)


def uv_yield(gmv_minor: int, uv: int) -> int | None:
    return None if uv == 0 else half_up(gmv_minor, uv)


def reciprocity(clicks_out: int, clicks_in: int) -> float | None:
    return four_decimals(clicks_out, clicks_in)
