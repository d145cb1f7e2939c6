"""The commission rules of SPEC §5–§9, one test each, told as the alliance tells them.

Every test folds a small log as one partition with ``ledger.fold.PartitionFold``
and checks what the members would check: balances, entries, decisions.
"""

from __future__ import annotations

import pytest

from refledger.ledger import events
from refledger.ledger.balances import balances
from refledger.ledger.chain import GENESIS
from refledger.ledger.pricing import round_half_up
from refledger.schemas import shape
from tests.ledger_support import Alliance, all_entries, balance_of, first_broken_link, fold_all

SHOPS = ("li-kids", "wang-bath", "zhang-toys", "zhao-photo")


def alliance(*extra, shops=SHOPS, rate_bp=800, category_rates_bp=None, window=15, hold=15):
    """Baby-care: every shop a member from 10-01, default cps agreement from 10-01."""
    a = Alliance("baby-care")
    head = [a.member(shop, event_id=f"m-{shop}") for shop in shops]
    head.append(a.agreement(rate_bp=rate_bp, category_rates_bp=category_rates_bp, window=window, hold=hold,
                            event_id="ag-default"))
    return a, head


def earned(outcomes, shop, currency="CNY"):
    row = balance_of(outcomes, shop, currency)
    return row.get("earned_pending", 0) + row.get("earned_payable", 0)


def owed(outcomes, shop, currency="CNY"):
    row = balance_of(outcomes, shop, currency)
    return row.get("owed_pending", 0) + row.get("owed_payable", 0)


def net_for_order(outcomes, merchant, order_id):
    subject = f"order:{merchant}:{order_id}"
    return {shop: sum(e.amount for e in all_entries(outcomes)
                      if e.subject == subject and e.shop_id == shop and e.account.startswith("earned"))
            for shop in {e.shop_id for e in all_entries(outcomes) if e.subject == subject}}


# -- §6 rounding -----------------------------------------------------------------------------


def test_half_up_rounds_exact_halves_away_from_zero():
    assert round_half_up(125, 10) == 13
    assert round_half_up(124, 10) == 12
    assert round_half_up(-125, 10) == -13
    assert round_half_up(5, 10) == 1
    assert round_half_up(7, 1) == 7  # a denominator of one: the number itself
    with pytest.raises(ValueError, match="^round_half_up needs a positive denominator$"):
        round_half_up(7, 0)
    assert round_half_up(4, 10) == 0
    assert round_half_up(0, 7) == 0
    with pytest.raises(ValueError):
        round_half_up(1, 0)


def test_a_commission_of_exactly_half_a_fen_rounds_up():
    # 1 × 1,250 at 1 % = 12.5 fen → 13; at 0.5 % 6.25 → 6
    a, head = alliance(rate_bp=100)
    _, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 1250, "care")]),
    ])
    assert earned(outcomes, "li-kids") == 13


# -- §5/§6 attribution and cps ---------------------------------------------------------------


def test_li_kids_refers_v1_to_wang_bath_and_earns_cps_on_each_line():
    a, head = alliance(category_rates_bp={"toys": 1000})
    fold, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1", event_id="c-1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(2, 4950, "care"), (1, 3333, "care")]),
    ])
    # 2 × 4,950 × 8 % = 792, 3,333 × 8 % = 266.64 → 267
    assert balance_of(outcomes, "li-kids")["earned_pending"] == 1059
    assert balance_of(outcomes, "wang-bath")["owed_pending"] == 1059
    decision = outcomes[-1].decisions[0]
    assert (decision.winning_click_event_id, decision.referrer_shop_id, decision.commission) == ("c-1", "li-kids", 1059)
    assert (decision.agreement_id, decision.agreement_version, decision.model, decision.rate_bp) == ("default", 1, "cps", 800)
    entry = outcomes[-1].entries[0]
    assert (entry.agreement_id, entry.agreement_version, entry.rate_bp, entry.click_event_id) == ("default", 1, 800, "c-1")


def test_a_category_rate_replaces_the_default_rate_for_its_lines():
    a, head = alliance(category_rates_bp={"toys": 1000})
    _, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "zhang-toys", "v1"),
        a.order("2026-11-01T10:05", "zhang-toys", "v1", "o1", [(1, 19900, "toys"), (1, 10000, "books")]),
    ])
    assert earned(outcomes, "li-kids") == 1990 + 800
    assert outcomes[-1].decisions[0].category_rates_bp == (("toys", 1000),)


def test_the_last_eligible_click_wins():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-04T12:00", "wang-bath", "li-kids", "v3"),
        a.click("2026-11-04T12:30", "zhang-toys", "li-kids", "v3"),
        a.order("2026-11-04T13:00", "li-kids", "v3", "o3", [(1, 25900, "apparel")]),
    ])
    assert earned(outcomes, "zhang-toys") == 2072
    assert earned(outcomes, "wang-bath") == 0


def test_clicks_at_the_same_millisecond_are_ranked_by_event_id():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-04T12:00", "zhang-toys", "li-kids", "v3", event_id="c-b"),
        a.click("2026-11-04T12:00", "wang-bath", "li-kids", "v3", event_id="c-a"),
        a.order("2026-11-04T13:00", "li-kids", "v3", "o3", [(1, 10000, "apparel")]),
    ])
    assert outcomes[-1].decisions[0].winning_click_event_id == "c-b"
    assert earned(outcomes, "zhang-toys") == 800


def test_a_click_after_the_order_does_not_refer_it():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.order("2026-11-04T13:00", "li-kids", "v3", "o3", [(1, 10000, "apparel")]),
        a.click("2026-11-04T13:00:00.001", "wang-bath", "li-kids", "v3"),
    ])
    assert earned(outcomes, "wang-bath") == 0


def test_a_click_at_the_same_millisecond_as_the_order_refers_it():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-04T13:00", "wang-bath", "li-kids", "v3"),
        a.order("2026-11-04T13:00", "li-kids", "v3", "o3", [(1, 10000, "apparel")]),
    ])
    assert earned(outcomes, "wang-bath") == 800


