"""Events as frozen records, parsed from the codec's record dicts.

``parse_event(record)`` turns a record (SPEC §2 JSON Lines shape, times in
epoch milliseconds) into one of the event classes below, or raises
``BadRecord`` (quarantined as ``schema_invalid``) when the record does not
have the shape the codec promised. The SPEC §4 checks are in ``checks.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

DAY_MS = 86_400_000
ALLIANCE = "alliance"
ANY = "*"
MODELS = frozenset({"cps", "cpa", "cpc", "swap", "none"})
STATUSES = frozenset({"active", "suspended", "expelled", "left"})  # left: of its own accord; earns like expelled

# Reason codes the fold hands out (SPEC §4).
SCHEMA_INVALID = "schema_invalid"
UNKNOWN_SHOP = "unknown_shop"
SHOP_MISMATCH = "shop_mismatch"
NEGATIVE_AMOUNT = "negative_amount"
TOTAL_MISMATCH = "total_mismatch"
UNKNOWN_CURRENCY = "unknown_currency"
CURRENCY_MISMATCH = "currency_mismatch"
REFUND_EXCEEDS_ORDER = "refund_exceeds_order"
CONFLICTING_DUPLICATE = "conflicting_duplicate"
DUPLICATE_ORDER = "duplicate_order"
RETROACTIVE_AGREEMENT = "retroactive_agreement"
PAYOUT_EXCEEDS_PAYABLE = "payout_exceeds_payable"
BAD_SIGNATURE = "bad_signature"
PERIOD_CLOSED = "period_closed"
FUTURE_CLOSE = "future_close"
PERSONAL_DATA = "personal_data"

Problem = tuple[str, str]  # (reason code, human detail)

_new = tuple.__new__


class View(NamedTuple):
    """A placement promoting the merchant was shown to the visitor.

    Views and clicks are nine events in ten: named tuples, cheap to build (with
    ``tuple.__new__`` from fields already checked) and to keep by the million."""

    type = "view"
    event_id: str
    occurred_at: int
    shop_id: str
    visitor_id: str | None
    referrer_shop_id: str
    merchant_shop_id: str
    placement_id: str | None


class Click(NamedTuple):
    """The visitor clicked from the referrer's page through to the merchant (a named tuple, like
    ``View``)."""

    type = "click"
    event_id: str
    occurred_at: int
    shop_id: str
    visitor_id: str | None
    referrer_shop_id: str
    merchant_shop_id: str
    placement_id: str | None


# One line of an order: (sku, category, quantity, unit_price_minor). A plain
# tuple of strings and integers: orders are kept for as long as the ledger
# lives, and such tuples are free for the garbage collector, records are not.
OrderLine = tuple[str, str, int, int]


@dataclass(frozen=True, slots=True)
class Order:
    """An order at the merchant; ``lines`` are (sku, category, quantity, unit_price_minor)."""

    type: ClassVar[str] = "order"
    event_id: str
    occurred_at: int
    shop_id: str
    visitor_id: str | None
    order_id: str
    merchant_shop_id: str
    currency: str
    lines: tuple[OrderLine, ...]
    total_minor: int


@dataclass(frozen=True, slots=True)
class Refund:
    type: ClassVar[str] = "refund"
    event_id: str
    occurred_at: int
    shop_id: str
    visitor_id: str | None
    order_id: str
    refund_id: str
    merchant_shop_id: str
    currency: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Member:
    """A shop's membership status from ``occurred_at`` on."""

    type: ClassVar[str] = "member"
    event_id: str
    occurred_at: int
    shop_id: str
    member_shop_id: str
    status: str
    public_key: str | None  # the shop's signing key from now on; None keeps the previous one (SPEC §4a)


@dataclass(frozen=True, slots=True)
class Agreement:
    """One version of an agreement, for a (merchant, referrer) scope."""

    type: ClassVar[str] = "agreement"
    event_id: str
    occurred_at: int
    shop_id: str
    agreement_id: str
    version: int
    effective_from: int
    merchant_shop_id: str
    referrer_shop_id: str
    model: str
    rate_bp: int | None
    category_rates_bp: tuple[tuple[str, int], ...]
    amount_minor: int | None
    currency: str | None
    attribution_window_days: int
    hold_days: int

    @property
    def precedence(self) -> tuple:
        """Within a scope: greatest effective_from, then version (then id, event id)."""
        return (self.effective_from, self.version, self.agreement_id, self.event_id)


