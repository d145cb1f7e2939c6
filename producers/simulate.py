"""Seeded, deterministic traffic of a simulated seller alliance (卖家联盟).

    from refledger.producers.simulate import SimulationConfig, simulate
    for record in simulate(SimulationConfig(seed=7, events=100_000)):
        ...

Yields *records* (docs/architecture.md, "The record") in **delivery order**;
``occurred_at`` is event time. The same config yields the same records, byte
for byte: every choice comes from ``random.Random(seed)``, nothing reads the
clock, and generation is lazy (memory does not grow with the stream length).

The alliance
------------
Shops sell to young families: ``li-kids`` (children's clothes), ``wang-bath``
(baby bath care), ``zhang-toys``, ``zhao-photo`` (photo studio),
``chen-snacks``, ``liu-books``, ``huang-shoes``, ``zhou-strollers``; more
shops get generated names (``yang-feeding``...). Each sells a small catalog
(sku, category, price in fen). Before any traffic the operator makes every
shop a member and publishes the agreements (those naming shops that exist):

* ``default`` (*, *) cps 8 %, toys 10 %, services 6 %, food 5 %, gear 4 %;
  window and hold 15 days. Version 2 (a campaign: 9 %, toys 12 %) is
  published on day 10 and takes effect on day 15, never retroactively;
* ``photo-referrals`` (zhao-photo, *) cps 12 %, window 30, hold 20 days;
* ``bath-pays-kids-per-order`` (wang-bath, li-kids) cpa 5.00 CNY, window 7;
* ``toys-pay-per-click`` (zhang-toys, chen-snacks) cpc 0.30 CNY;
* ``kids-photo-swap`` (li-kids, zhao-photo) swap.

Traffic, day by day
-------------------
About a quarter of the visitors (``v-3fa9c2``: pseudonymous, no personal
data) come each day, more at weekends and on 6.18, 11.11 and 12.12, mostly in
the Chinese evening. A visit happens at one referrer (usually the visitor's
favourite shop) and shows 1-5 placements promoting other members (``view``),
now and then the shop itself (self-referral). Half the views are clicked
(``click``); a fifth of the clicks lead to an ``order`` at the merchant within
minutes, days or weeks (some outside every window), and some visits end in
an order without any click. An order has 1-4 lines; ``total_minor`` is
exact. About a quarter of the orders are refunded in full or in part, days
later, in one or two ``refund`` events that never exceed the total. Event
mix: views ~60 %, clicks ~30 %, orders ~8 %, refunds ~2 %.

One member is suspended for a few days in the first month (and sometimes
re-activated), others now and then later.

The operator runs each month as `refledger settle` does, in the alliance's
time zone (``time_zone``, default Asia/Shanghai, where November ends at
2026-11-30T15:59:59.999Z): a day after a month ended comes its
``settlement`` (``settlement-YYYY-MM``, ``period_end`` the month's last
millisecond there) and, from the run's third month on, the ``close`` through
the month before it (``close-through-YYYY-MM``; built by
`producers/operator.py`, so a later `refledger settle` of the same month finds
them and publishes nothing). Nothing the simulation sends is late enough to
be closed out: late events arrive within four weeks. Then perhaps an
``adjustment`` between two shops, perhaps a fine paid to the alliance's fund
(an adjustment with ``"alliance"`` as payee), then ``payout`` events from
merchants to referrers. A payout never exceeds what the merchant owes the
referrer as payable: it pays 40-80 % of a lower bound made of the cps and
cpa commission of orders whose whole story (the order, its refunds, every
click of the visitor for that merchant inside the longest window) was
delivered before a settlement that made it payable, less earlier payouts and
negative adjustments.

Late, out of order and bad
--------------------------
A shop event is delivered up to 1.5 s after it occurred. With probability
``late_rate`` a click is delivered up to three days late (often after the
order it preceded) and a refund up to a week late; with half that
probability an order is delivered up to ten days late (its refund may then
come first). With probability ``bad_rate`` a delivered shop event is followed
by a bad one: an exact re-delivery, a conflicting duplicate, a click from a
shop that never joined or emitted by the wrong shop, an order whose total is
not the sum of its lines or in "RMB", a negative, excessive or foreign
currency refund, or an order id sent again under a new event id. Once per
stream (when ``bad_rate`` > 0) there is also a retroactive agreement and a
payout before any settlement. Event ids are ``<alliance_id>-000000123``,
numbered when the event is made (the month end's own, derived from the
months, aside).

Members the operator should notice
-----------------------------------
With ``behaviours`` (the default) and at least 8 shops, three founders
behave the way SPEC §14's flags look for, and the alliance grows (each
month about a fifth more visitors come than in the run's first month):

* ``liu-books`` withdraws silently: from day ``withdrawal_day`` of the run
  (default: 12 days before the end of a ``days`` run, day 30 of an
  ``events`` run) it shows no placements at all (no views, no clicks out),
  while the others still promote it and send it clicks;
* ``huang-shoes`` rides free: a visit at its shop shows placements only one
  time in ten, so it receives many times the clicks it gives;
* ``zhou-strollers`` declines: each order intended at it goes ahead with
  probability ½ⁿ in the run's n-th calendar month after the first, so its
  GMV falls month after month however the alliance grows.

These three are never suspended at random, so their status stays steady.
``behaviours=False`` leaves all of this out.

With ``events=N`` the stream stops after exactly N records (traffic runs as
many days as it needs); otherwise ``days`` of traffic, the late deliveries,
and the month end (settlement, close, adjustments, payouts) of every month
that ended within the run. ``settlements=False`` leaves out settlements,
closes, adjustments and payouts.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial

from refledger.producers.operator import close_record, settlement_record
from refledger.schemas.periods import DEFAULT_ZONE, alliance_zone, month_bounds, period_of, shift_period

__all__ = ["SimulationConfig", "simulate"]

SECOND_MS = 1000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
CURRENCY = "CNY"
MAX_DAYS = 36_500  # events=N with a tiny alliance still ends

P_ACTIVE = 0.25      # share of visitors who come on an ordinary day
P_HOME = 0.7         # a visit happens at the visitor's favourite shop
P_SELF = 0.03        # a placement promotes the shop showing it
P_CLICK = 0.5
P_BUY = 0.2          # a click leads to an order
P_ORGANIC = 0.12     # a visit ends in an order without a click
P_REFUND = 0.28
JITTER_MS = 1500

CATALOGS = {
    "kids": (("organic-romper", "apparel", 25900), ("cotton-socks-3pk", "apparel", 1500),
             ("padded-jacket", "apparel", 39900), ("sun-hat", "accessories", 4900),
             ("pajama-set", "apparel", 8900), ("knit-cardigan", "apparel", 15900)),
    "bath": (("bath-gel", "care", 4950), ("baby-lotion", "care", 3333), ("folding-tub", "gear", 15900),
             ("hooded-towel", "textile", 6900), ("diaper-cream", "care", 2900),
             ("bath-thermometer", "gear", 1990)),
    "toys": (("wooden-blocks", "toys", 19900), ("plush-panda", "toys", 8800), ("puzzle-24pc", "toys", 4500),
             ("push-walker", "toys", 12900), ("bath-ducks", "toys", 2500), ("shape-sorter", "toys", 6900)),
    "photo": (("newborn-session", "services", 59900), ("birthday-shoot", "services", 89900),
              ("family-album", "prints", 19900), ("photo-frame", "prints", 3900),
              ("canvas-print", "prints", 12900)),
    "snacks": (("rice-puffs", "food", 1800), ("fruit-puree-6pk", "food", 3600),
               ("teething-biscuits", "food", 2200), ("yogurt-melts", "food", 2600),
               ("veggie-noodles", "food", 2900)),
    "books": (("picture-book", "books", 3900), ("cloth-book", "books", 2900), ("sticker-book", "books", 1900),
              ("bedtime-box-set", "books", 15800)),
    "shoes": (("first-steps", "shoes", 12900), ("sandals", "shoes", 8900), ("rain-boots", "shoes", 9900),
              ("slippers", "shoes", 4900)),
    "strollers": (("city-stroller", "gear", 129900), ("car-seat", "gear", 99900),
                  ("baby-carrier", "gear", 39900), ("rain-cover", "gear", 5900)),
    "feeding": (("bottle-set", "feeding", 8900), ("silicone-bibs", "feeding", 2900),
                ("high-chair", "gear", 49900), ("sippy-cup", "feeding", 3500)),
}
FOUNDERS = (("li", "kids"), ("wang", "bath"), ("zhang", "toys"), ("zhao", "photo"), ("chen", "snacks"),
            ("liu", "books"), ("huang", "shoes"), ("zhou", "strollers"))
SURNAMES = ("yang", "wu", "xu", "sun", "hu", "zhu", "gao", "lin", "he", "guo", "ma", "luo", "liang", "song",
            "zheng", "xie", "han", "tang", "feng", "yu", "dong", "xiao", "cheng", "cao", "yuan", "deng")
KINDS = ("feeding", "kids", "bath", "toys", "photo", "snacks", "books", "shoes", "strollers")
GHOSTS = ("qian-outlet", "sun-market", "temp-store-9", "kong-deals")
PLACEMENTS = tuple(f"{kind}-{n}" for kind in ("banner", "article", "coupon", "live", "feed", "guide")
                   for n in range(1, 17))
DEFAULT_RATES = {"toys": 1000, "services": 600, "food": 500, "gear": 400}
CAMPAIGN_RATES = {"toys": 1200, "services": 600, "food": 500, "gear": 400}
FESTIVALS = {(6, 18): 2.0, (11, 11): 3.0, (12, 12): 1.5}
# visits per hour of the day, China local time (UTC+8), index = UTC hour
_LOCAL_HOUR_WEIGHTS = (1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 7, 6, 6, 6, 7, 8, 10, 12, 12, 9, 4)
_UTC_HOUR_CUMULATIVE = tuple(sum(_LOCAL_HOUR_WEIGHTS[(h + 8) % 24] for h in range(u + 1)) for u in range(24))
BAD_KINDS = (("redelivery", 3), ("conflicting_duplicate", 2), ("unknown_shop", 2), ("total_mismatch", 2),
             ("negative_amount", 1), ("unknown_currency", 1), ("shop_mismatch", 1),
             ("refund_exceeds_order", 1), ("currency_mismatch", 1), ("duplicate_order", 1))
_BAD_CUMULATIVE = tuple(sum(w for _, w in BAD_KINDS[:i + 1]) for i in range(len(BAD_KINDS)))
SHOP_TYPES = frozenset({"view", "click", "order", "refund"})
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. ``events`` (exact record count) overrides ``days`` when given."""

    seed: int = 7
    shops: int = 8
    visitors: int = 5000
    days: int = 30
    start: str = "2026-11-01"
    events: int | None = None
    bad_rate: float = 0.001
    late_rate: float = 0.02
    settlements: bool = True
    alliance_id: str = "sim"
    time_zone: str = DEFAULT_ZONE
    behaviours: bool = True
    withdrawal_day: int | None = None

    def __post_init__(self):
        if self.shops < 2:
            raise ValueError("an alliance needs at least 2 shops")
        if self.visitors < 1 or self.days < 1:
            raise ValueError("visitors and days must be at least 1")
        if self.events is not None and self.events < 0:
            raise ValueError("events must not be negative")
        for name in ("bad_rate", "late_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 0 < len(self.alliance_id) <= 40:
            raise ValueError("alliance_id must have 1 to 40 characters")
        date.fromisoformat(self.start)
        alliance_zone(self.time_zone)
        if self.withdrawal_day is not None and self.withdrawal_day < 0:
            raise ValueError("withdrawal_day must not be negative")


def simulate(cfg: SimulationConfig | None = None) -> Iterator[dict]:
    """The simulated alliance's records, in delivery order."""
    return _Simulation(cfg or SimulationConfig()).run()


def _day_ms(day: date) -> int:
    return (day - EPOCH).days * DAY_MS


def _ms_day(ms: int) -> date:
    return EPOCH + timedelta(days=ms // DAY_MS)


def _half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, for numerator >= 0 < denominator."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True)
class _Agreement:
    agreement_id: str
    version: int
    published: int
    effective_from: int
    merchant: int | None  # shop index, None for "*"
    referrer: int | None
    model: str
    rate_bp: int | None = None
    category_rates: tuple = ()
    amount_minor: int | None = None
    window_days: int = 15
    hold_days: int = 15

    def commission(self, lines) -> int:
        """What an order attributed under this agreement earns (SPEC §6)."""
        if self.model == "cpa":
            return self.amount_minor
        rates = dict(self.category_rates)
        return sum(_half_up(q * price * rates.get(category, self.rate_bp), 10_000)
                   for _, category, q, price in lines)

    def payload(self, shop_ids) -> dict:
        money = self.model in ("cpa", "cpc")
        return {"agreement_id": self.agreement_id, "version": self.version,
                "effective_from": self.effective_from,
                "merchant_shop_id": "*" if self.merchant is None else shop_ids[self.merchant],
                "referrer_shop_id": "*" if self.referrer is None else shop_ids[self.referrer],
                "model": self.model, "rate_bp": self.rate_bp, "category_rates_bp": dict(self.category_rates),
                "amount_minor": self.amount_minor if money else None, "currency": CURRENCY if money else None,
                "attribution_window_days": self.window_days, "hold_days": self.hold_days}


class _Terms:
    """The published agreements, resolved as SPEC §5 says: most specific scope, latest version in effect."""

    def __init__(self, agreements):
        self._by_scope: dict = {}
        for agreement in agreements:
            self._by_scope.setdefault((agreement.merchant, agreement.referrer), []).append(agreement)
        for versions in self._by_scope.values():
            versions.sort(key=lambda a: (a.effective_from, a.version), reverse=True)
        self.longest_window_ms = max(a.window_days for a in agreements) * DAY_MS

    def resolve(self, merchant: int, referrer: int, at: int) -> _Agreement | None:
        for scope in ((merchant, referrer), (merchant, None), (None, referrer), (None, None)):
            for agreement in self._by_scope.get(scope, ()):
                if agreement.effective_from <= at:
                    return agreement
        return None


def _terms_for(n_shops: int, start: int, end: int | None) -> list[_Agreement]:
    """The agreements among the founders that exist, plus the campaign version if the run reaches it."""
    opening = start - 12 * HOUR_MS
    terms = [_Agreement("default", 1, opening, start, None, None, "cps", 800, tuple(DEFAULT_RATES.items()))]
    if n_shops > 3:
        terms.append(_Agreement("photo-referrals", 1, opening, start, 3, None, "cps", 1200,
                                window_days=30, hold_days=20))
    terms.append(_Agreement("bath-pays-kids-per-order", 1, opening, start, 1, 0, "cpa", amount_minor=500,
                            window_days=7, hold_days=10))
    if n_shops > 4:
        terms.append(_Agreement("toys-pay-per-click", 1, opening, start, 2, 4, "cpc", amount_minor=30,
                                hold_days=0))
    if n_shops > 3:
        terms.append(_Agreement("kids-photo-swap", 1, opening, start, 0, 3, "swap", hold_days=0))
    campaign_published = start + 9 * DAY_MS + 18 * HOUR_MS
    if end is None or campaign_published < end:
        terms.append(_Agreement("default", 2, campaign_published, start + 14 * DAY_MS, None, None, "cps", 900,
                                tuple(CAMPAIGN_RATES.items())))
    return terms


def _shop_names(n: int) -> list[tuple[str, str]]:
    """(shop_id, kind) for n shops: the founders first, then generated neighbours."""
    shops = [(f"{surname}-{kind}", kind) for surname, kind in FOUNDERS[:n]]
    taken = {shop_id for shop_id, _ in shops}
    i = 0
    while len(shops) < n:
        kind = KINDS[i % len(KINDS)]
        shop_id = f"{SURNAMES[i % len(SURNAMES)]}-{kind}"
        if i >= len(SURNAMES):
            shop_id += f"-{i // len(SURNAMES) + 1}"
        if shop_id not in taken:
            taken.add(shop_id)
            shops.append((shop_id, kind))
        i += 1
    return shops


class _Membership:
    """When each shop is active; every shop joins before the first day."""

    def __init__(self):
        self._changes: dict[int, list[tuple[int, bool]]] = {}

    def change(self, shop: int, at: int, active: bool) -> None:
        self._changes.setdefault(shop, []).append((at, active))

    def active(self, shop: int, at: int) -> bool:
        changes = self._changes.get(shop)
        if not changes:
            return True
        state = True
        for when, active in changes:
            if when > at:
                break
            state = active
        return state


class _PayableFloor:
    """A lower bound, per (merchant, referrer), of what is payable and not yet paid out.

    An order counts once its whole story (order, refunds, every click of the
    visitor for that merchant inside the longest window) was delivered before
    a settlement that made it payable, with a day of margin on the hold: the
    fold then holds exactly its final commission as payable. Everything else
    only ever adds to a referrer's payable, so leaving it out is safe.
    """

    def __init__(self):
        self._waiting: list[tuple] = []
        self.available: dict[tuple[int, int], int] = defaultdict(int)

    def wait(self, occurred: int, hold_ms: int, merchant: int, referrer: int, amount: int, done_key) -> None:
        self._waiting.append((occurred, hold_ms, merchant, referrer, amount, done_key))

    def settle(self, key, period_end: int) -> None:
        still = []
        for item in self._waiting:
            occurred, hold_ms, merchant, referrer, amount, done_key = item
            if done_key < key and occurred <= period_end - hold_ms - DAY_MS:
                self.available[(merchant, referrer)] += amount
            elif occurred > period_end - 180 * DAY_MS:
                still.append(item)
        self._waiting = still

    def take(self, merchant: int, referrer: int, amount: int) -> None:
        self.available[(merchant, referrer)] -= amount


class _Behaviours:
    """Members whose conduct SPEC §14's reports should find (see the module's doc)."""

    WITHDRAWER, FREE_RIDER, DECLINER = 5, 6, 7  # liu-books, huang-shoes, zhou-strollers
    FREE_RIDER_SHOWS = 0.1   # share of its visits that show placements
    DECLINE = 0.5            # an order at the decliner goes ahead with DECLINE ** months
    GROWTH = 0.2             # more visitors per month since the start

    def __init__(self, cfg: SimulationConfig, n_shops: int, start: int):
        self.enabled = cfg.behaviours and n_shops >= 8
        self.start = start
        self.start_day = _ms_day(start)
        day = cfg.withdrawal_day
        if day is None:
            day = 30 if cfg.events is not None else max(0, cfg.days - 12)
        self.withdrawn_from = start + day * DAY_MS

    def steady(self, shop: int) -> bool:
        """Never suspended at random (its flags must come from its conduct alone)."""
        return self.enabled and shop in (self.WITHDRAWER, self.FREE_RIDER, self.DECLINER)

    def shows_placements(self, referrer: int, t: int, rand) -> bool:
        if not self.enabled:
            return True
        if referrer == self.WITHDRAWER:
            return t < self.withdrawn_from
        if referrer == self.FREE_RIDER:
            return rand() < self.FREE_RIDER_SHOWS
        return True

    def keeps_order(self, merchant: int, t: int, rand) -> bool:
        if not self.enabled or merchant != self.DECLINER:
            return True
        return rand() < self.DECLINE ** self._months(t)

    def growth(self, day_start: int) -> float:
        return 1.0 + self.GROWTH * (day_start - self.start) / (30 * DAY_MS) if self.enabled else 1.0

    def _months(self, t: int) -> int:
        day = _ms_day(t)
        return max(0, (day.year - self.start_day.year) * 12 + day.month - self.start_day.month)


class _Simulation:
    def __init__(self, cfg: SimulationConfig):
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.start = _day_ms(date.fromisoformat(cfg.start))
        self.end = None if cfg.events is not None else self.start + cfg.days * DAY_MS
        self.limit = cfg.events
        self.alliance = cfg.alliance_id
        self.id_prefix = f"{cfg.alliance_id}-"
        self.heap: list = []
        self.intents: list = []
        self.seq = 0
        self.last_id = 0
        self.counters: dict[str, int] = defaultdict(int)
        self.emitted = 0
        self.done = self.limit == 0
        names = _shop_names(cfg.shops)
        self.shop_ids = [shop_id for shop_id, _ in names]
        self.catalogs = [CATALOGS[kind] for _, kind in names]
        self.agreements = _terms_for(cfg.shops, self.start, self.end)
        self.terms = _Terms(self.agreements)
        self.membership = _Membership()
        self.floor = _PayableFloor()
        self.zone = alliance_zone(cfg.time_zone)
        self.period = period_of(self.start, self.zone)  # the alliance's month the run is in
        self.month_end = month_bounds(self.period, self.zone)[1]
        self.months_ended = 0
        self.behaviours = _Behaviours(cfg, len(self.shop_ids), self.start)
        self.clicks: dict[tuple[int, int], list] = {}
        self.recent_orders: deque = deque(maxlen=32)
        self._make_audience()

    # -- set-up --------------------------------------------------------------

    def _make_audience(self) -> None:
        rand = self.rng.random
        n = len(self.shop_ids)
        weights = [(0.5 + rand()) / (1 + 0.3 * i) for i in range(n)]
        self.shop_cumulative = _cumulative(weights)
        self.merchant_tables = []
        for r in range(n):
            others = [m for m in range(n) if m != r]
            self.merchant_tables.append((others, _cumulative([weights[m] for m in others])))
        width = 6 if self.cfg.visitors <= 200_000 else 10
        seen: set[str] = set()
        self.visitor_ids: list[str] = []
        while len(self.visitor_ids) < self.cfg.visitors:
            vid = f"v-{self.rng.getrandbits(4 * width):0{width}x}"
            if vid not in seen:
                seen.add(vid)
                self.visitor_ids.append(vid)
        self.home = [self._pick_shop() for _ in range(self.cfg.visitors)]

    def _pick_shop(self) -> int:
        cumulative = self.shop_cumulative
        return bisect_right(cumulative, self.rng.random() * cumulative[-1])

    def _pick_merchant(self, referrer: int) -> int:
        if self.rng.random() < P_SELF:
            return referrer
        others, cumulative = self.merchant_tables[referrer]
        return others[bisect_right(cumulative, self.rng.random() * cumulative[-1])]

    # -- the run -------------------------------------------------------------

    def run(self) -> Iterator[dict]:
        if self.done:
            return
        self._open_alliance()
        day_start = self.start
        for _ in range(MAX_DAYS):
            if self.end is not None and day_start >= self.end:
                break
            day_end = day_start + DAY_MS if self.end is None else min(day_start + DAY_MS, self.end)
            self._month_ends(day_end)
            self._plan_month(day_start)
            self._traffic(day_start)
            yield from self._deliver(day_start + DAY_MS)
            if self.done:
                return
            day_start += DAY_MS
        yield from self._deliver(None)

    def _deliver(self, until: int | None) -> Iterator[dict]:
        """Pop and yield everything due before ``until`` (None: everything), in delivery order."""
        heap = self.heap
        rand = self.rng.random
        bad_rate = self.cfg.bad_rate
        while heap and (until is None or heap[0][0] < until):
            deliver, seq, item = heapq.heappop(heap)
            if type(item) is not dict:
                item = item(deliver, seq)
            elif item["type"] in SHOP_TYPES:
                if item["type"] == "order":
                    self.recent_orders.append(_copy_record(item))
                if bad_rate and rand() < bad_rate:
                    self._misbehave(item, deliver)
            yield item
            self.emitted += 1
            if self.emitted == self.limit:
                self.done = True
                return

    def _push(self, item, deliver: int) -> tuple[int, int]:
        self.seq += 1
        heapq.heappush(self.heap, (deliver, self.seq, item))
        return deliver, self.seq

    def _event_id(self) -> str:
        self.last_id += 1
        return f"{self.id_prefix}{self.last_id:09d}"

    def _next(self, counter: str) -> int:
        self.counters[counter] += 1
        return self.counters[counter]

    def _envelope(self, kind: str, occurred: int, shop_id: str, visitor_id: str | None, payload: dict) -> dict:
        return {"event_id": self._event_id(), "type": kind, "occurred_at": occurred, "alliance_id": self.alliance,
                "shop_id": shop_id, "visitor_id": visitor_id, kind: payload}

    def _alliance_event(self, kind: str, occurred: int, payload: dict) -> dict:
        record = self._envelope(kind, occurred, "alliance", None, payload)
        self._push(record, occurred)
        return record

    # -- alliance events -----------------------------------------------------

    def _open_alliance(self) -> None:
        for i, shop_id in enumerate(self.shop_ids):
            self._member(self.start - DAY_MS + i * SECOND_MS, shop_id, "active")
        for i, agreement in enumerate(self.agreements):
            self._alliance_event("agreement", agreement.published + i * SECOND_MS, agreement.payload(self.shop_ids))
        if self.cfg.bad_rate > 0:
            self._deliberate_mistakes()

    def _member(self, at: int, shop_id: str, status: str) -> None:
        """A member event in the codec's normal form (no public key: signatures are not required)."""
        self._alliance_event("member", at, {"member_shop_id": shop_id, "status": status, "public_key": None})

    def _deliberate_mistakes(self) -> None:
        """A back-dated agreement and a payout before any settlement, both to be quarantined."""
        published = self.start + 5 * DAY_MS + 10 * HOUR_MS
        if self.end is None or published < self.end:
            merchant = min(4, len(self.shop_ids) - 1)
            backdated = _Agreement("backdated-bonus", 1, published, self.start + 2 * DAY_MS, merchant, None,
                                   "cps", 1500)
            self._alliance_event("agreement", published, backdated.payload(self.shop_ids))
        if self.cfg.settlements:
            self._alliance_event("payout", self.start + DAY_MS + 9 * HOUR_MS, {
                "payout_id": f"pay-{self._next('payout'):06d}", "merchant_shop_id": self.shop_ids[1],
                "referrer_shop_id": self.shop_ids[0], "currency": CURRENCY, "amount_minor": 100})

    def _month_ends(self, until: int) -> None:
        """Each month of the alliance's time zone that ended before ``until``: the operator's month end, a
        day later (`producers/operator.py`: the settlement of the month and, from the run's third month
        on, the close through the month before it), then the adjustment and payouts that follow."""
        while self.month_end < until:
            period, end = self.period, self.month_end
            if self.cfg.settlements:
                deliver = end + 1 + DAY_MS
                self._push(partial(self._settle, end, period), deliver)
                if self.months_ended >= 1:
                    self._push(close_record(self.alliance, shift_period(period, -1), self.zone), deliver)
            self.months_ended += 1
            self.period = shift_period(period, 1)
            self.month_end = month_bounds(self.period, self.zone)[1]

    def _plan_month(self, day_start: int) -> None:
        """On the first day of the run and of each month: this month's suspensions."""
        if (_ms_day(day_start).day == 1 or day_start == self.start) and (self.end is None or day_start < self.end):
            self._plan_suspension(day_start, day_start == self.start)

    def _plan_suspension(self, day_start: int, first: bool) -> None:
        rand = self.rng.random
        day = _ms_day(day_start)
        month_end = _day_ms((day.replace(day=28) + timedelta(days=4)).replace(day=1))
        horizon = month_end if self.end is None else min(month_end, self.end)
        if len(self.shop_ids) < 3 or not (first or rand() < 0.35):
            return
        at = day_start + (7 + int(rand() * 12)) * DAY_MS + int(rand() * DAY_MS)
        if at >= horizon:
            return
        shop = int(rand() * len(self.shop_ids))
        if self.behaviours.steady(shop):
            return
        self.membership.change(shop, at, False)
        self._member(at, self.shop_ids[shop], "suspended")
        back = at + (2 + int(rand() * 6)) * DAY_MS
        if rand() < 0.6 and (self.end is None or back < self.end):
            self.membership.change(shop, back, True)
            self._member(back, self.shop_ids[shop], "active")

    def _settle(self, period_end: int, period: str, deliver: int, seq: int) -> dict:
        """Built when delivered: the settlement, then the adjustment and payouts that follow it."""
        self.floor.settle((deliver, seq), period_end)
        record = settlement_record(self.alliance, period, self.zone)
        self._adjust(deliver + DAY_MS + 10 * HOUR_MS)
        self._fine(deliver + DAY_MS + 11 * HOUR_MS)
        self._pay_out(deliver + 3 * DAY_MS + 10 * HOUR_MS)
        return record

    def _fine(self, at: int) -> None:
        """Now and then a member is fined, paid to the alliance's fund (SPEC §2: the fund is the payee)."""
        rand = self.rng.random
        if rand() >= 0.5:
            return
        self._alliance_event("adjustment", at, {
            "adjustment_id": f"fine-{self._next('fine'):05d}",
            "merchant_shop_id": self.shop_ids[int(rand() * len(self.shop_ids))], "referrer_shop_id": "alliance",
            "currency": CURRENCY, "amount_minor": 1000 * (1 + int(rand() * 5)),
            "reason": "cross-shop banner taken down without notice"})

    def _adjust(self, at: int) -> None:
        rand = self.rng.random
        if rand() >= 0.5:
            return
        merchant, referrer = self.rng.sample(range(len(self.shop_ids)), 2)
        if rand() < 0.3:
            amount, reason = -(200 + int(rand() * 2800)), "coupon abuse found after settlement"
            self.floor.take(merchant, referrer, -amount)
        else:
            amount, reason = 500 + int(rand() * 4500), "clicks lost in a tracking outage, agreed by both shops"
        self._alliance_event("adjustment", at, {
            "adjustment_id": f"adj-{self._next('adjustment'):05d}", "merchant_shop_id": self.shop_ids[merchant],
            "referrer_shop_id": self.shop_ids[referrer], "currency": CURRENCY, "amount_minor": amount,
            "reason": reason})

    def _pay_out(self, at: int) -> None:
        rand = self.rng.random
        for (merchant, referrer), available in sorted(self.floor.available.items()):
            if available < 1000 or rand() >= 0.75:
                continue
            amount = available * (40, 60, 80)[int(rand() * 3)] // 100
            self.floor.take(merchant, referrer, amount)
            self._alliance_event("payout", at, {
                "payout_id": f"pay-{self._next('payout'):06d}", "merchant_shop_id": self.shop_ids[merchant],
                "referrer_shop_id": self.shop_ids[referrer], "currency": CURRENCY, "amount_minor": amount})
            at += 7 * MINUTE_MS

    # -- shop traffic --------------------------------------------------------

    def _traffic(self, day_start: int) -> None:
        rand = self.rng.random
        n = self.cfg.visitors
        factor = _day_factor(day_start) * (0.9 + 0.2 * rand()) * self.behaviours.growth(day_start)
        active = min(n, int(n * P_ACTIVE * factor + rand()))
        for visitor in self.rng.sample(range(n), active):
            self._visit(visitor, day_start)
        day_end = day_start + DAY_MS
        intents = self.intents
        while intents and intents[0][0] < day_end:
            occurred, _, visitor, merchant = heapq.heappop(intents)
            self._order(occurred, visitor, merchant)

    def _visit(self, visitor: int, day_start: int) -> None:
        rand = self.rng.random
        hour = bisect_right(_UTC_HOUR_CUMULATIVE, rand() * _UTC_HOUR_CUMULATIVE[-1])
        t = day_start + min(hour * HOUR_MS + int(rand() * HOUR_MS), DAY_MS - 15 * MINUTE_MS)
        referrer = self.home[visitor] if rand() < P_HOME else self._pick_shop()
        vid = self.visitor_ids[visitor]
        shop_id = self.shop_ids[referrer]
        shown = 1 + int(rand() * 5) if self.behaviours.shows_placements(referrer, t, rand) else 0
        for _ in range(shown):
            t += 5 * SECOND_MS + int(rand() * 85 * SECOND_MS)
            merchant = self._pick_merchant(referrer)
            placement = {"referrer_shop_id": shop_id, "merchant_shop_id": self.shop_ids[merchant],
                         "placement_id": PLACEMENTS[int(rand() * len(PLACEMENTS))]}
            self._push(self._envelope("view", t, shop_id, vid, placement), t + int(rand() * JITTER_MS))
            if rand() < P_CLICK:
                t += 2 * SECOND_MS + int(rand() * 20 * SECOND_MS)
                self._click(t, visitor, vid, referrer, merchant, dict(placement))
                if rand() < P_BUY:
                    self._intend(t + self._purchase_delay(), visitor, merchant)
        if rand() < P_ORGANIC:
            self._intend(t + int(rand() * 2 * HOUR_MS), visitor, self._pick_shop())

    def _click(self, t: int, visitor: int, vid: str, referrer: int, merchant: int, payload: dict) -> None:
        rand = self.rng.random
        record = self._envelope("click", t, self.shop_ids[referrer], vid, payload)
        if rand() < self.cfg.late_rate:
            deliver = t + 30 * MINUTE_MS + int(rand() * 3 * DAY_MS)
        else:
            deliver = t + int(rand() * JITTER_MS)
        key = self._push(record, deliver)
        history = self.clicks.setdefault((visitor, merchant), [])
        if len(history) >= 8:
            horizon = t - self.terms.longest_window_ms - 2 * DAY_MS
            history[:] = [click for click in history if click[0] >= horizon]
        history.append((t, record["event_id"], referrer, key))

    def _purchase_delay(self) -> int:
        rand = self.rng.random
        u = rand()
        if u < 0.6:
            return 2 * MINUTE_MS + int(rand() * 38 * MINUTE_MS)
        if u < 0.85:
            return 2 * HOUR_MS + int(rand() * 3 * DAY_MS)
        return 3 * DAY_MS + int(rand() * 22 * DAY_MS)

    def _intend(self, occurred: int, visitor: int, merchant: int) -> None:
        if not self.behaviours.keeps_order(merchant, occurred, self.rng.random):
            return
        if self.end is None or occurred < self.end:
            self.seq += 1
            heapq.heappush(self.intents, (occurred, self.seq, visitor, merchant))

    def _order(self, t: int, visitor: int, merchant: int) -> None:
        """The order, its refunds, and what it will have earned once every part of it is delivered."""
        rand = self.rng.random
        lines = self._basket(merchant)
        total = sum(q * price for _, _, q, price in lines)
        order_id = f"ord-{self._next('order'):08d}"
        shop_id = self.shop_ids[merchant]
        vid = self.visitor_ids[visitor]
        record = self._envelope("order", t, shop_id, vid, {
            "order_id": order_id, "merchant_shop_id": shop_id, "currency": CURRENCY,
            "lines": [{"sku": sku, "category": category, "quantity": q, "unit_price_minor": price}
                      for sku, category, q, price in lines],
            "total_minor": total})
        late = rand() < self.cfg.late_rate / 2
        done = self._push(record, t + (HOUR_MS + int(rand() * 10 * DAY_MS) if late else int(rand() * JITTER_MS)))
        refunded = 0
        for when, amount in self._refund_plan(t, lines, total):
            if self.end is not None and when >= self.end:
                break
            refund = self._envelope("refund", when, shop_id, vid, {
                "order_id": order_id, "refund_id": f"rfd-{self._next('refund'):08d}", "merchant_shop_id": shop_id,
                "currency": CURRENCY, "amount_minor": amount})
            late = rand() < self.cfg.late_rate
            done = max(done, self._push(refund, when + (HOUR_MS + int(rand() * 7 * DAY_MS) if late
                                                        else int(rand() * JITTER_MS))))
            refunded += amount
        self._expect_commission(t, visitor, merchant, lines, total, refunded, done)

    def _basket(self, merchant: int) -> list[tuple[str, str, int, int]]:
        rand = self.rng.random
        catalog = self.catalogs[merchant]
        u = rand()
        size = min(len(catalog), 1 if u < 0.5 else 2 if u < 0.78 else 3 if u < 0.93 else 4)
        lines = []
        for index in self.rng.sample(range(len(catalog)), size):
            sku, category, base = catalog[index]
            discount = (0, 0, 0, 100, 500, base // 10)[int(rand() * 6)]
            quantity = 1 + (rand() < 0.25) + (rand() < 0.08)
            lines.append((sku, category, quantity, max(base - discount, 100)))
        return lines

    def _refund_plan(self, t: int, lines, total: int) -> list[tuple[int, int]]:
        """Zero, one or two refunds; their sum never exceeds the total."""
        rand = self.rng.random
        if rand() >= P_REFUND:
            return []
        first = t + DAY_MS + int(rand() * 14 * DAY_MS)
        u = rand()
        if u < 0.45:
            return [(first, total)]
        _, _, _, unit_price = lines[int(rand() * len(lines))]
        if u < 0.85:
            return [(first, min(unit_price, total))]
        part = max(1, total * (10 + int(rand() * 30)) // 100)
        rest = total - part if rand() < 0.5 else max(1, (total - part) // 3)
        return [(first, part), (first + DAY_MS + int(rand() * 5 * DAY_MS), rest)]

    def _expect_commission(self, t, visitor, merchant, lines, total, refunded, done) -> None:
        """Find the click that wins the order (SPEC §5) and note the commission for the payable floor."""
        winner = None
        oldest = t - self.terms.longest_window_ms
        for occurred, event_id, referrer, key in self.clicks.get((visitor, merchant), ()):
            if occurred > t or occurred < oldest:
                continue
            done = max(done, key)
            if referrer == merchant or not self.membership.active(referrer, occurred):
                continue
            agreement = self.terms.resolve(merchant, referrer, t)
            if agreement is None or agreement.model not in ("cps", "cpa"):
                continue
            if t - occurred > agreement.window_days * DAY_MS:
                continue
            if winner is None or (occurred, event_id) > winner[:2]:
                winner = (occurred, event_id, referrer, agreement)
        if winner is None:
            return
        _, _, referrer, agreement = winner
        commission = agreement.commission(lines)
        remaining = commission - _half_up(commission * refunded, total)
        if remaining > 0:
            self.floor.wait(t, agreement.hold_days * DAY_MS, merchant, referrer, remaining, done)

    # -- bad events ----------------------------------------------------------

    def _misbehave(self, record: dict, deliver: int) -> None:
        """Queue one bad event next to a delivered shop event (SPEC §4)."""
        rand = self.rng.random
        kind = BAD_KINDS[bisect_right(_BAD_CUMULATIVE, rand() * _BAD_CUMULATIVE[-1])][0]
        needs_order = kind in ("negative_amount", "refund_exceeds_order", "currency_mismatch", "duplicate_order")
        if needs_order and not self.recent_orders:
            kind = "unknown_shop"
        payload = record[record["type"]]
        merchant_id = payload["merchant_shop_id"]
        at = record["occurred_at"] + SECOND_MS + int(rand() * MINUTE_MS)
        later = deliver + SECOND_MS + int(rand() * 30 * MINUTE_MS)
        if kind == "redelivery":
            bad = _copy_record(record)
        elif kind == "conflicting_duplicate":
            bad = _conflicting_copy(record)
        elif kind in ("unknown_shop", "shop_mismatch"):
            bad = self._bad_click(kind, at, merchant_id)
        elif kind in ("total_mismatch", "unknown_currency"):
            bad = self._bad_order(kind, at, merchant_id)
        else:
            bad = self._bad_about_order(kind, at, self.recent_orders[int(rand() * len(self.recent_orders))])
        self._push(partial(_as_is, bad), later)

    def _bad_click(self, kind: str, at: int, merchant_id: str) -> dict:
        rand = self.rng.random
        vid = self.visitor_ids[int(rand() * len(self.visitor_ids))]
        if kind == "unknown_shop":
            referrer_id = emitter = GHOSTS[int(rand() * len(GHOSTS))]
        else:
            referrer_id = next(s for s in self.shop_ids if s != merchant_id)
            emitter = merchant_id
        return self._envelope("click", at, emitter, vid, {
            "referrer_shop_id": referrer_id, "merchant_shop_id": merchant_id,
            "placement_id": PLACEMENTS[int(rand() * len(PLACEMENTS))]})

    def _bad_order(self, kind: str, at: int, merchant_id: str) -> dict:
        rand = self.rng.random
        merchant = self.shop_ids.index(merchant_id)
        lines = self._basket(merchant)
        total = sum(q * price for _, _, q, price in lines)
        if kind == "total_mismatch":  # the shop sent what was paid after a store coupon, or added shipping
            total = total - 500 if total > 1000 else total + 800
        return self._envelope("order", at, merchant_id, self.visitor_ids[int(rand() * len(self.visitor_ids))], {
            "order_id": f"ord-{self._next('order'):08d}", "merchant_shop_id": merchant_id,
            "currency": "RMB" if kind == "unknown_currency" else CURRENCY,
            "lines": [{"sku": sku, "category": category, "quantity": q, "unit_price_minor": price}
                      for sku, category, q, price in lines],
            "total_minor": total})

    def _bad_about_order(self, kind: str, at: int, order_record: dict) -> dict:
        order = order_record["order"]
        merchant_id = order["merchant_shop_id"]
        vid = order_record["visitor_id"]
        if kind == "duplicate_order":
            return self._envelope("order", max(at, order_record["occurred_at"]), merchant_id, vid,
                                  _copy_record(order_record)["order"])
        amount, currency = {
            "negative_amount": (-(1 + order["total_minor"] // 2), CURRENCY),
            "refund_exceeds_order": (order["total_minor"] + 100 + int(self.rng.random() * 5000), CURRENCY),
            "currency_mismatch": (max(1, order["total_minor"] // 4), "USD"),
        }[kind]
        return self._envelope("refund", max(at, order_record["occurred_at"]), merchant_id, vid, {
            "order_id": order["order_id"], "refund_id": f"rfd-{self._next('refund'):08d}",
            "merchant_shop_id": merchant_id, "currency": currency, "amount_minor": amount})


def _as_is(record: dict, deliver: int, seq: int) -> dict:
    return record


def _cumulative(weights) -> list[float]:
    out, running = [], 0.0
    for weight in weights:
        running += weight
        out.append(running)
    return out


def _day_factor(day_start: int) -> float:
    day = _ms_day(day_start)
    factor = 1.2 if day.weekday() >= 5 else 1.0
    return factor * FESTIVALS.get((day.month, day.day), 1.0)


def _copy_record(record: dict) -> dict:
    """A copy sharing no mutable part with the original (shop events only)."""
    kind = record["type"]
    copy = dict(record)
    payload = copy[kind] = dict(record[kind])
    if kind == "order":
        payload["lines"] = [dict(line) for line in payload["lines"]]
    return copy


def _conflicting_copy(record: dict) -> dict:
    """Same event id, same merchant (so the same partition), other content."""
    copy = _copy_record(record)
    payload = copy[copy["type"]]
    if copy["type"] in ("view", "click"):
        index = PLACEMENTS.index(payload["placement_id"])
        payload["placement_id"] = PLACEMENTS[(index + 1) % len(PLACEMENTS)]
    elif copy["type"] == "order":
        line = payload["lines"][0]
        line["quantity"] += 1
        payload["total_minor"] += line["unit_price_minor"]
    else:
        payload["refund_id"] += "-retry"
    return copy