@pytest.mark.parametrize("order_at, attributed", [
    ("2026-11-16T10:00:00.000", True),   # exactly 15 × 24 h after the click
    ("2026-11-16T10:00:00.001", False),  # one millisecond more
])
def test_the_attribution_window_is_inclusive(order_at, attributed):
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "zhang-toys", "v2"),
        a.order(order_at, "zhang-toys", "v2", "o2", [(1, 10000, "toys")]),
    ])
    assert earned(outcomes, "li-kids") == (800 if attributed else 0)
    if not attributed:
        assert outcomes[-1].decisions[0].clicks[0].reason == "outside 15-day window"


def test_an_order_outside_the_window_is_unattributed_even_with_an_older_click():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-02T08:00", "li-kids", "zhang-toys", "v2"),
        a.order("2026-11-20T08:00", "zhang-toys", "v2", "o2", [(1, 19900, "toys")]),
    ])
    assert all_entries(outcomes) == []
    assert outcomes[-1].decisions[0].referrer_shop_id is None


def test_a_shop_referring_to_itself_earns_nothing():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-05T09:00", "li-kids", "li-kids", "v4"),
        a.order("2026-11-05T09:10", "li-kids", "v4", "o4", [(3, 1500, "apparel")]),
    ])
    assert all_entries(outcomes) == []
    assert outcomes[-1].decisions[0].clicks[0].reason == "self-referral"


def test_a_click_by_another_visitor_or_to_another_merchant_does_not_count():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-05T09:00", "wang-bath", "li-kids", "v-other"),
        a.click("2026-11-05T09:00", "wang-bath", "zhang-toys", "v4"),
        a.order("2026-11-05T09:10", "li-kids", "v4", "o4", [(1, 1500, "apparel")]),
    ])
    assert all_entries(outcomes) == []


def test_a_suspended_referrer_earns_nothing_for_clicks_from_then_on():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-04T10:00", "wang-bath", "li-kids", "v1"),
        a.order("2026-11-04T11:00", "li-kids", "v1", "o1", [(1, 10000, "apparel")]),
        a.member("wang-bath", at="2026-11-05T00:00", status="suspended"),
        a.click("2026-11-05T00:00", "wang-bath", "li-kids", "v2"),   # at the very moment: suspended
        a.order("2026-11-05T01:00", "li-kids", "v2", "o2", [(1, 10000, "apparel")]),
    ])
    assert earned(outcomes, "wang-bath") == 800      # what it earned before stays
    assert outcomes[-1].decisions[0].clicks[0].reason == "referrer suspended at the click"


def test_an_expelled_referrer_and_a_referrer_not_yet_a_member_earn_nothing():
    a = Alliance()
    records = [
        a.member("li-kids", at="2026-10-01T00:00"),
        a.member("wang-bath", at="2026-10-01T00:00"),
        a.member("zhang-toys", at="2026-11-10T00:00"),   # joins on 11-10 (folded now, effective later)
        a.agreement(rate_bp=800),
        a.member("wang-bath", at="2026-11-02T00:00", status="expelled"),
        a.click("2026-11-03T10:00", "wang-bath", "li-kids", "v1"),
        a.click("2026-11-03T10:00", "zhang-toys", "li-kids", "v2"),
        a.order("2026-11-03T11:00", "li-kids", "v1", "o1", [(1, 10000, "apparel")]),
        a.order("2026-11-03T11:00", "li-kids", "v2", "o2", [(1, 10000, "apparel")]),
    ]
    _, outcomes = fold_all(records)
    assert all_entries(outcomes) == []
    assert outcomes[-2].decisions[0].clicks[0].reason == "referrer expelled at the click"
    assert outcomes[-1].decisions[0].clicks[0].reason == "referrer not yet a member at the click"


# -- §5 agreement resolution -----------------------------------------------------------------


def _priced_rate(extra_agreements, at="2026-11-10T10:00"):
    a, head = alliance()
    _, outcomes = fold_all(head + [a.agreement(**kw) for kw in extra_agreements] + [
        a.click(at, "li-kids", "wang-bath", "v1"),
        a.order(at, "wang-bath", "v1", "o1", [(1, 10000, "care")]),
    ])
    decision = outcomes[-1].decisions[0]
    return decision.agreement_id, decision.commission


def test_the_most_specific_scope_wins():
    scopes = [
        dict(agreement_id="any-to-wang", merchant="wang-bath", referrer="*", rate_bp=300),
        dict(agreement_id="li-to-any", merchant="*", referrer="li-kids", rate_bp=400),
        dict(agreement_id="li-to-wang", merchant="wang-bath", referrer="li-kids", rate_bp=500),
    ]
    assert _priced_rate(scopes) == ("li-to-wang", 500)
    assert _priced_rate(scopes[:2]) == ("any-to-wang", 300)
    assert _priced_rate(scopes[1:2]) == ("li-to-any", 400)
    assert _priced_rate([]) == ("default", 800)


def test_within_a_scope_the_latest_effective_version_then_the_greatest_version_wins():
    versions = [
        dict(agreement_id="wang", version=1, merchant="wang-bath", rate_bp=300, effective_from="2026-11-01T00:00"),
        dict(agreement_id="wang", version=2, merchant="wang-bath", rate_bp=400, effective_from="2026-11-05T00:00"),
        dict(agreement_id="wang", version=3, merchant="wang-bath", rate_bp=500, effective_from="2026-11-20T00:00"),
        dict(agreement_id="wang", version=4, merchant="wang-bath", rate_bp=600, effective_from="2026-11-05T00:00"),
    ]
    assert _priced_rate(versions) == ("wang", 600)            # v2 and v4 both from 11-05: v4
    assert _priced_rate(versions, at="2026-11-04T23:59") == ("wang", 300)
    assert _priced_rate(versions, at="2026-11-20T00:00") == ("wang", 500)   # inclusive


def test_a_scope_with_no_version_in_effect_yet_is_skipped():
    later = [dict(agreement_id="li-to-wang", merchant="wang-bath", referrer="li-kids", rate_bp=100,
                  effective_from="2026-12-01T00:00", at="2026-11-01T00:00")]
    assert _priced_rate(later) == ("default", 800)


def test_model_none_in_a_specific_scope_means_no_commission():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.agreement(agreement_id="no-deal", merchant="wang-bath", referrer="li-kids", model="none"),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
    ])
    assert all_entries(outcomes) == []
    assert outcomes[-1].decisions[0].clicks[0].reason == "no agreement in effect (model none)"