@dataclass(frozen=True, slots=True)
class Settlement:
    type: ClassVar[str] = "settlement"
    event_id: str
    occurred_at: int
    shop_id: str
    settlement_id: str
    period_end: int


@dataclass(frozen=True, slots=True)
class Close:
    """The books are closed through ``closed_through``: what occurred at or before it is final (SPEC §9a)."""

    type: ClassVar[str] = "close"
    event_id: str
    occurred_at: int
    shop_id: str
    close_id: str
    closed_through: int


@dataclass(frozen=True, slots=True)
class Policy:
    """The alliance's whole signing policy from this event on (SPEC §4a)."""

    type: ClassVar[str] = "policy"
    event_id: str
    occurred_at: int
    shop_id: str
    policy_id: str
    require_signatures: bool
    operator_public_key: str | None  # None keeps the previous key


@dataclass(frozen=True, slots=True)
class Payout:
    type: ClassVar[str] = "payout"
    event_id: str
    occurred_at: int
    shop_id: str
    payout_id: str
    merchant_shop_id: str
    referrer_shop_id: str
    currency: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Adjustment:
    type: ClassVar[str] = "adjustment"
    event_id: str
    occurred_at: int
    shop_id: str
    adjustment_id: str
    merchant_shop_id: str
    referrer_shop_id: str
    currency: str
    amount_minor: int
    reason: str | None


Event = View | Click | Order | Refund | Member | Agreement | Settlement | Close | Policy | Payout | Adjustment

# Events dated in the books: a close makes those at or before closed_through final (SPEC §9a). The
# others act in log order and keep their real date.
DATED_TYPES = frozenset({"view", "click", "order", "refund", "member", "agreement"})


# SPEC §2: an event_id has 1 to 64 characters (the codec's twin: schemas.shape.EVENT_ID_MAX_CHARS; the
# fold imports nothing from the layers around it)
EVENT_ID_MAX_CHARS = 64
# SPEC §9a: an agreement's attribution_window_days and hold_days are 0 to 90 (the codec's twin:
# schemas.shape.MAX_DAYS); a close forgets clicks older than that
MAX_DAYS = 90


class BadRecord(Exception):
    """The record does not have the shape the codec promises."""


def _int(value) -> int:
    if type(value) is not int:
        raise BadRecord(f"expected an integer, got {value!r}")
    return value


def _str(value) -> str:
    if type(value) is not str:
        raise BadRecord(f"expected a string, got {value!r}")
    return value


def _opt_str(value) -> str | None:
    return None if value is None else _str(value)


def _opt_int(value) -> int | None:
    return None if value is None else _int(value)


def traffic_event(kind: str, event_id: str, occurred_at: int, shop_id: str, visitor_id: str | None,
                  referrer_shop_id: str, merchant_shop_id: str, placement_id: str | None) -> View | Click:
    """A view or click from fields a reader has already checked (the consumer's fast path)."""
    return _new(View if kind == "view" else Click,
                (event_id, occurred_at, shop_id, visitor_id, referrer_shop_id, merchant_shop_id, placement_id))


def _traffic(cls, rec, p):
    fields = (rec["event_id"], rec["occurred_at"], rec["shop_id"], rec.get("visitor_id"),
              p["referrer_shop_id"], p["merchant_shop_id"], p.get("placement_id"))
    event_id, at, shop, visitor, referrer, merchant, placement = fields
    if not (type(event_id) is str and type(at) is int and type(shop) is str and type(referrer) is str
            and type(merchant) is str and (visitor is None or type(visitor) is str)
            and (placement is None or type(placement) is str)):
        raise BadRecord(f"malformed {cls.type} record")
    return _new(cls, fields)


def _line(ln) -> OrderLine:
    sku, category, quantity, price = ln["sku"], ln["category"], ln["quantity"], ln["unit_price_minor"]
    if not (type(sku) is str and type(category) is str and type(quantity) is int and type(price) is int):
        raise BadRecord("malformed order line")
    return (sku, category, quantity, price)


def _order(rec, p):
    ev = Order(rec["event_id"], rec["occurred_at"], rec["shop_id"], rec.get("visitor_id"), p["order_id"],
               p["merchant_shop_id"], p["currency"], tuple(map(_line, p["lines"])), p["total_minor"])
    if not (type(ev.event_id) is str and type(ev.occurred_at) is int and type(ev.shop_id) is str
            and (ev.visitor_id is None or type(ev.visitor_id) is str) and type(ev.order_id) is str
            and type(ev.merchant_shop_id) is str and type(ev.currency) is str and type(ev.total_minor) is int):
        raise BadRecord("malformed order record")
    return ev


