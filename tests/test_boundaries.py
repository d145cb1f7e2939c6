"""Every inclusive bound and every tie of SPEC §5–§9, one millisecond on each side.

Each story is folded by the ledger (`ledger.fold.PartitionFold`) and recomputed
by SQL from a DuckDB ledger it was ingested into (`replay.bulk`), and both must
give the numbers written here (tests/boundary_support.py). Bounds are
inclusive everywhere (SPEC §5): a click exactly one window before its order
wins, a cpc click exactly 24 hours after the last counted one counts, an
order exactly `hold_days` before `period_end` settles, a member's status and
an agreement version take effect at their exact millisecond.

The baby-care alliance (SPEC §13): li-kids, wang-bath, zhang-toys and
zhao-photo, members since 1 October; the default agreement (*, *) is cps
8 % (toys 10 %), window 15 days, hold 15 days, from 1 November.

Closing (§9a) and member health (§14) boundaries belong here too when those
rules land: one test function each, built the same way.
"""

from __future__ import annotations

from itertools import permutations

import pytest

from tests.boundary_support import DAY, HOUR, Story, both_ways, t

NOV_1 = t("2026-11-01T00:00")
CLICKED = t("2026-11-01T10:00")        # when v1 clicks through
END_OF_NOVEMBER = t("2026-11-30T15:59:59.999")  # period_end of November in Asia/Shanghai, in UTC

# wang-bath sells v1 one bottle of bath gel (care, 8 %): 10,000 fen earns 800.
BATH_GEL = [(1, 10_000, "care")]
BATH_GEL_COMMISSION = 800


def baby_care(**default_terms) -> tuple[Story, list[dict]]:
    s = Story()
    terms = dict(agreement_id="default", rate_bp=800, category_rates_bp={"toys": 1000}, window=15, hold=15)
    terms.update(default_terms)
    return s, s.head + [s.agreement_at(NOV_1, published=NOV_1 - DAY, event_id="a-default", **terms)]


# -- SPEC §5: the attribution window is inclusive ---------------------------------------------------