def test_no_agreement_at_all_means_no_commission():
    a = Alliance()
    _, outcomes = fold_all([
        a.member("li-kids"), a.member("wang-bath"),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
    ])
    assert all_entries(outcomes) == []


def test_the_window_is_the_one_of_the_agreement_resolved_for_that_referrer():
    a, head = alliance(window=15)
    _, outcomes = fold_all(head + [
        a.agreement(agreement_id="short", merchant="li-kids", referrer="wang-bath", rate_bp=500, window=1),
        a.click("2026-11-01T10:00", "zhang-toys", "li-kids", "v1"),
        a.click("2026-11-02T10:00", "wang-bath", "li-kids", "v1"),
        a.order("2026-11-03T12:00", "li-kids", "v1", "o1", [(1, 10000, "apparel")]),
    ])
    # wang-bath's click is later but 26 h old, outside its 1-day window; zhang-toys' click wins
    assert earned(outcomes, "zhang-toys") == 800
    assert earned(outcomes, "wang-bath") == 0


# -- §6 cpa, cpc, swap -----------------------------------------------------------------------


def test_cpa_pays_its_fixed_amount_in_its_own_currency():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.agreement(agreement_id="cpa", merchant="wang-bath", model="cpa", amount_minor=300, currency="USD"),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 99900, "care")]),
    ])
    assert balance_of(outcomes, "li-kids", "USD")["earned_pending"] == 300
    assert balance_of(outcomes, "wang-bath", "USD")["owed_pending"] == 300
    assert balance_of(outcomes, "li-kids", "CNY") == {}


def test_a_click_under_a_cpc_agreement_does_not_attribute_orders():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.agreement(agreement_id="cpc", merchant="wang-bath", referrer="li-kids", model="cpc",
                    amount_minor=50, currency="CNY", hold=0),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
    ])
    assert earned(outcomes, "li-kids") == 50          # the click, not the order
    assert outcomes[-1].decisions[0].clicks[0].reason == "agreement model cpc"


def _cpc_alliance():
    a, head = alliance()
    head.append(a.agreement(agreement_id="cups-pay-per-click", merchant="wang-bath", referrer="zhang-toys",
                            model="cpc", amount_minor=50, currency="CNY", hold=0,
                            effective_from="2026-11-01T00:00"))
    return a, head


def test_cpc_counts_at_most_one_click_per_24_hours_per_visitor():
    a, head = _cpc_alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-04T09:00", "zhang-toys", "wang-bath", "v3"),
        a.click("2026-11-04T15:00", "zhang-toys", "wang-bath", "v3"),   # 6 h after a counted one
        a.click("2026-11-05T09:00", "zhang-toys", "wang-bath", "v3"),   # exactly 24 h: counts
        a.click("2026-11-05T10:00", "zhang-toys", "wang-bath", "v9"),   # another visitor
    ])
    assert earned(outcomes, "zhang-toys") == 150
    assert owed(outcomes, "wang-bath") == 150


def test_cpc_clicks_arriving_out_of_order_converge_on_the_same_counted_clicks():
    a, head = _cpc_alliance()
    early = a.click("2026-11-04T10:00", "zhang-toys", "wang-bath", "v3", event_id="c-a")
    middle = a.click("2026-11-05T09:00", "zhang-toys", "wang-bath", "v3", event_id="c-b")   # 23 h after c-a
    late = a.click("2026-11-05T11:00", "zhang-toys", "wang-bath", "v3", event_id="c-c")     # 25 h after c-a

    def counted(outcomes):
        totals = {}
        for e in all_entries(outcomes):
            if e.shop_id == "zhang-toys":
                totals[e.click_event_id] = totals.get(e.click_event_id, 0) + e.amount
        return {k for k, v in totals.items() if v}

    _, in_order = fold_all(head + [early, middle, late])
    _, shuffled = fold_all(head + [middle, late, early])
    assert counted(in_order) == counted(shuffled) == {"c-a", "c-c"}
    assert earned(shuffled, "zhang-toys") == 100
    # c-b was counted first; when c-a arrived it counted, c-b was reversed and c-c revalidated
    roles = [(e.click_event_id, e.role) for e in shuffled[-1].entries if e.shop_id == "zhang-toys"]
    assert roles == [("c-a", "commission"), ("c-b", "reverse"), ("c-c", "commission")]


def test_cpc_is_priced_by_the_agreement_at_the_click_and_ignores_invalid_clicks():
    a, head = _cpc_alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-04T09:00", "wang-bath", "wang-bath", "v1"),               # self-referral
        a.member("zhang-toys", at="2026-11-06T00:00", status="suspended"),
        a.click("2026-11-06T09:00", "zhang-toys", "wang-bath", "v1"),              # suspended
        a.click("2026-10-20T09:00", "zhang-toys", "wang-bath", "v2"),              # before the cpc version
    ])
    assert all_entries(outcomes) == []


def test_swap_counts_traffic_credits_given_and_received_not_money():
    a, head = alliance()
    head.append(a.agreement(agreement_id="swap", merchant="li-kids", referrer="zhang-toys", model="swap", hold=0))
    _, outcomes = fold_all(head + [
        a.click("2026-11-06T08:00", "zhang-toys", "li-kids", "v4"),
        a.click("2026-11-07T09:00", "zhang-toys", "li-kids", "v4"),       # 25 h later: counts
        a.click("2026-11-07T10:00", "zhang-toys", "li-kids", "v4"),       # 1 h later: does not
        a.settlement("2026-12-01T00:00", "2026-11-30T00:00"),
    ])
    rows = balances(all_entries(outcomes))
    assert rows == [
        {"shop_id": "li-kids", "currency": "CLICK", "swap_given": 0, "swap_received": 2},
        {"shop_id": "zhang-toys", "currency": "CLICK", "swap_given": 2, "swap_received": 0},
    ]
    assert outcomes[-1].entries == ()    # settlements leave swap credits alone
    # what the statement shows beside each credit: its role, its model and the click that earned it
    credited = [(o.entries[0].event_id, {(e.role, e.model, e.click_event_id) for e in o.entries})
                for o in outcomes[-4:-2]]
    assert credited == [(click_id, {("swap-credit", "swap", click_id)}) for click_id, _ in credited]


# -- §7 refunds ------------------------------------------------------------------------------


