"""The simulated alliance: deterministic, well-formed, realistic, and honest about its bad events."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict

import pytest

from refledger.producers.operator import close_record, settlement_record
from refledger.producers.simulate import GHOSTS, SimulationConfig, simulate
from refledger.schemas.periods import alliance_zone
from refledger.schemas import codec

DAY_MS = 86_400_000
NOV_1 = 1_793_491_200_000  # 2026-11-01T00:00:00Z
SHANGHAI_NOV_END = NOV_1 + 29 * DAY_MS + 16 * 3_600_000 - 1  # 2026-11-30T15:59:59.999Z, midnight in Beijing
ENVELOPE = ("event_id", "type", "occurred_at", "alliance_id", "shop_id", "visitor_id")
SHOP_TYPES = {"view", "click", "order", "refund"}
PLACEMENT = {"referrer_shop_id": str, "merchant_shop_id": str, "placement_id": str}
PAYLOADS = {
    "view": PLACEMENT,
    "click": PLACEMENT,
    "order": {"order_id": str, "merchant_shop_id": str, "currency": str, "lines": list, "total_minor": int},
    "refund": {"order_id": str, "refund_id": str, "merchant_shop_id": str, "currency": str, "amount_minor": int},
    "member": {"member_shop_id": str, "status": str, "public_key": type(None)},
    "agreement": {"agreement_id": str, "version": int, "effective_from": int, "merchant_shop_id": str,
                  "referrer_shop_id": str, "model": str, "rate_bp": (int, type(None)),
                  "category_rates_bp": dict, "amount_minor": (int, type(None)),
                  "currency": (str, type(None)), "attribution_window_days": int, "hold_days": int},
    "settlement": {"settlement_id": str, "period_end": int},
    "close": {"close_id": str, "closed_through": int},
    "payout": {"payout_id": str, "merchant_shop_id": str, "referrer_shop_id": str, "currency": str,
               "amount_minor": int},
    "adjustment": {"adjustment_id": str, "merchant_shop_id": str, "referrer_shop_id": str, "currency": str,
                   "amount_minor": int, "reason": str},
}
LINE = {"sku": str, "category": str, "quantity": int, "unit_price_minor": int}


@pytest.fixture(scope="module")
def alliance():
    """The default alliance (seed 1): 30 days from 2026-11-01, bad and late events included."""
    return list(simulate(SimulationConfig(seed=1)))


@pytest.fixture(scope="module")
def clean_alliance():
    """No bad events, two and a half months: two settlements with payouts after each."""
    return list(simulate(SimulationConfig(seed=5, visitors=800, days=75, bad_rate=0.0)))


def check_fields(where: str, obj: dict, fields: dict) -> None:
    assert list(obj) == list(fields), f"{where}: fields {list(obj)}"
    for name, kind in fields.items():
        assert isinstance(obj[name], kind) and not isinstance(obj[name], bool), f"{where}.{name}: {obj[name]!r}"


def check_shape(record: dict) -> None:
    """The record of docs/architecture.md: envelope, one payload named by type, times as int millis."""
    kind = record["type"]
    assert list(record) == [*ENVELOPE, kind]
    assert 0 < len(record["event_id"]) <= 64
    assert type(record["occurred_at"]) is int
    assert isinstance(record["alliance_id"], str) and isinstance(record["shop_id"], str)
    payload = record[kind]
    check_fields(kind, payload, PAYLOADS[kind])
    if kind in SHOP_TYPES:
        assert re.fullmatch(r"v-[0-9a-f]{6}", record["visitor_id"])
    else:
        assert record["visitor_id"] is None and record["shop_id"] == "alliance"
    if "currency" in payload and payload["currency"] is not None:
        assert re.fullmatch(r"[A-Z]{3}", payload["currency"])
    if kind == "order":
        assert payload["lines"]
        for line in payload["lines"]:
            check_fields("order.lines", line, LINE)
            assert line["quantity"] >= 1 and line["unit_price_minor"] >= 0
    elif kind == "member":
        assert payload["status"] in ("active", "suspended", "expelled")
    elif kind == "agreement":
        model = payload["model"]
        assert model in ("cps", "cpa", "cpc", "swap", "none")
        assert (payload["rate_bp"] is not None) == (model == "cps")
        assert (payload["amount_minor"] is not None) == (payload["currency"] is not None) == (model in ("cpa", "cpc"))
        assert all(isinstance(k, str) and type(v) is int for k, v in payload["category_rates_bp"].items())


def lines_total(order: dict) -> int:
    return sum(line["quantity"] * line["unit_price_minor"] for line in order["lines"])


def named_shops(record: dict) -> set[str]:
    payload = record[record["type"]]
    return {record["shop_id"]} | {payload[k] for k in ("referrer_shop_id", "merchant_shop_id") if k in payload}


# -- determinism and size ----------------------------------------------------------


def test_same_seed_gives_the_same_records_byte_for_byte():
    cfg = SimulationConfig(seed=7, visitors=800, events=30_000)
    first = json.dumps(list(simulate(cfg)), sort_keys=False)
    assert json.dumps(list(simulate(cfg)), sort_keys=False) == first


def test_another_seed_gives_another_alliance():
    one = list(simulate(SimulationConfig(seed=7, events=5_000)))
    other = list(simulate(SimulationConfig(seed=8, events=5_000)))
    assert one != other
    assert [r for r in one if r["type"] == "view"][:100] != [r for r in other if r["type"] == "view"][:100]


def test_events_n_stops_after_exactly_n_records():
    assert len(list(simulate(SimulationConfig(seed=2, events=5_000)))) == 5_000
    assert list(simulate(SimulationConfig(seed=2, events=0))) == []
    # events=N runs past `days` when it needs to: a month-end settlement comes along
    long_run = simulate(SimulationConfig(seed=2, visitors=300, days=3, events=60_000))
    assert sum(1 for r in long_run if r["type"] == "settlement") >= 1


def test_settlements_can_be_left_out():
    kinds = {r["type"] for r in simulate(SimulationConfig(seed=4, visitors=300, days=40, settlements=False))}
    assert kinds.isdisjoint({"settlement", "payout", "adjustment"}) and "order" in kinds


@pytest.mark.parametrize("bad", [{"shops": 1}, {"visitors": 0}, {"bad_rate": 1.5}, {"start": "2026-13-01"},
                                 {"events": -1}])
def test_nonsense_configs_are_refused(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)


def test_generation_is_lazy():
    stream = simulate(SimulationConfig(seed=3, events=10_000_000))
    first = [next(stream) for _ in range(1000)]
    assert len(first) == 1000


def test_days_bound_the_traffic(alliance):
    traffic = [r["occurred_at"] for r in alliance if r["type"] in SHOP_TYPES]
    assert NOV_1 <= min(traffic) and max(traffic) < NOV_1 + 30 * DAY_MS


# -- shape -------------------------------------------------------------------------


def test_every_record_has_the_shape_of_its_type(alliance):
    for record in alliance:
        check_shape(record)


def test_records_are_already_in_the_codecs_normal_form(alliance):
    for record in alliance[::97]:
        assert codec.validate_record(record) == record


def test_clean_shop_events_are_emitted_by_the_party_their_type_requires(clean_alliance):
    for record in clean_alliance:
        kind, payload = record["type"], record[record["type"]]
        if kind in ("view", "click"):
            assert record["shop_id"] == payload["referrer_shop_id"]
        elif kind in ("order", "refund"):
            assert record["shop_id"] == payload["merchant_shop_id"]


# -- the alliance's story ------------------------------------------------------------


def test_members_and_agreements_come_before_the_shop_events_that_name_them(alliance, clean_alliance):
    for stream, allowed_strangers in ((clean_alliance, set()), (alliance, set(GHOSTS))):
        members: set[str] = set()
        agreements = 0
        for record in stream:
            kind = record["type"]
            if kind == "member":
                members.add(record["member"]["member_shop_id"])
            elif kind == "agreement":
                agreements += 1
                payload = record["agreement"]
                assert {payload["merchant_shop_id"], payload["referrer_shop_id"]} - {"*"} <= members
            elif kind in SHOP_TYPES:
                assert agreements >= 1
                assert named_shops(record) - members <= allowed_strangers, record
            else:
                assert named_shops(record) - {"alliance"} <= members, record


def test_the_opening_terms_cover_every_model(alliance):
    agreements = [r["agreement"] for r in alliance if r["type"] == "agreement"]
    assert {a["model"] for a in agreements} == {"cps", "cpa", "cpc", "swap"}
    default = [a for a in agreements if a["merchant_shop_id"] == a["referrer_shop_id"] == "*"]
    assert [a["version"] for a in default] == [1, 2]
    assert default[0]["category_rates_bp"]["toys"] == 1000


def test_agreements_are_never_retroactive_except_the_deliberate_one(alliance, clean_alliance):
    def backdated(stream):
        return [r["agreement"]["agreement_id"] for r in stream
                if r["type"] == "agreement" and r["agreement"]["effective_from"] < r["occurred_at"]]
    assert backdated(clean_alliance) == []
    assert backdated(alliance) == ["backdated-bonus"]
    later = [r for r in clean_alliance if r["type"] == "agreement" and r["agreement"]["version"] > 1]
    assert later and all(r["agreement"]["effective_from"] > r["occurred_at"] + DAY_MS for r in later)


def test_a_member_is_suspended_mid_period(alliance):
    statuses = [(r["member"]["member_shop_id"], r["member"]["status"]) for r in alliance if r["type"] == "member"]
    assert any(status == "suspended" for _, status in statuses)


def test_orders_add_up_except_deliberate_mismatches(alliance, clean_alliance):
    assert all(lines_total(r["order"]) == r["order"]["total_minor"]
               for r in clean_alliance if r["type"] == "order")
    orders = [r["order"] for r in alliance if r["type"] == "order"]
    wrong = [o for o in orders if lines_total(o) != o["total_minor"]]
    assert 0 < len(wrong) < len(orders) / 200
    assert all(1 <= len(o["lines"]) <= 4 for o in orders)
    assert {o["currency"] for o in orders} == {"CNY", "RMB"}


def test_refunds_never_exceed_their_order(clean_alliance):
    totals = {r["order"]["order_id"]: r["order"]["total_minor"] for r in clean_alliance if r["type"] == "order"}
    refunded = Counter()
    for record in clean_alliance:
        if record["type"] == "refund":
            refund = record["refund"]
            assert refund["amount_minor"] > 0 and refund["currency"] == "CNY"
            refunded[refund["order_id"]] += refund["amount_minor"]
    assert refunded
    assert all(amount <= totals[order_id] for order_id, amount in refunded.items())
    assert any(amount == totals[order_id] for order_id, amount in refunded.items())
    assert any(amount < totals[order_id] for order_id, amount in refunded.items())


def test_the_only_excessive_or_negative_refunds_are_deliberate(alliance):
    orders = {r["order"]["order_id"]: r for r in alliance if r["type"] == "order"}
    refunds = [r["refund"] for r in alliance if r["type"] == "refund"]
    negative = [f for f in refunds if f["amount_minor"] <= 0]
    excessive = [f for f in refunds if f["amount_minor"] > orders[f["order_id"]]["order"]["total_minor"]]
    assert negative and excessive
    assert len(negative) + len(excessive) < len(refunds) / 100


def test_the_funnel_narrows(alliance):
    mix = Counter(r["type"] for r in alliance)
    total = sum(mix.values())
    assert mix["view"] > mix["click"] > mix["order"] > mix["refund"] > 0
    assert 0.25 < mix["click"] / total < 0.35
    assert 0.05 < mix["order"] / total < 0.11
    assert 0.01 < mix["refund"] / total < 0.04


def test_some_clicks_are_self_referrals(alliance):
    clicks = [r["click"] for r in alliance if r["type"] == "click"]
    assert 0 < sum(c["referrer_shop_id"] == c["merchant_shop_id"] for c in clicks) < len(clicks) / 10


def test_month_end_settlement_then_payouts(alliance):
    """November ends at midnight Beijing time; its settlement is the one `refledger settle` publishes."""
    settlements = [r for r in alliance if r["type"] == "settlement"]
    assert settlements == [settlement_record("sim", "2026-11", alliance_zone("Asia/Shanghai"))]
    assert settlements[0]["settlement"]["period_end"] == SHANGHAI_NOV_END
    position = alliance.index(settlements[0])
    payouts = [r for r in alliance[position:] if r["type"] == "payout"]
    assert payouts and all(p["payout"]["amount_minor"] > 0 for p in payouts)


def test_from_the_third_month_on_the_month_before_last_is_closed(clean_alliance):
    """Two and a half months from November 1st: November and December are settled, and with December's
    settlement (in January, the run's third month) the books are closed through November."""
    month_end = [(r["type"], r["event_id"]) for r in clean_alliance if r["type"] in ("settlement", "close")]
    assert month_end == [("settlement", "settlement-2026-11"), ("settlement", "settlement-2026-12"),
                         ("close", "close-through-2026-11")]
    [close] = [r for r in clean_alliance if r["type"] == "close"]
    assert close == close_record("sim", "2026-11", alliance_zone("Asia/Shanghai"))
    # closing quarantines nothing the clean alliance sends: every late event of November came before it
    position = clean_alliance.index(close)
    closed_through = close["close"]["closed_through"]
    assert not any(r["type"] in ("view", "click", "order", "refund") and r["occurred_at"] <= closed_through
                   for r in clean_alliance[position:])


def test_the_months_follow_the_alliances_time_zone():
    utc = [r["settlement"]["period_end"] for r in simulate(SimulationConfig(seed=3, visitors=50, days=31,
                                                                           time_zone="UTC"))
           if r["type"] == "settlement"]
    assert utc == [NOV_1 + 30 * DAY_MS - 1]
    with pytest.raises(ValueError, match="unknown time zone"):
        SimulationConfig(time_zone="Mars/Olympus")


def test_now_and_then_a_member_is_fined_to_the_alliance_fund():
    half_a_year = list(simulate(SimulationConfig(seed=5, visitors=40, days=182, bad_rate=0.0)))
    fines = [r["adjustment"] for r in half_a_year if r["type"] == "adjustment"
             and r["adjustment"]["referrer_shop_id"] == "alliance"]
    assert 1 <= len(fines) <= 5  # at most one a month end
    assert all(f["amount_minor"] > 0 and f["merchant_shop_id"] != "alliance" for f in fines)


# -- late and bad --------------------------------------------------------------------


def test_some_clicks_arrive_after_the_order_they_preceded(alliance):
    orders_seen = defaultdict(list)  # (visitor, merchant) -> times of orders already delivered
    late = 0
    for record in alliance:
        if record["type"] == "order":
            orders_seen[(record["visitor_id"], record["order"]["merchant_shop_id"])].append(record["occurred_at"])
        elif record["type"] == "click":
            key = (record["visitor_id"], record["click"]["merchant_shop_id"])
            late += any(record["occurred_at"] < t for t in orders_seen[key])
    assert late >= 10


def test_some_refunds_arrive_before_their_order(alliance):
    delivered_orders: set[str] = set()
    early = 0
    for record in alliance:
        if record["type"] == "order":
            delivered_orders.add(record["order"]["order_id"])
        elif record["type"] == "refund":
            early += record["refund"]["order_id"] not in delivered_orders
    assert early >= 1


def test_event_ids_are_unique_except_deliberate_duplicates(alliance, clean_alliance):
    assert len({r["event_id"] for r in clean_alliance}) == len(clean_alliance)
    first: dict[str, dict] = {}
    identical = conflicting = 0
    for record in alliance:
        earlier = first.setdefault(record["event_id"], record)
        if earlier is record:
            continue
        if earlier == record:
            identical += 1
        else:
            conflicting += 1
            # same merchant, so the same partition sees both
            assert earlier[earlier["type"]]["merchant_shop_id"] == record[record["type"]]["merchant_shop_id"]
    assert identical > 0 and conflicting > 0
    assert identical + conflicting < len(alliance) / 1000


def test_every_kind_of_deliberate_bad_event_shows_up(alliance):
    kinds = Counter()
    order_ids = Counter(r["order"]["order_id"] for r in alliance if r["type"] == "order")
    for record in alliance:
        kind, payload = record["type"], record[record["type"]]
        if kind == "click" and record["shop_id"] in GHOSTS:
            kinds["unknown_shop"] += 1
        if kind == "click" and record["shop_id"] == payload["merchant_shop_id"] != payload["referrer_shop_id"]:
            kinds["shop_mismatch"] += 1
        if kind in ("order", "refund") and payload["currency"] == "RMB":
            kinds["unknown_currency"] += 1
        if kind == "refund" and payload["currency"] == "USD":
            kinds["currency_mismatch"] += 1
    kinds["duplicate_order"] = sum(n > 1 for n in order_ids.values())
    assert all(kinds[k] > 0 for k in ("unknown_shop", "shop_mismatch", "unknown_currency", "currency_mismatch",
                                     "duplicate_order")), kinds
    first_settlement = min(r["occurred_at"] for r in alliance if r["type"] == "settlement")
    early_payouts = [r for r in alliance if r["type"] == "payout" and r["occurred_at"] < first_settlement]
    assert len(early_payouts) == 1


def test_a_clean_alliance_has_no_bad_events(clean_alliance):
    assert not any(r["type"] in ("view", "click") and r["shop_id"] in GHOSTS for r in clean_alliance)
    assert {r[r["type"]]["currency"] for r in clean_alliance if r["type"] in ("order", "refund")} == {"CNY"}
    assert len({r["order"]["order_id"] for r in clean_alliance if r["type"] == "order"}) == \
        sum(r["type"] == "order" for r in clean_alliance)


# -- payouts -------------------------------------------------------------------------


class PayableOracle:
    """What a merchant certainly owes a referrer as payable, folded from the stream itself (SPEC §5-9).

    An order counts once a settlement found it priced (nonzero) and old
    enough: from then on its current commission is payable, whoever wins it
    now. Orders that no settlement has certainly settled are left out, which
    can only make the figure smaller than the ledger's.
    """

    def __init__(self):
        self.status: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.agreements: list[dict] = []
        self.clicks: dict[tuple[str, str], list[tuple[int, str, str]]] = defaultdict(list)
        self.orders: dict[str, dict] = {}
        self.refunded: Counter = Counter()
        self.settled: set[str] = set()
        self.paid: Counter = Counter()
        self._earned: Counter | None = None

    def fold(self, record: dict) -> None:
        kind, payload = record["type"], record[record["type"]]
        if kind != "view":
            self._earned = None
        if kind == "member":
            self.status[payload["member_shop_id"]].append((record["occurred_at"], payload["status"]))
        elif kind == "agreement":
            self.agreements.append(payload)
        elif kind == "click":
            self.clicks[(record["visitor_id"], payload["merchant_shop_id"])].append(
                (record["occurred_at"], record["event_id"], payload["referrer_shop_id"]))
        elif kind == "order":
            self.orders[payload["order_id"]] = dict(payload, occurred_at=record["occurred_at"],
                                                    visitor=record["visitor_id"])
        elif kind == "refund":
            self.refunded[payload["order_id"]] += payload["amount_minor"]
        elif kind == "settlement":
            for order_id, order in self.orders.items():
                state = self.state(order)
                if state and state[2] > 0 and order["occurred_at"] <= \
                        payload["period_end"] - state[1]["hold_days"] * DAY_MS:
                    self.settled.add(order_id)
        elif kind == "adjustment" and payload["amount_minor"] < 0:
            self.paid[(payload["merchant_shop_id"], payload["referrer_shop_id"])] -= payload["amount_minor"]

    def active(self, shop: str, at: int) -> bool:
        changes = [(t, s) for t, s in self.status[shop] if t <= at]
        return bool(changes) and max(changes)[1] == "active"

    def resolve(self, merchant: str, referrer: str, at: int) -> dict | None:
        for scope in ((merchant, referrer), (merchant, "*"), ("*", referrer), ("*", "*")):
            versions = [a for a in self.agreements if (a["merchant_shop_id"], a["referrer_shop_id"]) == scope
                        and a["effective_from"] <= at]
            if versions:
                return max(versions, key=lambda a: (a["effective_from"], a["version"]))
        return None

    def state(self, order: dict):
        """(winning referrer, agreement, commission after refunds) or None."""
        t, merchant = order["occurred_at"], order["merchant_shop_id"]
        best = None
        for occurred, event_id, referrer in self.clicks[(order["visitor"], merchant)]:
            if occurred > t or referrer == merchant or not self.active(referrer, occurred):
                continue
            agreement = self.resolve(merchant, referrer, t)
            if agreement is None or agreement["model"] not in ("cps", "cpa"):
                continue
            if t - occurred <= agreement["attribution_window_days"] * DAY_MS and \
                    (best is None or (occurred, event_id) > best[:2]):
                best = (occurred, event_id, referrer, agreement)
        if best is None:
            return None
        agreement = best[3]
        if agreement["model"] == "cpa":
            commission = agreement["amount_minor"]
        else:
            rates = agreement["category_rates_bp"]
            commission = sum((2 * line["quantity"] * line["unit_price_minor"]
                              * rates.get(line["category"], agreement["rate_bp"]) + 10_000) // 20_000
                             for line in order["lines"])
        reversed_ = (2 * commission * self.refunded[order["order_id"]] + order["total_minor"]) \
            // (2 * order["total_minor"])
        return best[2], agreement, commission - reversed_

    def payable(self, merchant: str, referrer: str) -> int:
        if self._earned is None:
            self._earned = Counter()
            for order_id in self.settled:
                order = self.orders[order_id]
                state = self.state(order)
                if state:
                    self._earned[(order["merchant_shop_id"], state[0])] += state[2]
        return self._earned[(merchant, referrer)] - self.paid[(merchant, referrer)]


def test_payouts_never_exceed_what_is_payable(clean_alliance):
    oracle = PayableOracle()
    payouts = 0
    for record in clean_alliance:
        if record["type"] == "payout":
            payout = record["payout"]
            pair = (payout["merchant_shop_id"], payout["referrer_shop_id"])
            assert 0 < payout["amount_minor"] <= oracle.payable(*pair), record
            oracle.paid[pair] += payout["amount_minor"]
            payouts += 1
        else:
            oracle.fold(record)
    assert payouts >= 10
    assert len({r["occurred_at"] // (28 * DAY_MS) for r in clean_alliance if r["type"] == "payout"}) == 2