@pytest.mark.parametrize("window_days", [15, 3, 0])
def test_li_kids_click_exactly_one_window_before_the_order_wins(window_days):
    """li-kids refers v1 to wang-bath; v1 buys bath gel exactly `window` days later, to the
    millisecond (window 0: in the same millisecond as the click). li-kids earns 800."""
    s, log = baby_care()
    if window_days != 15:
        log.append(s.agreement_at(NOV_1, agreement_id="wang-bath-window", merchant="wang-bath", rate_bp=800,
                                  window=window_days, event_id="a-window"))
    log += [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.order_at(CLICKED + window_days * DAY, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")]
    both_ways(log).totals(earned={"li-kids": BATH_GEL_COMMISSION}, owed={"wang-bath": BATH_GEL_COMMISSION})


@pytest.mark.parametrize("window_days", [15, 3, 0])
def test_li_kids_click_one_millisecond_more_than_a_window_before_the_order_earns_nothing(window_days):
    """The same story with the order one millisecond later: outside the window, unattributed.
    (With wang-bath's 3-day window the alliance's 15-day default does not rescue it.)"""
    s, log = baby_care()
    if window_days != 15:
        log.append(s.agreement_at(NOV_1, agreement_id="wang-bath-window", merchant="wang-bath", rate_bp=800,
                                  window=window_days, event_id="a-window"))
    log += [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.order_at(CLICKED + window_days * DAY + 1, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")]
    both_ways(log).nothing_earned()


def test_a_click_one_millisecond_after_the_order_does_not_refer_it():
    """v1 buys at wang-bath at 10:00:00.000; li-kids' click at 10:00:00.001 came after the order."""
    s, log = baby_care()
    log += [s.order_at(CLICKED, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1"),
            s.click_at(CLICKED + 1, "li-kids", "wang-bath", "v1", event_id="c-1")]
    both_ways(log).nothing_earned()


@pytest.mark.parametrize("late", [False, True], ids=["click-first", "click-late"])
def test_the_window_is_the_agreement_in_effect_at_the_order(late):
    """wang-bath's own agreement has a 3-day window from 5 November; v1 clicked li-kids' link 4 days
    before ordering on 6 November: outside wang-bath's window, though inside the default 15 days.
    zhang-toys' click 3 days before, to the millisecond, wins instead."""
    s, log = baby_care()
    log.append(s.agreement_at(t("2026-11-05T00:00"), published=NOV_1, agreement_id="wang-bath-3d",
                              merchant="wang-bath", rate_bp=500, window=3, event_id="a-3d"))
    ordered = t("2026-11-06T12:00")
    clicks = [s.click_at(ordered - 4 * DAY, "li-kids", "wang-bath", "v1", event_id="c-li"),
              s.click_at(ordered - 3 * DAY, "zhang-toys", "wang-bath", "v1", event_id="c-zhang")]
    order = s.order_at(ordered, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")
    log += [order] + clicks if late else clicks + [order]
    both_ways(log).totals(earned={"zhang-toys": 500}, owed={"wang-bath": 500})


# -- SPEC §5: last click wins; a tie in time goes to the greater event id by code point ------------


TIES = [
    # (li-kids' click id, zhang-toys' click id, who wins): the greater id by Unicode code point
    ("click-a", "click-Z", "li-kids"),        # 'a' (U+0061) > 'Z' (U+005A), whatever a locale thinks
    ("click-Z", "click-a", "zhang-toys"),
    ("click-10", "click-9", "zhang-toys"),    # strings, not numbers: '9' > '1'
    ("click-é", "click-z", "li-kids"),        # U+00E9 > U+007A
    ("click-\U0001F600", "click-\uFF5A", "li-kids"),  # U+1F600 > U+FF5A (UTF-16 order would say otherwise)
]


@pytest.mark.parametrize("li_kids_id, zhang_toys_id, winner", TIES)
@pytest.mark.parametrize("arrival", ["li-kids-first", "zhang-toys-first"])
def test_two_clicks_in_the_same_millisecond_go_to_the_greater_event_id(li_kids_id, zhang_toys_id, winner, arrival):
    """li-kids and zhang-toys both refer v1 to wang-bath at 10:00:00.000 exactly; v1 buys an hour later.
    Neither click is later, so the greater event id wins the whole commission."""
    s, log = baby_care()
    li = s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id=li_kids_id)
    zhang = s.click_at(CLICKED, "zhang-toys", "wang-bath", "v1", event_id=zhang_toys_id)
    log += [li, zhang] if arrival == "li-kids-first" else [zhang, li]
    log.append(s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1"))
    both_ways(log).totals(earned={winner: BATH_GEL_COMMISSION}, owed={"wang-bath": BATH_GEL_COMMISSION})


def test_one_millisecond_later_beats_a_greater_event_id():
    """zhang-toys' click 'click-z' at 10:00:00.000, li-kids' 'click-0' at 10:00:00.001: time decides
    first, so li-kids wins although its id is smaller."""
    s, log = baby_care()
    log += [s.click_at(CLICKED + 1, "li-kids", "wang-bath", "v1", event_id="click-0"),
            s.click_at(CLICKED, "zhang-toys", "wang-bath", "v1", event_id="click-z"),
            s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")]
    both_ways(log).totals(earned={"li-kids": BATH_GEL_COMMISSION}, owed={"wang-bath": BATH_GEL_COMMISSION})


# -- SPEC §6: the 24-hour rule for cpc and swap clicks, in and out of order ------------------------


def per_click(model: str):
    """li-kids' clicks to wang-bath are paid per click: cpc 50 fen each, or one swap credit."""
    s, log = baby_care()
    terms = dict(amount_minor=50, currency="CNY") if model == "cpc" else {}
    log.append(s.agreement_at(NOV_1, agreement_id=f"wang-bath-{model}", merchant="wang-bath",
                              referrer="li-kids", model=model, hold=0, event_id=f"a-{model}", **terms))
    return s, log


def assert_counted(outcome, model: str, counted: int):
    if model == "cpc":
        outcome.totals(earned={"li-kids": 50 * counted}, owed={"wang-bath": 50 * counted})
        outcome.nothing_earned("CLICK")
    else:
        outcome.totals("CLICK", earned={"li-kids": counted}, owed={"wang-bath": counted})
        outcome.nothing_earned("CNY")


GAPS = [(24 * HOUR, 2), (24 * HOUR - 1, 1), (24 * HOUR + 1, 2)]


@pytest.mark.parametrize("model", ["cpc", "swap"])
@pytest.mark.parametrize("gap, counted", GAPS, ids=["exactly-24h", "24h-less-1ms", "24h-and-1ms"])
@pytest.mark.parametrize("arrival", ["in-order", "out-of-order"])
def test_li_kids_second_click_counts_from_exactly_24_hours(model, gap, counted, arrival):
    """v1 clicks li-kids → wang-bath at 10:00 on 1 November and again `gap` later. Exactly 24 hours
    later counts again; one millisecond sooner does not. Out of order: the second click is
    folded first, and the first one's arrival re-runs the rule over the chain."""
    s, log = per_click(model)
    # the later click has the smaller event id: time, not id, orders a chain
    first = s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-b")
    second = s.click_at(CLICKED + gap, "li-kids", "wang-bath", "v1", event_id="c-a")
    log += [first, second] if arrival == "in-order" else [second, first]
    assert_counted(both_ways(log), model, counted)


@pytest.mark.parametrize("model", ["cpc", "swap"])
@pytest.mark.parametrize("arrival", list(permutations(range(3))), ids=lambda p: "".join(map(str, p)))
def test_24_hours_run_from_the_last_counted_click_not_the_last_click(model, arrival):
    """v1 clicks at 10:00, at 09:59:59.999 the next day (not counted: 1 ms short of 24 h) and at
    10:00 the next day (counted: exactly 24 h after the first, the last counted one), folded in
    every order."""
    s, log = per_click(model)
    clicks = [s.click_at(CLICKED + gap, "li-kids", "wang-bath", "v1", event_id=f"c-{9 - n}")
              for n, gap in enumerate((0, 24 * HOUR - 1, 24 * HOUR))]  # later clicks, smaller ids
    log += [clicks[i] for i in arrival]
    assert_counted(both_ways(log), model, 2)


@pytest.mark.parametrize("arrival", ["in-order", "out-of-order"])
def test_the_24_hours_are_counted_per_visitor(arrival):
    """v1 and v2 click li-kids → wang-bath one millisecond apart: two visitors, two paid clicks."""
    s, log = per_click("cpc")
    clicks = [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
              s.click_at(CLICKED + 1, "li-kids", "wang-bath", "v2", event_id="c-2")]
    log += clicks if arrival == "in-order" else clicks[::-1]
    assert_counted(both_ways(log), "cpc", 2)


@pytest.mark.parametrize("arrival", ["in-order", "out-of-order"])
def test_two_cpc_clicks_in_the_same_millisecond_count_once(arrival):
    """v1's two clicks li-kids → wang-bath in the same millisecond: the first by event id counts,
    the other is 0 ms after it."""
    s, log = per_click("cpc")
    clicks = [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
              s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-2")]
    log += clicks if arrival == "in-order" else clicks[::-1]
    assert_counted(both_ways(log), "cpc", 1)


# -- SPEC §9: member status is read at the click's time --------------------------------------------


@pytest.mark.parametrize("suspended_after_ms, earns", [(1, True), (0, False)], ids=["1ms-after", "at-the-click"])
@pytest.mark.parametrize("arrival", ["in-order", "suspension-late"])
def test_li_kids_suspension_counts_from_its_exact_millisecond(suspended_after_ms, earns, arrival):
    """li-kids refers v1 to wang-bath at 10:00; the alliance suspends li-kids at 10:00:00.001
    (or at 10:00:00.000); v1 buys at noon, when li-kids is suspended either way. Status is read at
    the click: suspended one millisecond after, li-kids keeps the order; suspended at the click's
    own millisecond, it does not. The suspension may also reach the ledger after the order."""
    s, log = baby_care()
    suspension = s.member_at(CLICKED + suspended_after_ms, "li-kids", "suspended", event_id="m-suspend")
    shop_events = [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
                   s.order_at(CLICKED + 2 * HOUR, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")]
    log += [suspension] + shop_events if arrival == "in-order" else shop_events + [suspension]
    outcome = both_ways(log)
    if earns:
        outcome.totals(earned={"li-kids": BATH_GEL_COMMISSION}, owed={"wang-bath": BATH_GEL_COMMISSION})
    else:
        outcome.nothing_earned()


@pytest.mark.parametrize("suspended_after_ms, counted", [(1, 2), (0, 1)], ids=["1ms-after", "at-the-click"])
@pytest.mark.parametrize("arrival", ["in-order", "suspension-late"])
def test_a_cpc_click_at_the_suspensions_millisecond_is_not_paid(suspended_after_ms, counted, arrival):
    """li-kids is paid 50 per click by wang-bath. v1 clicks on 1 November at 10:00 and on 3 November
    at 10:00; li-kids is suspended from the second click's millisecond (or 1 ms after it)."""
    s, log = per_click("cpc")
    second = CLICKED + 2 * DAY
    suspension = s.member_at(second + suspended_after_ms, "li-kids", "suspended", event_id="m-suspend")
    clicks = [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
              s.click_at(second, "li-kids", "wang-bath", "v1", event_id="c-2")]
    log += [suspension] + clicks if arrival == "in-order" else clicks + [suspension]
    assert_counted(both_ways(log), "cpc", counted)


@pytest.mark.parametrize("suspended_id, active_id, earns", [("m-1", "m-2", True), ("m-2", "m-1", False)])
def test_two_status_changes_in_the_same_millisecond_the_greater_event_id_stands(suspended_id, active_id, earns):
    """The alliance records li-kids as suspended and as active in the same millisecond, an hour
    before v1 clicks li-kids → wang-bath: the member event with the greater id is the status."""
    s, log = baby_care()
    log += [s.member_at(CLICKED - HOUR, "li-kids", "suspended", event_id=suspended_id),
            s.member_at(CLICKED - HOUR, "li-kids", "active", event_id=active_id),
            s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")]
    outcome = both_ways(log)
    if earns:
        outcome.totals(earned={"li-kids": BATH_GEL_COMMISSION}, owed={"wang-bath": BATH_GEL_COMMISSION})
    else:
        outcome.nothing_earned()


def test_a_shop_not_yet_a_member_at_its_click_earns_nothing_for_it():
    """zhao-photo joins at 10:00:00.001; its click at 10:00:00.000 is not a member's click.
    (Its membership is folded before the click, so the click itself is not unknown_shop.)"""
    s = Story(members=("li-kids", "wang-bath"))
    log = s.head + [s.agreement_at(NOV_1, published=NOV_1 - DAY, agreement_id="default", rate_bp=800,
                                   event_id="a-default"),
                    s.member_at(CLICKED + 1, "zhao-photo", event_id="m-zhao"),
                    s.click_at(CLICKED, "zhao-photo", "wang-bath", "v1", event_id="c-1"),
                    s.click_at(CLICKED + 1, "zhao-photo", "wang-bath", "v2", event_id="c-2"),
                    s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1"),
                    s.order_at(CLICKED + HOUR, "wang-bath", "v2", "o2", BATH_GEL, event_id="o-2")]
    both_ways(log).totals(earned={"zhao-photo": BATH_GEL_COMMISSION}, owed={"wang-bath": BATH_GEL_COMMISSION})


# -- SPEC §5: an agreement version takes effect at its effective_from, inclusive -------------------


@pytest.mark.parametrize("starts_after_ms, rate_bp", [(0, 1200), (1, 800)], ids=["at-the-order", "1ms-later"])
@pytest.mark.parametrize("arrival", ["agreement-first", "agreement-late"])
def test_a_new_rate_effective_exactly_at_the_order_prices_it(starts_after_ms, rate_bp, arrival):
    """wang-bath raises what it pays to 12 % (version 2, published on 1 November) effective at the
    very millisecond v1 orders: the order is priced at 12 %. Effective one millisecond later, 8 %.
    A version that reaches the ledger after the order re-prices it the same way."""
    s, log = baby_care()
    ordered = t("2026-11-10T10:00")
    raise_ = s.agreement_at(ordered + starts_after_ms, published=NOV_1, agreement_id="wang-bath-rate",
                            merchant="wang-bath", rate_bp=1200, event_id="a-raise")
    shop_events = [s.click_at(ordered - HOUR, "li-kids", "wang-bath", "v1", event_id="c-1"),
                   s.order_at(ordered, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")]
    log += [raise_] + shop_events if arrival == "agreement-first" else shop_events + [raise_]
    commission = 10_000 * rate_bp // 10_000
    both_ways(log).totals(earned={"li-kids": commission}, owed={"wang-bath": commission})


@pytest.mark.parametrize("starts_after_ms, amount", [(0, 70), (1, 50)], ids=["at-the-click", "1ms-later"])
@pytest.mark.parametrize("arrival", ["agreement-first", "agreement-late"])
def test_a_cpc_price_effective_exactly_at_the_click_pays_it(starts_after_ms, amount, arrival):
    """wang-bath pays li-kids 50 per click, 70 from a version 2 effective at the click's millisecond
    (or one millisecond after it)."""
    s, log = per_click("cpc")
    v2 = s.agreement_at(CLICKED + starts_after_ms, published=NOV_1, agreement_id="wang-bath-cpc", version=2,
                        merchant="wang-bath", referrer="li-kids", model="cpc", amount_minor=70, currency="CNY",
                        hold=0, event_id="a-cpc-2")
    click = s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1")
    log += [v2, click] if arrival == "agreement-first" else [click, v2]
    both_ways(log).totals(earned={"li-kids": amount}, owed={"wang-bath": amount})


@pytest.mark.parametrize("arrival", ["v1-first", "v2-first"])
def test_two_versions_effective_at_the_same_millisecond_the_greater_version_wins(arrival):
    """wang-bath publishes version 1 (5 %) and version 2 (6 %) of its agreement, both effective
    3 November 00:00: version 2 prices v1's order."""
    s, log = baby_care()
    starts = t("2026-11-03T00:00")
    versions = [s.agreement_at(starts, published=NOV_1, agreement_id="wang-bath-rate", version=v,
                               merchant="wang-bath", rate_bp=rate, event_id=f"a-v{v}")
                for v, rate in ((1, 500), (2, 600))]
    log += versions if arrival == "v1-first" else versions[::-1]
    log += [s.click_at(starts + HOUR, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.order_at(starts + 2 * HOUR, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1")]
    both_ways(log).totals(earned={"li-kids": 600}, owed={"wang-bath": 600})


@pytest.mark.parametrize("arrival", ["in-order", "reversed"])
def test_the_most_specific_agreement_scope_wins(arrival):
    """wang-bath pays 5 % to any referrer (wang-bath, *); li-kids is paid 12 % by any merchant
    (*, li-kids); wang-bath and zhang-toys agreed 3 % between them (wang-bath, zhang-toys). So
    li-kids' order at wang-bath earns 5 % ((M, *) before (*, R)), zhang-toys' 3 % ((M, R) first),
    li-kids' order at zhao-photo 12 % ((*, R) before (*, *)), zhang-toys' at zhao-photo 8 %."""
    s, log = baby_care()
    scoped = [s.agreement_at(NOV_1, agreement_id=f"{m}-{r}", merchant=m, referrer=r, rate_bp=rate,
                             event_id=f"a-{m}-{r}")
              for m, r, rate in (("wang-bath", "*", 500), ("*", "li-kids", 1200), ("wang-bath", "zhang-toys", 300))]
    log += scoped if arrival == "in-order" else scoped[::-1]
    for n, (referrer, merchant) in enumerate((("li-kids", "wang-bath"), ("zhang-toys", "wang-bath"),
                                              ("li-kids", "zhao-photo"), ("zhang-toys", "zhao-photo"))):
        log += [s.click_at(CLICKED, referrer, merchant, f"v{n}", event_id=f"c-{n}"),
                s.order_at(CLICKED + HOUR, merchant, f"v{n}", f"o{n}", BATH_GEL, event_id=f"o-{n}")]
    both_ways(log).totals(earned={"li-kids": 500 + 1200, "zhang-toys": 300 + 800},
                          owed={"wang-bath": 500 + 300, "zhao-photo": 1200 + 800})


# -- SPEC §6 and §7: half up at exactly .5, per line, cumulative over refunds -----------------------


def test_each_line_rounds_half_up_at_exactly_half_a_fen():
    """At 10 %, a 25-fen sticker earns 2.5 fen → 3 and a 15-fen one 1.5 → 2: 5 in all (not 4, which
    rounding the order's total would give, nor 4 by rounding half to even)."""
    s, log = baby_care(rate_bp=1000)
    log += [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", [(1, 25, "care"), (1, 15, "care")],
                       event_id="o-1")]
    both_ways(log).totals(earned={"li-kids": 5}, owed={"wang-bath": 5})


@pytest.mark.parametrize("refunds, net", [
    ([25], 22),        # 25 × 25 / 250 = 2.5 → 3 reversed
    ([15], 23),        # 1.5 → 2
    ([5], 24),         # 0.5 → 1
    ([4], 25),         # 0.4 → 0
    ([5, 5], 24),      # cumulative 0.5 → 1, then 1.0 → 1: 1 in all (per refund it would be 1 + 1)
    ([3, 2], 24),      # cumulative 0.3 → 0, then 0.5 → 1: 1 in all (per refund it would be 0 + 0)
    ([125, 125], 0),   # a full refund reverses exactly C
], ids=["2.5", "1.5", "0.5", "0.4", "0.5+0.5", "0.3+0.2", "full"])
def test_refunds_reverse_commission_rounded_half_up_on_the_cumulative_amount(refunds, net):
    """v1 buys a 250-fen toy at wang-bath through li-kids' link; at 10 % li-kids earns 25. Refunds
    then reverse round(25 × refunded so far / 250), half up, each refund the difference."""
    s, log = baby_care(rate_bp=1000, category_rates_bp={})
    log += [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", [(1, 250, "toys")], event_id="o-1")]
    log += [s.refund_at(CLICKED + (2 + n) * HOUR, "wang-bath", "o1", amount, event_id=f"r-{n}")
            for n, amount in enumerate(refunds)]
    both_ways(log).totals(earned={"li-kids": net}, owed={"wang-bath": net})


# -- SPEC §9: a settlement moves what occurred at or before period_end − hold_days ------------------


@pytest.mark.parametrize("hold_days", [15, 0])
def test_an_order_exactly_hold_days_before_period_end_settles_and_one_ms_later_stays_pending(hold_days):
    """November's settlement (period_end 2026-11-30T15:59:59.999Z). v1 orders at wang-bath through
    li-kids' link exactly `hold_days` before it; v2 orders through zhang-toys' link one millisecond
    later. li-kids' 800 becomes payable, zhang-toys' 800 stays pending. SQL recomputes the totals;
    the split between pending and payable is the fold's."""
    s, log = baby_care(hold=hold_days)
    due = END_OF_NOVEMBER - hold_days * DAY
    log += [s.click_at(due - HOUR, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.click_at(due - HOUR, "zhang-toys", "wang-bath", "v2", event_id="c-2"),
            s.order_at(due, "wang-bath", "v1", "o1", BATH_GEL, event_id="o-1"),
            s.order_at(due + 1, "wang-bath", "v2", "o2", BATH_GEL, event_id="o-2"),
            s.settlement_at(END_OF_NOVEMBER + 1, END_OF_NOVEMBER, settlement_id="2026-11", event_id="s-11")]
    (both_ways(log)
     .totals(earned={"li-kids": 800, "zhang-toys": 800}, owed={"wang-bath": 1600})
     .fold_split("li-kids", earned_payable=800, earned_pending=0)
     .fold_split("zhang-toys", earned_payable=0, earned_pending=800)
     .fold_split("wang-bath", owed_payable=800, owed_pending=800))


def test_a_cpc_click_exactly_hold_days_before_period_end_settles():
    """wang-bath pays li-kids 50 per click with a 2-day hold. v1's click exactly 2 days before
    November's period_end settles; v2's, one millisecond later, stays pending."""
    s, log = baby_care()
    log.append(s.agreement_at(NOV_1, agreement_id="wang-bath-cpc", merchant="wang-bath", referrer="li-kids",
                              model="cpc", amount_minor=50, currency="CNY", hold=2, event_id="a-cpc"))
    due = END_OF_NOVEMBER - 2 * DAY
    log += [s.click_at(due, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.click_at(due + 1, "li-kids", "wang-bath", "v2", event_id="c-2"),
            s.settlement_at(END_OF_NOVEMBER + 1, END_OF_NOVEMBER, settlement_id="2026-11", event_id="s-11")]
    (both_ways(log)
     .totals(earned={"li-kids": 100}, owed={"wang-bath": 100})
     .fold_split("li-kids", earned_payable=50, earned_pending=50))