def test_a_partial_refund_reverses_the_commission_in_proportion():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(2, 4950, "care"), (1, 3333, "care")]),
        a.refund("2026-11-03T09:00", "wang-bath", "o1", 3333),
    ])
    assert earned(outcomes, "li-kids") == 792       # 1,059 − round(1,059 × 3,333 / 13,233) = 1,059 − 267
    assert [e.amount for e in outcomes[-1].entries] == [-267, 267]
    assert outcomes[-1].entries[0].role == "refund"


def test_refunds_that_add_up_to_the_total_reverse_exactly_the_commission():
    a, head = alliance()
    records = head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 1001, "care"), (1, 1002, "care")]),
    ]
    records += [a.refund(f"2026-11-0{d}T09:00", "wang-bath", "o1", amount) for d, amount in ((2, 667), (3, 667), (4, 669))]
    _, outcomes = fold_all(records)
    assert earned(outcomes, "li-kids") == 0
    assert owed(outcomes, "wang-bath") == 0
    # cumulative: round(160 × 667/2003)=53, round(160 × 1334/2003)=107, then all of 160
    assert [o.entries[0].amount for o in outcomes[-3:]] == [-53, -54, -53]


def test_a_refund_before_its_order_is_parked_then_applied():
    a, head = alliance(rate_bp=800)
    fold, first = fold_all(head + [
        a.click("2026-11-03T07:00", "zhao-photo", "li-kids", "v2"),
        a.refund("2026-11-03T09:00", "li-kids", "o2", 500, event_id="r-2", refund_id="rf2"),
    ])
    assert first[-1].parked and first[-1].quarantine is None and first[-1].entries == ()
    outcome = fold.apply(a.order("2026-11-03T08:00", "li-kids", "v2", "o2", [(1, 1500, "apparel")]))
    assert [(e.role, e.amount, e.refund_id) for e in outcome.entries if e.shop_id == "zhao-photo"] == \
        [("commission", 120, None), ("refund", -40, "rf2")]


def test_a_refund_beyond_the_order_total_is_quarantined_and_changes_nothing():
    a, head = alliance()
    fold, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 1000, "care")]),
        a.refund("2026-11-02T09:00", "wang-bath", "o1", 600),
    ])
    head_before = fold.chain_head
    outcome = fold.apply(a.refund("2026-11-03T09:00", "wang-bath", "o1", 401))
    assert outcome.quarantine == "refund_exceeds_order" and outcome.entries == ()
    assert fold.chain_head == head_before
    assert fold.apply(a.refund("2026-11-03T09:00", "wang-bath", "o1", 400)).quarantine is None


def test_a_parked_refund_that_exceeds_its_order_is_quarantined_when_the_order_arrives():
    a, head = alliance()
    fold, _ = fold_all(head + [
        a.refund("2026-11-02T09:00", "wang-bath", "o1", 800, event_id="r-ok"),
        a.refund("2026-11-02T10:00", "wang-bath", "o1", 300, event_id="r-too-much"),
        a.refund("2026-11-02T11:00", "wang-bath", "o1", 100, currency="USD", event_id="r-usd"),
    ])
    outcome = fold.apply(a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 1000, "care")]))
    assert outcome.quarantine is None
    assert outcome.late_quarantines == (("r-too-much", "refund_exceeds_order"), ("r-usd", "currency_mismatch"))


# -- §8 late and out-of-order events ---------------------------------------------------------


def test_a_late_click_that_should_have_won_re_attributes_the_order():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-03T11:00", "wang-bath", "zhang-toys", "v2", event_id="c-2"),
        a.order("2026-11-03T12:00", "zhang-toys", "v2", "o2", [(2, 2500, "toys")]),
        a.click("2026-11-03T11:30", "li-kids", "zhang-toys", "v2", event_id="c-8"),
    ])
    assert earned(outcomes, "wang-bath") == 0
    assert earned(outcomes, "li-kids") == 400
    late = outcomes[-1]
    assert [(e.shop_id, e.role, e.amount, e.click_event_id) for e in late.entries if e.account == "earned_pending"] == \
        [("wang-bath", "reverse", -400, "c-2"), ("li-kids", "commission", 400, "c-8")]
    assert late.decisions[0].winning_click_event_id == "c-8"


def test_a_late_click_earlier_than_the_winner_changes_nothing():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-03T11:30", "li-kids", "zhang-toys", "v2"),
        a.order("2026-11-03T12:00", "zhang-toys", "v2", "o2", [(1, 5000, "food")]),
        a.click("2026-11-03T11:00", "wang-bath", "zhang-toys", "v2"),
    ])
    assert outcomes[-1].entries == ()
    assert len(outcomes[-1].decisions) == 1     # re-computed, same answer
    assert earned(outcomes, "li-kids") == 400


def test_a_late_click_re_attributes_a_refunded_order_at_its_net():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-03T11:00", "wang-bath", "zhang-toys", "v2"),
        a.order("2026-11-03T12:00", "zhang-toys", "v2", "o2", [(1, 3000, "food")]),
        a.refund("2026-11-04T12:00", "zhang-toys", "o2", 1000),
        a.agreement(agreement_id="li-pays-more", merchant="zhang-toys", referrer="li-kids", rate_bp=1000,
                    at="2026-10-01T00:00"),
        a.click("2026-11-03T11:30", "li-kids", "zhang-toys", "v2"),
    ])
    assert earned(outcomes, "wang-bath") == 0
    assert earned(outcomes, "li-kids") == 300 - 100      # C' − round(C' × A / total)


def test_a_late_agreement_version_re_prices_the_orders_it_governs():
    a = Alliance("night-market")
    records = [a.member(s) for s in ("d-dumpling", "e-egg")] + [
        a.agreement(agreement_id="egg-cps", merchant="e-egg", rate_bp=500, window=5, hold=5,
                    effective_from="2026-11-01T00:00", at="2026-10-31T00:00"),
        a.click("2026-11-02T10:00", "d-dumpling", "e-egg", "v1"),
        a.order("2026-11-02T12:00", "e-egg", "v1", "o1", [(1, 2000, "food")]),
        a.click("2026-11-12T09:00", "d-dumpling", "e-egg", "v4"),
        a.order("2026-11-12T10:00", "e-egg", "v4", "o4", [(1, 3000, "food")]),
        a.agreement(agreement_id="egg-cps", version=2, merchant="e-egg", rate_bp=1000, window=5, hold=5,
                    effective_from="2026-11-10T00:00", at="2026-11-09T00:00"),
    ]
    _, outcomes = fold_all(records)
    assert earned(outcomes, "d-dumpling") == 100 + 300
    late = outcomes[-1]
    assert [d.order_id for d in late.decisions] == ["o4"]          # o1 predates the version
    assert [(e.role, e.amount, e.agreement_version) for e in late.entries if e.shop_id == "d-dumpling"] == \
        [("reverse", -150, 1), ("commission", 300, 2)]


