"""What a member or an auditor reads off the ledger, word for word: the role and subject of each
entry (ledger/README.md "Entries"), why a payout was refused, what `explain` says about each
click, and that a re-delivered alliance event with other content is a conflict, not a repeat."""

from __future__ import annotations

import pytest

from tests.boundary_support import DAY, HOUR, Story, t
from tests.ledger_support import all_entries, fold_all

CLICKED = t("2026-11-01T10:00")
NOV_1 = t("2026-11-01T00:00")


def baby_care():
    s = Story()
    return s, s.head + [s.agreement_at(NOV_1, published=NOV_1 - DAY, agreement_id="default", rate_bp=800,
                                       event_id="a-default")]


def li_kids_refers_v1(s):
    """li-kids refers v1 to wang-bath, who buys 10,000 fen of bath gel: li-kids earns 800."""
    return [s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
            s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", [(1, 10_000, "care")], event_id="o-1")]


def test_settle_payout_and_adjust_entries_name_their_role_and_subject():
    s, log = baby_care()
    log += li_kids_refers_v1(s)
    log += [s.settlement_at(t("2026-12-01T00:00"), t("2026-11-30T15:59:59.999"), settlement_id="2026-11",
                            event_id="s-11"),
            s.payout("2026-12-02T00:00", "wang-bath", "li-kids", 500, payout_id="p-1", event_id="pay-1"),
            s.adjustment("2026-12-03T00:00", "wang-bath", "li-kids", 1, "rounding", adjustment_id="adj-1",
                         event_id="adj-1")]
    _, outcomes = fold_all(log)
    got = {(e.event_id, e.role, e.subject, e.account, e.amount) for e in all_entries(outcomes)}
    assert got == {
        ("o-1", "commission", "order:wang-bath:o1", "earned_pending", 800),
        ("o-1", "commission", "order:wang-bath:o1", "owed_pending", -800),
        ("s-11", "settle", "order:wang-bath:o1", "earned_pending", -800),
        ("s-11", "settle", "order:wang-bath:o1", "earned_payable", 800),
        ("s-11", "settle", "order:wang-bath:o1", "owed_pending", 800),
        ("s-11", "settle", "order:wang-bath:o1", "owed_payable", -800),
        ("pay-1", "payout", "payout:wang-bath:p-1", "earned_payable", -500),
        ("pay-1", "payout", "payout:wang-bath:p-1", "received", 500),
        ("pay-1", "payout", "payout:wang-bath:p-1", "owed_payable", 500),
        ("pay-1", "payout", "payout:wang-bath:p-1", "paid_out", -500),
        ("adj-1", "adjust", "adjustment:wang-bath:adj-1", "earned_payable", 1),
        ("adj-1", "adjust", "adjustment:wang-bath:adj-1", "owed_payable", -1),
    }
    assert {e.reason for e in all_entries(outcomes) if e.role == "adjust"} == {"rounding"}


@pytest.mark.parametrize("amount, posted", [(0, 0), (1, 2), (-1, 2)])
def test_an_adjustment_of_one_fen_is_posted_and_of_nothing_posts_nothing(amount, posted):
    s, log = baby_care()
    log.append(s.adjustment("2026-11-05T00:00", "wang-bath", "li-kids", amount, "goodwill", event_id="adj-1"))
    _, outcomes = fold_all(log)
    assert outcomes[-1].quarantine is None and len(outcomes[-1].entries) == posted


@pytest.mark.parametrize("amount, posted", [(0, 0), (1, 4), (800, 4)])
def test_a_payout_of_one_fen_is_posted_and_of_nothing_posts_nothing(amount, posted):
    """After November's settlement wang-bath owes li-kids 800 payable: a payout of 1 fen moves
    1 fen (four lines), a payout of nothing moves nothing."""
    s, log = baby_care()
    log += li_kids_refers_v1(s)
    log += [s.settlement_at(t("2026-12-01T00:00"), t("2026-11-30T15:59:59.999"), event_id="s-11"),
            s.payout("2026-12-02T00:00", "wang-bath", "li-kids", amount, event_id="pay-1")]
    _, outcomes = fold_all(log)
    assert outcomes[-1].quarantine is None and len(outcomes[-1].entries) == posted
    assert sum(e.amount for e in outcomes[-1].entries if e.account == "received") == amount


def test_a_payout_above_what_is_payable_says_what_is_owed():
    """wang-bath owes li-kids 800 payable after November's settlement; paying 801 is refused
    with both figures in the explanation."""
    s, log = baby_care()
    log += li_kids_refers_v1(s)
    log += [s.settlement_at(t("2026-12-01T00:00"), t("2026-11-30T15:59:59.999"), event_id="s-11"),
            s.payout("2026-12-02T00:00", "wang-bath", "li-kids", 801, event_id="pay-1")]
    _, outcomes = fold_all(log)
    assert outcomes[-1].quarantine == "payout_exceeds_payable"
    assert outcomes[-1].detail == "wang-bath owes li-kids 800 CNY payable, payout is 801 CNY"


def test_explain_lists_each_click_with_why_it_won_or_lost():
    s, log = baby_care()
    log += [s.click_at(CLICKED - HOUR, "zhang-toys", "wang-bath", "v1", event_id="c-0")] + li_kids_refers_v1(s)
    _, outcomes = fold_all(log)
    [decision] = outcomes[-1].decisions
    assert decision.to_dict()["clicks"] == [
        {"click_event_id": "c-0", "referrer_shop_id": "zhang-toys", "occurred_at": CLICKED - HOUR, "eligible": True,
         "reason": "eligible, but a later click wins"},
        {"click_event_id": "c-1", "referrer_shop_id": "li-kids", "occurred_at": CLICKED, "eligible": True,
         "reason": "last eligible click: wins"},
    ]


def _again(record: dict, **changes) -> dict:
    kind = record["type"]
    payload = {k: v for k, v in changes.items() if k in record[kind]}
    envelope = {k: v for k, v in changes.items() if k not in payload}
    return {**record, **envelope, kind: {**record[kind], **payload}}


@pytest.mark.parametrize("kind, change", [
    ("settlement", {"occurred_at": t("2026-12-01T00:00:00.001")}),
    ("settlement", {"settlement_id": "2026-11-bis"}),
    ("payout", {"payout_id": "p-2"}),
    ("payout", {"occurred_at": t("2026-12-02T00:00:00.001")}),
    ("adjustment", {"adjustment_id": "adj-2"}),
    ("adjustment", {"reason": "other"}),
    ("adjustment", {"occurred_at": t("2026-12-03T00:00:00.001")}),
])
def test_an_alliance_event_delivered_again_with_other_content_is_a_conflict(kind, change):
    s, log = baby_care()
    log += li_kids_refers_v1(s)
    events = {"settlement": s.settlement_at(t("2026-12-01T00:00"), t("2026-11-30T15:59:59.999"),
                                            settlement_id="2026-11", event_id="x-1"),
              "payout": s.payout("2026-12-02T00:00", "wang-bath", "li-kids", 0, payout_id="p-1", event_id="x-1"),
              "adjustment": s.adjustment("2026-12-03T00:00", "wang-bath", "li-kids", 5, "goodwill",
                                         adjustment_id="adj-1", event_id="x-1")}
    first = events[kind]
    _, outcomes = fold_all(log + [first, dict(first), _again(first, **change)])
    assert outcomes[-3].quarantine is None
    assert outcomes[-2].skipped
    assert outcomes[-1].quarantine == "conflicting_duplicate"


@pytest.mark.parametrize("ordered_after, settles, earns", [
    (15 * DAY, True, 800), (15 * DAY + 1, False, 0)], ids=["exactly-15-days", "15-days-and-1ms"])
def test_an_agreement_record_without_window_or_hold_gets_the_15_day_defaults(ordered_after, settles, earns):
    """SPEC §2: attribution_window_days and hold_days default to 15. Given an agreement record
    without them, the fold attributes an order exactly 15 days after the click (not 1 ms later),
    and a settlement 15 days after the order makes it payable."""
    s = Story()
    agreement = s.agreement_at(NOV_1, published=NOV_1 - DAY, agreement_id="default", rate_bp=800,
                               event_id="a-default")
    for name in ("attribution_window_days", "hold_days"):
        del agreement["agreement"][name]
    ordered = CLICKED + ordered_after
    log = s.head + [agreement, s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
                    s.order_at(ordered, "wang-bath", "v1", "o1", [(1, 10_000, "care")], event_id="o-1"),
                    s.settlement_at(ordered + 15 * DAY, ordered + 15 * DAY, event_id="s-1")]
    _, outcomes = fold_all(log)
    payable = sum(e.amount for e in all_entries(outcomes) if e.account == "earned_payable")
    pending = sum(e.amount for e in all_entries(outcomes) if e.account == "earned_pending")
    assert (payable, pending) == ((earns, 0) if settles else (0, earns))


def test_balances_read_back_from_the_store_are_the_balances_of_the_entries_money_first():
    """A member's balances are the same whether summed from the fold's entries or from the rows an
    auditor reads back out of the ledger; money rows come first (by shop, then currency), then the
    swap-credit rows: zhao-photo's CNY row comes before li-kids' swap credits."""
    from refledger.ledger.balances import balances

    s, log = baby_care()
    log += li_kids_refers_v1(s)
    log += [s.agreement_at(NOV_1, published=NOV_1 - DAY, agreement_id="swap-li", merchant="zhang-toys",
                           referrer="li-kids", model="swap", event_id="a-swap"),
            s.click_at(CLICKED, "li-kids", "zhang-toys", "v2", event_id="c-swap"),
            s.click_at(CLICKED, "zhao-photo", "wang-bath", "v3", event_id="c-zhao"),
            s.order_at(CLICKED + HOUR, "wang-bath", "v3", "o3", [(1, 5_000, "care")], event_id="o-3")]
    _, outcomes = fold_all(log)
    entries = all_entries(outcomes)
    rows = [e._asdict() for e in entries]
    got = balances(entries)
    assert balances(rows) == got
    assert [(b["shop_id"], b["currency"]) for b in got] == [
        ("li-kids", "CNY"), ("wang-bath", "CNY"), ("zhao-photo", "CNY"), ("li-kids", "CLICK"), ("zhang-toys", "CLICK")]
    by = {(b["shop_id"], b["currency"]): b for b in got}
    assert by[("li-kids", "CNY")]["earned_pending"] == 800
    assert by[("zhao-photo", "CNY")]["earned_pending"] == 400
    assert by[("wang-bath", "CNY")]["owed_pending"] == 1_200
    assert by[("li-kids", "CLICK")]["swap_given"] == 1 and by[("zhang-toys", "CLICK")]["swap_received"] == 1


def test_the_decision_explain_reads_names_every_part_of_the_attribution():
    """What `explain --format json` shows of o1 is the decision stored with it, each field under
    the name it has there."""
    s, log = baby_care()
    log += li_kids_refers_v1(s)
    _, outcomes = fold_all(log)
    [decision] = outcomes[-1].decisions
    assert decision.to_dict() == {
        "event_id": "o-1", "order_event_id": "o-1", "order_id": "o1", "merchant_shop_id": "wang-bath",
        "visitor_id": "v1", "order_occurred_at": CLICKED + HOUR,
        "clicks": [{"click_event_id": "c-1", "referrer_shop_id": "li-kids", "occurred_at": CLICKED,
                    "eligible": True, "reason": "last eligible click: wins"}],
        "winning_click_event_id": "c-1", "referrer_shop_id": "li-kids", "agreement_id": "default",
        "agreement_version": 1, "model": "cps", "rate_bp": 800, "category_rates_bp": {}, "commission": 800,
        "currency": "CNY", "hold_days": 15}


def test_a_refund_names_itself_on_its_entries_and_a_refund_too_many_says_by_how_much():
    """wang-bath refunds 2,500 of o1's 10,000: li-kids gives back 200, and both lines name the
    refund (rf-1). A second refund of 8,000 would make 10,500: refused, with the sum."""
    s, log = baby_care()
    log += li_kids_refers_v1(s)
    log += [s.refund_at(CLICKED + 2 * HOUR, "wang-bath", "o1", 2_500, event_id="r-1", refund_id="rf-1"),
            s.refund_at(CLICKED + 3 * HOUR, "wang-bath", "o1", 8_000, event_id="r-2", refund_id="rf-2")]
    _, outcomes = fold_all(log)
    first, second = outcomes[-2:]
    assert {(e.shop_id, e.account, e.amount, e.refund_id) for e in first.entries} == {
        ("li-kids", "earned_pending", -200, "rf-1"), ("wang-bath", "owed_pending", 200, "rf-1")}
    assert second.quarantine == "refund_exceeds_order"
    assert second.detail == "refunds would total 10500 CNY of an order of 10000 CNY"


def test_a_refund_sent_again_for_another_visitor_is_a_conflict_not_a_repeat():
    s, log = baby_care()
    log += li_kids_refers_v1(s)
    refund = s.refund_at(CLICKED + 2 * HOUR, "wang-bath", "o1", 2_500, event_id="r-1", refund_id="rf-1")
    again = {**refund, "visitor_id": "v-someone-else"}
    _, outcomes = fold_all(log + [refund, again])
    assert outcomes[-1].quarantine == "conflicting_duplicate"


def test_an_agreement_with_category_rates_only_pays_nothing_on_other_categories():
    """wang-bath pays 5 % on toys and 0 % on the rest: v1's 10,000 of bath gel earns li-kids
    nothing, a 10,000 toy 500."""
    from refledger.ledger.events import parse_event
    from refledger.ledger.pricing import price_order

    s = Story()
    log = s.head + [s.agreement_at(NOV_1, published=NOV_1 - DAY, agreement_id="toys-only", rate_bp=0,
                                   category_rates_bp={"toys": 500}, event_id="a-toys"),
                    s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
                    s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", [(1, 10_000, "care"), (1, 10_000, "toys")],
                               event_id="o-1")]
    _, outcomes = fold_all(log)
    earned = [e.amount for e in outcomes[-1].entries if e.shop_id == "li-kids" and e.account == "earned_pending"]
    assert earned == [500]
    pricing = price_order(parse_event(log[-1]), parse_event(log[-3]))
    assert pricing.line_commissions == (0, 500)
    assert pricing.category_rates_bp == (("toys", 500),)