def _refund(rec, p):
    return Refund(_str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]),
                  _opt_str(rec.get("visitor_id")), _str(p["order_id"]), _str(p["refund_id"]),
                  _str(p["merchant_shop_id"]), _str(p["currency"]), _int(p["amount_minor"]))


def _member(rec, p):
    status = _str(p["status"])
    if status not in STATUSES:
        raise BadRecord(f"unknown member status {status!r}")
    return Member(_str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]),
                  _str(p["member_shop_id"]), status, _opt_str(p.get("public_key")))


def _agreement(rec, p):
    model = _str(p["model"])
    if model not in MODELS:
        raise BadRecord(f"unknown agreement model {model!r}")
    rates = p.get("category_rates_bp") or {}
    if not isinstance(rates, dict):
        raise BadRecord("category_rates_bp is not a map")
    window = 15 if p.get("attribution_window_days") is None else _int(p["attribution_window_days"])
    hold = 15 if p.get("hold_days") is None else _int(p["hold_days"])
    for name, days in (("attribution_window_days", window), ("hold_days", hold)):
        if days > MAX_DAYS:  # SPEC §9a (a shape rule, so before every other check): a close forgets older clicks
            raise BadRecord(f"agreement {name} is {days} days; at most {MAX_DAYS}")
    return Agreement(
        _str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]),
        _str(p["agreement_id"]), _int(p["version"]), _int(p["effective_from"]),
        _str(p["merchant_shop_id"]), _str(p["referrer_shop_id"]), model,
        _opt_int(p.get("rate_bp")),
        tuple(sorted((_str(k), _int(v)) for k, v in rates.items())),
        _opt_int(p.get("amount_minor")), _opt_str(p.get("currency")), window, hold)


def _settlement(rec, p):
    return Settlement(_str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]),
                      _str(p["settlement_id"]), _int(p["period_end"]))


def _close(rec, p):
    return Close(_str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]), _str(p["close_id"]),
                 _int(p["closed_through"]))


def _policy(rec, p):
    required = p.get("require_signatures")
    if required is not None and type(required) is not bool:
        raise BadRecord(f"require_signatures must be true or false, got {required!r}")
    return Policy(_str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]), _str(p["policy_id"]),
                  bool(required), _opt_str(p.get("operator_public_key")))


def _payout(rec, p):
    return Payout(_str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]),
                  _str(p["payout_id"]), _str(p["merchant_shop_id"]), _str(p["referrer_shop_id"]),
                  _str(p["currency"]), _int(p["amount_minor"]))


def _adjustment(rec, p):
    return Adjustment(_str(rec["event_id"]), _int(rec["occurred_at"]), _str(rec["shop_id"]),
                      _str(p["adjustment_id"]), _str(p["merchant_shop_id"]), _str(p["referrer_shop_id"]),
                      _str(p["currency"]), _int(p["amount_minor"]), _opt_str(p.get("reason")))


def _view(rec, p):
    return _traffic(View, rec, p)


def _click(rec, p):
    return _traffic(Click, rec, p)


_PARSERS = {
    "view": _view,
    "click": _click,
    "order": _order,
    "refund": _refund,
    "member": _member,
    "agreement": _agreement,
    "settlement": _settlement,
    "close": _close,
    "policy": _policy,
    "payout": _payout,
    "adjustment": _adjustment,
}


def parse_event(record: dict) -> Event:
    """The record as a frozen event; raises ``BadRecord`` if its shape is wrong."""
    try:
        kind = record["type"]
        parser = _PARSERS.get(kind)
        if parser is None:
            raise BadRecord(f"unknown event type {kind!r}")
        payload = record[kind]
        if not isinstance(payload, dict):
            raise BadRecord(f"payload {kind!r} is not an object")
        event = parser(record, payload)
    except BadRecord:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadRecord(f"malformed record: {exc!r}") from exc
    if not 0 < len(event.event_id) <= EVENT_ID_MAX_CHARS:  # a string: every parser checks it
        raise BadRecord(f"event_id must have 1 to {EVENT_ID_MAX_CHARS} characters, has {len(event.event_id)}")
    return event