def test_a_late_suspension_takes_away_orders_won_by_clicks_after_it():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-04T10:00", "wang-bath", "li-kids", "v1"),
        a.order("2026-11-04T11:00", "li-kids", "v1", "o1", [(1, 10000, "apparel")]),
        a.click("2026-11-06T10:00", "wang-bath", "li-kids", "v2"),
        a.order("2026-11-06T11:00", "li-kids", "v2", "o2", [(1, 10000, "apparel")]),
        a.member("wang-bath", at="2026-11-05T00:00", status="suspended"),
    ])
    assert earned(outcomes, "wang-bath") == 800
    assert [d.order_id for d in outcomes[-1].decisions] == ["o2"]


def test_a_late_reinstatement_gives_back_what_the_clicks_earn():
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.member("wang-bath", at="2026-11-03T00:00", status="suspended"),
        a.click("2026-11-06T10:00", "wang-bath", "li-kids", "v2"),
        a.order("2026-11-06T11:00", "li-kids", "v2", "o2", [(1, 10000, "apparel")]),
        a.member("wang-bath", at="2026-11-05T00:00", status="active"),
    ])
    assert earned(outcomes, "wang-bath") == 800


def test_an_order_and_its_click_in_either_order_give_the_same_balances():
    a, head = alliance()
    click = a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1")
    order = a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")])
    refund = a.refund("2026-11-02T10:00", "wang-bath", "o1", 2500)
    _, forward = fold_all(head + [click, order, refund])
    _, backward = fold_all(head + [refund, order, click])
    assert balances(all_entries(forward)) == balances(all_entries(backward))


# -- §9 hold, settlement, payout, adjustment -------------------------------------------------