def test_a_cpa_agreement_of_nothing_pays_nothing():
    """wang-bath keeps li-kids on a cpa agreement of 0 while they renegotiate: v1's order is
    attributed to li-kids and earns it 0, not a fen."""
    s = Story()
    log = s.head + [s.agreement_at(NOV_1, published=NOV_1 - DAY, agreement_id="cpa-paused", model="cpa",
                                   rate_bp=None, amount_minor=0, currency="CNY", event_id="a-paused"),
                    s.click_at(CLICKED, "li-kids", "wang-bath", "v1", event_id="c-1"),
                    s.order_at(CLICKED + HOUR, "wang-bath", "v1", "o1", [(1, 10_000, "care")], event_id="o-1")]
    _, outcomes = fold_all(log)
    assert [o.quarantine for o in outcomes] == [None] * len(log)
    [decision] = outcomes[-1].decisions
    said = decision.to_dict()
    assert (said["winning_click_event_id"], said["model"], said["commission"]) == ("c-1", "cpa", 0)
    assert [e for e in outcomes[-1].entries if e.shop_id == "li-kids"] == []


def test_an_order_under_a_click_agreement_is_priced_at_nothing_in_its_own_currency():
    """cpc and swap agreements pay per click; an order under one earns nothing by itself."""
    from refledger.ledger.events import parse_event
    from refledger.ledger.pricing import Pricing, price_order

    s = Story()
    order = parse_event(s.order_at(CLICKED, "wang-bath", "v1", "o1", [(1, 10_000, "care")], currency="USD"))
    for model, extra in (("cpc", {"amount_minor": 30, "currency": "CNY"}), ("swap", {})):
        agreement = parse_event(s.agreement_at(NOV_1, agreement_id=model, model=model, rate_bp=None, **extra))
        assert price_order(order, agreement) == Pricing(0, "USD", model, None, (), ())


def test_an_order_of_nothing_reverses_nothing_whatever_is_refunded():
    from refledger.ledger.refunds import cumulative_reversal

    assert [cumulative_reversal(800, refunded, 0) for refunded in (0, 1, 500)] == [0, 0, 0]
    assert [cumulative_reversal(800, refunded, 10_000) for refunded in (0, 1, 5_000, 10_000)] == [0, 0, 400, 800]