@pytest.mark.parametrize("order_at, settled", [
    ("2026-11-15T00:00:00.000", True),     # exactly period_end − hold
    ("2026-11-15T00:00:00.001", False),
])
def test_a_settlement_makes_payable_what_is_past_its_hold(order_at, settled):
    a, head = alliance(hold=15)
    _, outcomes = fold_all(head + [
        a.click(order_at, "li-kids", "wang-bath", "v1"),
        a.order(order_at, "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.settlement("2026-12-01T00:00", "2026-11-30T00:00"),
    ])
    row = balance_of(outcomes, "li-kids")
    assert (row["earned_payable"], row["earned_pending"]) == ((800, 0) if settled else (0, 800))


def test_the_hold_is_the_one_of_the_agreement_that_priced_the_order():
    a, head = alliance(hold=15)
    _, outcomes = fold_all(head + [
        a.agreement(agreement_id="quick", merchant="wang-bath", rate_bp=800, hold=0),
        a.click("2026-11-29T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-29T10:00", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.click("2026-11-29T10:00", "li-kids", "zhang-toys", "v2"),
        a.order("2026-11-29T10:00", "zhang-toys", "v2", "o2", [(1, 10000, "toys")]),
        a.settlement("2026-12-01T00:00", "2026-11-30T00:00"),
    ])
    row = balance_of(outcomes, "li-kids")
    assert (row["earned_payable"], row["earned_pending"]) == (800, 800)


def test_a_refund_after_settlement_claws_back_payable_which_may_go_negative():
    a, head = alliance(hold=10)
    fold, outcomes = fold_all(head + [
        a.click("2026-11-02T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-02T11:00", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.settlement("2026-11-21T00:00", "2026-11-20T00:00"),
        a.payout("2026-11-22T00:00", "wang-bath", "li-kids", 800),
        a.refund("2026-11-23T00:00", "wang-bath", "o1", 5000),
    ])
    row = balance_of(outcomes, "li-kids")
    assert (row["earned_payable"], row["earned_pending"], row["received"]) == (-400, 0, 800)
    assert balance_of(outcomes, "wang-bath")["owed_payable"] == -400
    # and a later payout cannot go beyond it
    assert fold.apply(a.payout("2026-11-24T00:00", "wang-bath", "li-kids", 1)).quarantine == "payout_exceeds_payable"


def test_re_attribution_after_settlement_moves_payable_from_the_old_referrer_to_the_new():
    a, head = alliance(hold=10)
    _, outcomes = fold_all(head + [
        a.click("2026-11-03T11:00", "wang-bath", "zhang-toys", "v2"),
        a.order("2026-11-03T12:00", "zhang-toys", "v2", "o2", [(1, 5000, "food")]),
        a.settlement("2026-11-21T00:00", "2026-11-20T00:00"),
        a.click("2026-11-03T11:30", "li-kids", "zhang-toys", "v2"),
    ])
    assert balance_of(outcomes, "wang-bath")["earned_payable"] == 0
    assert balance_of(outcomes, "li-kids")["earned_payable"] == 400
    assert balance_of(outcomes, "li-kids")["earned_pending"] == 0


def test_an_old_order_folded_after_a_settlement_waits_for_the_next_one():
    a, head = alliance(hold=10)
    fold, outcomes = fold_all(head + [
        a.settlement("2026-11-21T00:00", "2026-11-20T00:00", settlement_id="s1"),
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T11:00", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
    ])
    assert balance_of(outcomes, "li-kids")["earned_pending"] == 800
    outcome = fold.apply(a.settlement("2026-12-21T00:00", "2026-12-20T00:00", settlement_id="s2"))
    assert [(e.account, e.amount) for e in outcome.entries if e.shop_id == "li-kids"] == \
        [("earned_pending", -800), ("earned_payable", 800)]


def test_an_unattributed_order_is_not_settled_and_earns_pending_when_attributed_later():
    a, head = alliance(hold=10)
    _, outcomes = fold_all(head + [
        a.order("2026-11-03T12:00", "zhang-toys", "v2", "o2", [(1, 5000, "food")]),
        a.settlement("2026-11-21T00:00", "2026-11-20T00:00"),
        a.click("2026-11-03T11:30", "li-kids", "zhang-toys", "v2"),
    ])
    assert outcomes[-2].entries == ()
    row = balance_of(outcomes, "li-kids")
    assert (row["earned_pending"], row["earned_payable"]) == (400, 0)


def test_a_payout_moves_payable_to_paid_and_may_not_exceed_it():
    a, head = alliance(hold=10)
    fold, outcomes = fold_all(head + [
        a.click("2026-11-02T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-02T11:00", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
    ])

    def apply(record):
        outcomes.append(fold.apply(record))
        return outcomes[-1]

    assert apply(a.payout("2026-11-08T00:00", "wang-bath", "li-kids", 100)).quarantine == "payout_exceeds_payable"
    apply(a.settlement("2026-11-21T00:00", "2026-11-20T00:00"))
    assert apply(a.payout("2026-11-22T00:00", "wang-bath", "li-kids", 801)).quarantine == "payout_exceeds_payable"
    paid = apply(a.payout("2026-11-22T00:00", "wang-bath", "li-kids", 600, payout_id="p-2"))
    assert paid.quarantine is None
    assert sum(e.amount for e in paid.entries) == 0
    rows = {r["shop_id"]: r for r in balances(all_entries(outcomes))}
    assert (rows["li-kids"]["earned_payable"], rows["li-kids"]["received"]) == (200, 600)
    assert (rows["wang-bath"]["owed_payable"], rows["wang-bath"]["paid_out"]) == (200, 600)


def test_the_payout_check_is_per_merchant_referrer_pair_and_currency():
    a, head = alliance(hold=0)
    fold, _ = fold_all(head + [
        a.click("2026-11-02T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-02T11:00", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.settlement("2026-11-21T00:00", "2026-11-20T00:00"),
    ])
    assert fold.apply(a.payout("2026-11-22T00:00", "zhang-toys", "li-kids", 100)).quarantine == "payout_exceeds_payable"
    assert fold.apply(a.payout("2026-11-22T00:00", "wang-bath", "li-kids", 100, "USD")).quarantine == \
        "payout_exceeds_payable"
    assert fold.apply(a.payout("2026-11-22T00:00", "wang-bath", "li-kids", 800)).quarantine is None


def test_an_adjustment_goes_straight_to_payable_with_its_reason_and_may_be_negative():
    a, head = alliance()
    fold, outcomes = fold_all(head + [
        a.adjustment("2026-11-10T00:00", "wang-bath", "li-kids", 250, "goodwill for the November campaign"),
        a.adjustment("2026-11-11T00:00", "wang-bath", "li-kids", -50, "duplicate campaign credit",
                     adjustment_id="adj-2"),
    ])
    assert balance_of(outcomes, "li-kids")["earned_payable"] == 200
    assert balance_of(outcomes, "wang-bath")["owed_payable"] == 200
    assert {e.reason for e in all_entries(outcomes)} == {"goodwill for the November campaign",
                                                         "duplicate campaign credit"}
    assert fold.apply(a.payout("2026-11-12T00:00", "wang-bath", "li-kids", 200)).quarantine is None


def test_statements_net_each_pair_through_balances():
    a, head = alliance(hold=0)
    _, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.click("2026-11-01T10:00", "wang-bath", "li-kids", "v2"),
        a.order("2026-11-01T10:05", "li-kids", "v2", "o2", [(1, 2500, "apparel")]),
        a.settlement("2026-11-21T00:00", "2026-11-20T00:00"),
    ])
    li = balance_of(outcomes, "li-kids")
    assert li["earned_payable"] - li["owed_payable"] == 800 - 200


# -- §10 entries and chain -------------------------------------------------------------------


def test_entries_balance_per_transaction_have_unique_ids_and_form_a_verifiable_chain():
    a, head = alliance(hold=0)
    fold, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.refund("2026-11-02T10:00", "wang-bath", "o1", 2500),
        a.settlement("2026-11-21T00:00", "2026-11-20T00:00"),
        a.click("2026-11-01T10:01", "zhang-toys", "wang-bath", "v1"),
    ])
    entries = all_entries(outcomes)
    assert len({e.entry_id for e in entries}) == len(entries)
    assert [e.seq for e in entries] == list(range(len(entries)))
    txns = {}
    for e in entries:
        txns.setdefault((e.txn_id, e.currency), 0)
        txns[(e.txn_id, e.currency)] += e.amount
    assert set(txns.values()) == {0}
    assert entries[0].prev_hash == GENESIS
    assert first_broken_link(entries) is None
    assert fold.chain_head == entries[-1].hash
    tampered = [e.to_dict() for e in entries]
    tampered[3]["amount"] += 1
    assert first_broken_link(tampered) == 3


# -- §4 business quarantine ------------------------------------------------------------------


def _quarantine_of(record, *, before=()):
    a, head = alliance()
    fold, _ = fold_all(head + list(before))
    head_before = fold.chain_head
    outcome = fold.apply(record)
    if outcome.quarantine is not None:
        assert outcome.entries == () and fold.chain_head == head_before
    return outcome.quarantine


A = Alliance("baby-care")


@pytest.mark.parametrize("record, reason", [
    (A.click("2026-11-07T10:00", "g-ghost", "wang-bath", "v9"), "unknown_shop"),
    (A.click("2026-11-07T10:00", "li-kids", "g-ghost", "v9"), "unknown_shop"),
    (A.view("2026-11-07T10:00", "g-ghost", "wang-bath", "v9"), "unknown_shop"),
    (A.order("2026-11-07T10:00", "g-ghost", "v9", "o9", [(1, 100, "x")]), "unknown_shop"),
    (A.payout("2026-11-07T10:00", "wang-bath", "g-ghost", 1), "unknown_shop"),
    (A.click("2026-11-07T10:00", "li-kids", "wang-bath", "v9", shop="wang-bath"), "shop_mismatch"),
    (A.view("2026-11-07T10:00", "li-kids", "wang-bath", "v9", shop="wang-bath"), "shop_mismatch"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(1, 100, "x")], shop="li-kids"), "shop_mismatch"),
    (A.refund("2026-11-07T10:00", "wang-bath", "o9", 100, shop="alliance"), "shop_mismatch"),
    (A.adjustment("2026-11-07T10:00", "wang-bath", "wang-bath", 100, "self"), "shop_mismatch"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(1, -100, "x")]), "negative_amount"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(0, 100, "x")]), "negative_amount"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [], total=-1), "negative_amount"),
    (A.refund("2026-11-07T10:00", "wang-bath", "o1", 0), "negative_amount"),
    (A.refund("2026-11-07T10:00", "wang-bath", "o1", -5), "negative_amount"),
    (A.payout("2026-11-07T10:00", "wang-bath", "li-kids", -1), "negative_amount"),
    (A.agreement(agreement_id="neg", rate_bp=-1), "negative_amount"),
    (A.agreement(agreement_id="neg", rate_bp=5, category_rates_bp={"toys": -5}), "negative_amount"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(2, 100, "x")], total=201), "total_mismatch"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(1, 100, "x")], currency="RMB"), "unknown_currency"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(1, 100, "x")], currency="cny"), "unknown_currency"),
    (A.refund("2026-11-07T10:00", "wang-bath", "o1", 100, currency="XYZ"), "unknown_currency"),
    (A.adjustment("2026-11-07T10:00", "wang-bath", "li-kids", 100, "x", currency="ABC"), "unknown_currency"),
    (A.agreement(agreement_id="cpa", model="cpa", amount_minor=100, currency="QQQ"), "unknown_currency"),
    (A.refund("2026-11-07T10:00", "wang-bath", "o1", 100, currency="USD"), "currency_mismatch"),
    (A.refund("2026-11-07T10:00", "wang-bath", "o1", 10001), "refund_exceeds_order"),
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o1", [(1, 100, "x")]), "duplicate_order"),
    (A.agreement(at="2026-11-05T00:00", effective_from="2026-11-04T23:59", agreement_id="back", rate_bp=1),
     "retroactive_agreement"),
    (A.payout("2026-11-07T10:00", "wang-bath", "li-kids", 1), "payout_exceeds_payable"),
    (A.agreement(agreement_id="cps-without-rate", rate_bp=None), "schema_invalid"),
    (A.member("alliance"), "unknown_shop"),
    (A.member("li-kids", status="retired"), "schema_invalid"),
    (A.settlement("2026-11-07T10:00", "2026-11-01T00:00") | {"shop_id": "li-kids"}, "shop_mismatch"),
    ({"event_id": "broken", "type": "click"}, "schema_invalid"),
    ({"event_id": "broken", "type": "teleport", "teleport": {}}, "schema_invalid"),
])
def test_business_quarantine_reasons(record, reason):
    existing_order = [A.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
                      A.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")])]
    assert _quarantine_of(record, before=existing_order) == reason



def _with_payload(record: dict, **changes) -> dict:
    kind = record["type"]
    return dict(record, **{kind: dict(record[kind], **changes)})


_ORDER = A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(2, 100, "x")])


@pytest.mark.parametrize("record, reason, detail", [
    (A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(1, 100, "x")], shop="li-kids"), "shop_mismatch",
     "an order must be emitted by 'wang-bath', not 'li-kids'"),
    (A.refund("2026-11-07T10:00", "wang-bath", "o9", 100, shop="alliance"), "shop_mismatch",
     "a refund must be emitted by 'wang-bath', not 'alliance'"),
    (A.click("2026-11-07T10:00", "li-kids", "wang-bath", "v9", shop="wang-bath"), "shop_mismatch",
     "a click must be emitted by 'li-kids', not 'wang-bath'"),
    (A.payout("2026-11-07T10:00", "wang-bath", "g-ghost", 1), "unknown_shop",
     "'g-ghost' has not been made a member earlier in the log"),
    (A.agreement(agreement_id="cps-without-rate", rate_bp=None), "schema_invalid", "a cps agreement needs rate_bp"),
    (A.agreement(agreement_id="no-window", window=-1), "negative_amount", "agreement attribution_window_days is -1"),
    (_with_payload(_ORDER, lines=[dict(_ORDER["order"]["lines"][0], quantity="2")]), "schema_invalid",
     "malformed order line"),
    (_with_payload(A.agreement(agreement_id="listed", rate_bp=5), category_rates_bp=[["toys", 5]]), "schema_invalid",
     "category_rates_bp is not a map"),
])
def test_a_quarantine_tells_the_integration_what_to_fix(record, reason, detail):
    """The detail beside the reason is what a shop's developer reads in `refledger quarantine`: it names
    the shop that must emit the event, the shop nobody knows, the part of the record that is wrong."""
    a, head = alliance()
    fold, _ = fold_all(head)
    outcome = fold.apply(record)
    assert (outcome.quarantine, outcome.detail) == (reason, detail)


def test_a_late_suspension_takes_back_an_order_between_two_of_the_referrers_clicks():
    """li-kids sent v1 to wang-bath twice; v1 bought in between. The operator's suspension of li-kids,
    dated before both clicks, reaches the log last: the order is repriced from li-kids' first click on,
    and li-kids earns nothing."""
    a, head = alliance()
    _, outcomes = fold_all(head + [
        a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1"),
        a.order("2026-11-01T12:00", "wang-bath", "v1", "o1", [(1, 10000, "care")]),
        a.click("2026-11-02T10:00", "li-kids", "wang-bath", "v1"),
        a.member("li-kids", at="2026-11-01T09:00", status="suspended"),
    ])
    assert earned(outcomes[:-1], "li-kids") == 800
    assert earned(outcomes, "li-kids") == 0


def test_the_consumers_digest_of_an_events_content_decides_a_duplicate():
    """The consumer hands the fold a digest of each event's canonical bytes: the same id with the same
    digest is a re-delivery, with another digest a conflict, whatever the fold reads of the event."""
    a, head = alliance()
    fold, _ = fold_all(head)
    view = a.view("2026-11-01T09:00", "li-kids", "wang-bath", "v1", event_id="w-1")
    assert fold.apply(view, b"canonical-bytes-digest-1").quarantine is None
    assert fold.apply(view, b"canonical-bytes-digest-1").skipped
    assert fold.apply(view, b"canonical-bytes-digest-2").quarantine == "conflicting_duplicate"
    order = A.order("2026-11-07T10:00", "wang-bath", "v9", "o9", [(2, 100, "x")])
    quantity_as_text = dict(order, order=dict(order["order"], lines=[dict(order["order"]["lines"][0],
                                                                         quantity="2")]))
    malformed = fold.apply(quantity_as_text)
    assert (malformed.quarantine, malformed.detail) == ("schema_invalid", "malformed order line")


def test_a_shop_that_never_joined_has_no_member_status():
    a, head = alliance()
    fold, _ = fold_all(head)
    assert fold.membership.status_at("g-ghost", 10**13) is None
    assert fold.membership.status_at("li-kids", 10**13) == "active"

def test_a_shop_that_joins_later_in_the_log_is_unknown_until_then():
    a = Alliance()
    click = a.click("2026-11-07T10:00", "li-kids", "wang-bath", "v1")
    _, outcomes = fold_all([a.member("wang-bath"), click, a.member("li-kids", at="2026-10-01T00:00"),
                            a.click("2026-11-07T11:00", "li-kids", "wang-bath", "v1")])
    assert [o.quarantine for o in outcomes] == [None, "unknown_shop", None, None]


def test_agreements_may_name_shops_that_join_later():
    a = Alliance()
    _, outcomes = fold_all([a.agreement(merchant="wang-bath", referrer="li-kids", rate_bp=100),
                            a.member("wang-bath"), a.member("li-kids")])
    assert [o.quarantine for o in outcomes] == [None, None, None]


def test_a_redelivered_event_is_skipped_and_a_different_one_under_its_id_conflicts():
    a, head = alliance()
    click = a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1", event_id="c-1")
    view = a.view("2026-11-01T09:00", "li-kids", "wang-bath", "v1", event_id="w-1")
    other = dict(click, click=dict(click["click"], placement_id="other-sign"))
    fold, outcomes = fold_all(head + [click, view, click, view])
    assert [o.skipped for o in outcomes[-2:]] == [True, True]
    assert fold.apply(other).quarantine == "conflicting_duplicate"
    assert fold.apply(dict(view, type="click", click=view["view"])).quarantine == "conflicting_duplicate"


def test_a_redelivered_order_posts_nothing_twice():
    a, head = alliance()
    click = a.click("2026-11-01T10:00", "li-kids", "wang-bath", "v1")
    order = a.order("2026-11-01T10:05", "wang-bath", "v1", "o1", [(1, 10000, "care")])
    _, outcomes = fold_all(head + [click, order, dict(order)])
    assert outcomes[-1].skipped and outcomes[-1].entries == ()
    assert earned(outcomes, "li-kids") == 800


def test_an_order_without_a_visitor_is_never_attributed():
    a, head = alliance()
    click = a.click("2026-11-01T10:00", "li-kids", "wang-bath", None)
    order = a.order("2026-11-01T10:05", "wang-bath", None, "o1", [(1, 10000, "care")])
    _, outcomes = fold_all(head + [click, order])
    assert all_entries(outcomes) == []


def test_two_orders_whose_ids_joined_by_a_colon_read_alike_stay_two_orders():
    # shop "a:b" sells order "c" and shop "a" sells order "b:c", both referred by r; r's suspension from
    # 1 November, arriving late, takes back both commissions (SPEC §8), not one of them
    a = Alliance("colons")
    log = [a.member(s, at="2026-10-01T00:00") for s in ("a", "a:b", "r")]
    log += [a.agreement(at="2026-10-01T00:00", rate_bp=1000, hold=0),
            a.click("2026-11-02T00:00", "r", "a:b", "v1"),
            a.order("2026-11-02T01:00", "a:b", "v1", "c", [(1, 1000, "toys")]),
            a.click("2026-11-02T00:00", "r", "a", "v2"),
            a.order("2026-11-02T01:00", "a", "v2", "b:c", [(1, 3000, "toys")])]
    fold, outcomes = fold_all(log)
    assert earned(outcomes, "r") == 100 + 300
    assert len({e.subject for e in all_entries(outcomes)}) == 2
    fold, outcomes = fold_all(log + [a.member("r", at="2026-11-01T00:00", status="suspended")])
    assert earned(outcomes, "r") == 0
    assert {k: v for k, v in balance_of(outcomes, "r").items() if v} == {}


@pytest.mark.parametrize("field", ["window", "hold"])
def test_an_agreement_of_more_than_90_days_is_refused_by_the_fold_itself(field):
    """SPEC §9a: an agreement's attribution window and hold are 0 to 90 days, a larger value is
    schema_invalid. The fold forgets clicks older than 90 days before a close, so it must refuse a
    longer window itself, even when given a record no codec checked; 90 days is folded."""
    a = Alliance("gen")
    fold, _ = fold_all([a.member(shop) for shop in ("s-a", "s-b")])
    refused = fold.apply(a.agreement(rate_bp=500, **{field: 91}))
    assert refused.quarantine == "schema_invalid" and "91" in refused.detail and "90" in refused.detail
    assert fold.apply(a.agreement(rate_bp=500, agreement_id="longest", **{field: 90})).quarantine is None


def test_an_agreement_of_more_than_90_days_is_schema_invalid_before_any_other_check():
    """SPEC §4: schema_invalid comes before shop_mismatch and the duplicate checks, as the codec
    decides it. A 91-day agreement emitted by a shop is schema_invalid, and its corrected resend
    under the same event id is folded: the refused one was never taken for folded."""
    a = Alliance("gen")
    fold, _ = fold_all([a.member(shop) for shop in ("s-a", "s-b")])
    by_a_shop = a.agreement(rate_bp=500, window=91)
    by_a_shop["shop_id"] = "s-a"
    assert fold.apply(by_a_shop).quarantine == "schema_invalid"
    too_long = a.agreement(rate_bp=500, hold=91, event_id="terms-1")
    assert fold.apply(too_long).quarantine == "schema_invalid"
    assert fold.apply(a.agreement(rate_bp=500, hold=30, event_id="terms-1")).quarantine is None


def test_the_folds_bounds_are_the_codecs():
    """The fold imports nothing from the layers around it, so it keeps its own copy of SPEC's
    bounds on an event id's length and an agreement's days: each must be the codec's."""
    assert (events.EVENT_ID_MAX_CHARS, events.MAX_DAYS) == (shape.EVENT_ID_MAX_CHARS, shape.MAX_DAYS) == (64, 90)
