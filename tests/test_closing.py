"""Closing a period (SPEC §9a) and the alliance's fund (SPEC §2), told as harbor-fair's operator lives them.

h-hats, i-ink and j-jade share a cps 10 % agreement (window 7 days, hold 5 days).
The books are closed through the middle of October; what happened then is final.
"""

from __future__ import annotations

from tests.ledger_support import Alliance, balance_of, fold_all, ms

SHOPS = ("h-hats", "i-ink", "j-jade")
MID_OCTOBER = "2026-10-15T23:59:59.999Z"


def harbor(*later, closed_through=MID_OCTOBER):
    """October's story up to the close: oA (20,000 at i-ink, referred by h-hats), settled, then closed."""
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-09-30T00:00") for s in SHOPS]
    log.append(a.agreement(at="2026-09-30T00:00", rate_bp=1000, window=7, hold=5))
    log += [a.click("2026-10-03T10:00", "h-hats", "i-ink", "v1", event_id="c-h"),
            a.order("2026-10-03T10:30", "i-ink", "v1", "oA", [(2, 10000, "stationery")], event_id="o-A"),
            a.settlement("2026-11-01T00:00", "2026-10-31T23:59:59.999Z", "2026-10"),
            a.close("2026-11-01T00:00:01", closed_through, "through-10-15", event_id="close-1")]
    return a, log


def fold_story(build):
    a, log = harbor()
    return fold_all(log + build(a))


def test_a_late_click_from_before_the_close_cannot_take_a_closed_order():
    fold, outcomes = fold_story(lambda a: [a.click("2026-10-03T10:20", "j-jade", "i-ink", "v1", event_id="c-late")])
    assert outcomes[-1].quarantine == "period_closed" and outcomes[-1].entries == ()
    assert balance_of(outcomes, "h-hats")["earned_payable"] == 2000
    assert balance_of(outcomes, "j-jade").get("earned_payable", 0) == 0


def test_a_late_order_from_after_the_close_is_folded_as_usual():
    fold, outcomes = fold_story(lambda a: [
        a.click("2026-10-20T11:00", "h-hats", "j-jade", "v3"),
        a.order("2026-10-20T12:00", "j-jade", "v3", "oC", [(1, 5000, "jewellery")])])
    assert outcomes[-1].quarantine is None
    assert balance_of(outcomes, "h-hats")["earned_pending"] == 500


def test_a_late_order_from_before_the_close_is_period_closed():
    fold, outcomes = fold_story(lambda a: [
        a.click("2026-10-12T11:00", "h-hats", "j-jade", "v4"),
        a.order("2026-10-12T12:00", "j-jade", "v4", "oD", [(1, 5000, "jewellery")])])
    assert [o.quarantine for o in outcomes[-2:]] == ["period_closed", "period_closed"]
    assert balance_of(outcomes, "h-hats").get("earned_pending", 0) == 0


def test_a_refund_of_a_closed_order_is_period_closed_and_an_adjustment_corrects_it():
    fold, outcomes = fold_story(lambda a: [
        a.refund("2026-11-02T08:00", "i-ink", "oA", 5000),
        a.adjustment("2026-11-02T09:00", "i-ink", "h-hats", -500, "refund of oA after the October close")])
    refund, adjustment = outcomes[-2:]
    assert refund.quarantine == "period_closed" and refund.entries == ()
    assert refund.detail == "order oA at i-ink is in a closed period: correct it with an adjustment"
    assert "closed period" in refund.detail
    assert adjustment.quarantine is None
    assert balance_of(outcomes, "h-hats")["earned_payable"] == 1500
    assert balance_of(outcomes, "i-ink")["owed_payable"] == 1500


def test_a_redelivery_of_a_closed_event_is_period_closed_not_skipped():
    a, log = harbor()
    order = log[5]
    fold, outcomes = fold_all(log + [order])
    assert outcomes[-1].quarantine == "period_closed" and not outcomes[-1].skipped


def test_an_event_dated_after_the_close_that_reuses_a_forgotten_id_is_a_new_event():
    fold, outcomes = fold_story(lambda a: [
        a.click("2026-10-20T11:00", "h-hats", "i-ink", "v9", event_id="c-h"),
        a.order("2026-10-20T11:30", "i-ink", "v9", "oR", [(1, 3000, "stationery")])])
    assert [o.quarantine for o in outcomes[-2:]] == [None, None]
    assert balance_of(outcomes, "h-hats")["earned_pending"] == 300


def test_a_close_of_the_future_is_quarantined():
    fold, outcomes = fold_story(lambda a: [a.close("2026-11-06T00:00", "2026-11-20T00:00", "too-far")])
    assert outcomes[-1].quarantine == "future_close"
    assert outcomes[-1].detail == ("closes through 2026-11-20T00:00:00.000Z, later than the close itself "
                                   "(2026-11-06T00:00:00.000Z)")
    # the books stay closed through mid-October only: a late October 20 order still counts
    later = fold.apply(Alliance("harbor-fair").order("2026-10-20T12:00", "j-jade", "v3", "oC",
                                                     [(1, 5000, "jewellery")], event_id="o-C"))
    assert later.quarantine is None


def test_a_close_exactly_at_its_own_time_is_not_in_the_future():
    fold, outcomes = fold_story(lambda a: [a.close("2026-11-06T00:00", "2026-11-06T00:00", "now")])
    assert outcomes[-1].quarantine is None
    assert fold.closed_through == ms("2026-11-06T00:00")


def test_closes_only_move_forward():
    a, log = harbor()
    fold, outcomes = fold_all(log + [a.close("2026-11-02T00:00", "2026-10-01T00:00", "backwards")])
    assert outcomes[-1].quarantine is None and outcomes[-1].entries == ()
    # still closed through mid-October: an October 10 click is refused
    late = fold.apply(a.click("2026-10-10T10:00", "j-jade", "h-hats", "v7"))
    assert late.quarantine == "period_closed"


def test_an_event_exactly_at_the_close_is_closed_and_one_millisecond_later_is_open():
    fold, outcomes = fold_story(lambda a: [
        a.click(MID_OCTOBER, "h-hats", "j-jade", "v5", event_id="c-at"),
        a.click("2026-10-16T00:00:00.000Z", "h-hats", "j-jade", "v6", event_id="c-after")])
    assert [o.quarantine for o in outcomes[-2:]] == ["period_closed", None]


def test_a_parked_refund_of_the_closed_period_is_given_up_at_the_close():
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-09-30T00:00") for s in SHOPS]
    log += [a.agreement(at="2026-09-30T00:00", rate_bp=1000, window=7, hold=5),
            a.refund("2026-10-10T08:00", "i-ink", "oX", 100, event_id="r-old"),
            a.refund("2026-10-20T08:00", "i-ink", "oY", 100, event_id="r-new")]
    fold, outcomes = fold_all(log + [a.close("2026-11-01T00:00", MID_OCTOBER, "c")])
    assert outcomes[-3].parked and outcomes[-2].parked
    assert outcomes[-1].late_quarantines == (("r-old", "period_closed"),)
    # the refund dated after the close still waits for its order
    order = fold.apply(a.order("2026-10-19T08:00", "i-ink", "v1", "oY", [(1, 1000, "stationery")]))
    assert order.quarantine is None and order.late_quarantines == ()


def test_a_closed_order_still_pending_becomes_payable_at_the_next_settlement():
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-09-30T00:00") for s in SHOPS]
    log += [a.agreement(at="2026-09-30T00:00", rate_bp=1000, window=7, hold=5),
            a.click("2026-10-03T10:00", "h-hats", "i-ink", "v1"),
            a.order("2026-10-03T10:30", "i-ink", "v1", "oA", [(2, 10000, "stationery")]),
            a.close("2026-10-20T00:00", MID_OCTOBER, "c")]
    fold, outcomes = fold_all(log + [a.settlement("2026-11-01T00:00", "2026-10-31T23:59:59.999Z", "2026-10")])
    assert [e.role for e in outcomes[-1].entries] == ["settle"] * 4
    assert balance_of(outcomes, "h-hats")["earned_payable"] == 2000


def test_nothing_after_the_close_changes_the_amount_of_a_closed_order():
    """SPEC §12.7: only settlements move a closed order's money (pending to payable)."""
    fold, outcomes = fold_story(lambda a: [
        a.member("j-jade", at="2026-11-03T00:00", status="suspended"),
        a.agreement(at="2026-11-03T00:00", agreement_id="default", version=2, effective_from="2026-11-03T00:00",
                    rate_bp=5000, window=7, hold=5),
        a.click("2026-10-25T10:00", "j-jade", "i-ink", "v1"),
        a.settlement("2026-12-01T00:00", "2026-11-30T23:59:59.999Z", "2026-11")])
    after_close = [e for o in outcomes[8:] for e in o.entries if e.subject == "order:i-ink:oA"]
    assert after_close == []


def test_a_fine_is_paid_to_the_alliance_fund_and_the_fund_pays_a_reward():
    fold, outcomes = fold_story(lambda a: [
        a.adjustment("2026-11-02T09:05", "j-jade", "alliance", 1000, "cross-shop banner removed without notice",
                     adjustment_id="fine-j-jade"),
        a.payout("2026-11-03T00:00", "j-jade", "alliance", 600, payout_id="fine-paid"),
        a.adjustment("2026-11-04T00:00", "alliance", "h-hats", 300, "most referrals in October",
                     adjustment_id="reward-h-hats"),
        a.payout("2026-11-05T00:00", "alliance", "h-hats", 300, payout_id="reward-paid")])
    assert [o.quarantine for o in outcomes[-4:]] == [None] * 4
    fund = balance_of(outcomes, "alliance")
    assert fund == {"earned_pending": 0, "earned_payable": 400, "owed_pending": 0, "owed_payable": 0,
                    "received": 600, "paid_out": 300}
    assert balance_of(outcomes, "j-jade")["owed_payable"] == 400 and balance_of(outcomes, "j-jade")["paid_out"] == 600
    assert balance_of(outcomes, "h-hats")["received"] == 300


def test_the_fund_cannot_pay_out_more_than_it_owes_a_member():
    fold, outcomes = fold_story(lambda a: [
        a.adjustment("2026-11-04T00:00", "alliance", "h-hats", 300, "reward", adjustment_id="reward"),
        a.payout("2026-11-05T00:00", "alliance", "h-hats", 301, payout_id="too-much")])
    assert outcomes[-1].quarantine == "payout_exceeds_payable"


def test_a_fine_from_a_shop_that_never_joined_is_still_unknown_shop():
    fold, outcomes = fold_story(lambda a: [
        a.adjustment("2026-11-02T09:05", "g-ghost", "alliance", 1000, "fine", adjustment_id="fine-ghost")])
    assert outcomes[-1].quarantine == "unknown_shop"


def test_a_member_who_left_earns_like_an_expelled_one():
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-09-30T00:00") for s in SHOPS]
    log += [a.agreement(at="2026-09-30T00:00", rate_bp=1000, window=7, hold=5),
            a.member("i-ink", at="2026-11-05T00:00", status="left"),
            a.click("2026-11-04T23:59:59.999", "i-ink", "j-jade", "v1"),
            a.order("2026-11-05T10:00", "j-jade", "v1", "o1", [(1, 1000, "jewellery")]),
            a.click("2026-11-05T00:00", "i-ink", "h-hats", "v2"),
            a.order("2026-11-05T10:00", "h-hats", "v2", "o2", [(1, 1000, "hats")])]
    fold, outcomes = fold_all(log)
    assert [o.quarantine for o in outcomes] == [None] * len(outcomes)
    assert balance_of(outcomes, "i-ink")["earned_pending"] == 100  # the click before it left still counts


def test_the_fold_forgets_what_a_close_makes_final():
    a, log = harbor()
    fold, _ = fold_all(log[:-1])
    before = fold.state_size()
    fold.apply(log[-1])
    after = fold.state_size()
    assert before["open_orders"] == 1 and after["open_orders"] == 0 and after["closed_orders"] == 1
    assert after["event_ids"] < before["event_ids"]


# -- what a close lets the fold forget, and what it must keep (SPEC §9a) --------------------------

NINETY_DAYS_BEFORE = "2026-07-17T23:59:59.999Z"  # MID_OCTOBER − 90 days: clicks from here on are kept


def summer():
    """harbor-fair from June: members, i-ink pays h-hats and j-jade 30 fen a click (cpc), j-jade
    pays 10 % of what is bought (cps, window 7 days, hold 5)."""
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-06-01T00:00") for s in SHOPS]
    log += [a.agreement(at="2026-06-01T00:00", agreement_id="cps", merchant="j-jade", rate_bp=1000, window=7,
                        hold=5, effective_from="2026-06-01T00:00"),
            a.agreement(at="2026-06-01T00:00", agreement_id="cpc", merchant="i-ink", model="cpc", amount_minor=30,
                        currency="CNY", window=7, hold=5, effective_from="2026-06-01T00:00")]
    return a, log


def test_a_close_forgets_clicks_older_than_ninety_days_before_it_but_not_what_they_earned():
    a, log = summer()
    log += [a.click("2026-10-10T10:00", "h-hats", "j-jade", "v3", event_id="c-new"),  # kept (indexed first)
            a.click("2026-07-17T23:59:59.998Z", "h-hats", "i-ink", "v1", event_id="c-old"),  # 1 ms too old
            a.click(NINETY_DAYS_BEFORE, "h-hats", "i-ink", "v1", event_id="c-edge"),  # kept; within 24 h
            a.click("2026-07-01T10:00", "j-jade", "i-ink", "v2", event_id="c-older"),
            a.close("2026-11-01T00:00", MID_OCTOBER, "through-10-15")]
    fold, outcomes = fold_all(log)
    assert [o.quarantine for o in outcomes] == [None] * len(log)
    assert sorted(c.event_id for c, _valid in fold.clicks.rows()) == ["c-edge", "c-new"]
    assert fold.state_size()["clicks"] == 2
    assert fold.clicks.visitors_of_referrer_since("h-hats", 0) == {("j-jade", "v3"): ms("2026-10-10T10:00"),
                                                                    ("i-ink", "v1"): ms(NINETY_DAYS_BEFORE)}
    assert fold.clicks.visitors_of_referrer_since("j-jade", 0) == {}
    assert [c.event_id for c in fold.clicks.valid_clicks("*", "*", 0)] == ["c-new"]  # c-edge: 24 h
    assert fold.clicks.subjects() == []  # what c-old and c-older earned stays with the postings
    settled = fold.apply(a.settlement("2026-11-02T00:00", MID_OCTOBER, "2026-10"))
    assert settled.quarantine is None
    assert balance_of(outcomes + [settled], "h-hats")["earned_payable"] == 30
    assert balance_of(outcomes + [settled], "j-jade")["earned_payable"] == 30


def test_the_24_hours_of_a_closed_click_stay_as_they_were_decided_after_the_click_before_is_forgotten():
    """h-hats' click of v1 at i-ink one hour after the ninety days' edge did not count (a counted
    click of the same chain lay an hour before it, now forgotten). Two November clicks arrive out
    of order after the close: the chain runs again from the closed click's verdict, not from
    scratch, so the closed click still earns nothing."""
    a, log = summer()
    log += [a.click("2026-07-17T23:00", "h-hats", "i-ink", "v1", event_id="c-0"),
            a.click("2026-07-18T01:00", "h-hats", "i-ink", "v1", event_id="c-1"),
            a.close("2026-11-01T00:00", MID_OCTOBER, "through-10-15"),
            a.click("2026-10-16T10:00", "h-hats", "i-ink", "v1", event_id="c-3")]
    fold, outcomes = fold_all(log)
    late = fold.apply(a.click("2026-10-16T02:00", "h-hats", "i-ink", "v1", event_id="c-2"))
    assert late.quarantine is None
    posted = sorted((e.click_event_id, e.amount) for e in late.entries if e.account == "earned_pending")
    assert posted == [("c-2", 30), ("c-3", -30)]
    assert {e.subject for e in late.entries} == {"click:c-2:" + str(ms("2026-10-16T02:00")),
                                                 "click:c-3:" + str(ms("2026-10-16T10:00"))}


def test_an_event_id_used_exactly_at_the_close_is_forgotten_with_the_closed_period():
    a, log = harbor(closed_through=MID_OCTOBER)
    log.insert(-1, a.click(MID_OCTOBER, "h-hats", "j-jade", "v7", event_id="c-at-close"))
    fold, outcomes = fold_all(log + [a.click("2026-10-20T11:00", "j-jade", "h-hats", "v8", event_id="c-at-close")])
    assert outcomes[-1].quarantine is None  # a new event, not a conflicting duplicate


def test_after_a_close_an_order_exactly_at_it_is_closed_and_later_ones_of_the_visitor_stay_open():
    """v1 bought at j-jade exactly at the close and twice after it, all referred by h-hats; after
    the close, a late November click of i-ink takes the two open orders (last click wins), a
    refund of the order at the close is period_closed, and j-jade's new rate reprices only the
    open orders."""
    a, log = summer()
    log += [a.click("2026-10-14T10:00", "h-hats", "j-jade", "v1", event_id="c-h"),
            a.order(MID_OCTOBER, "j-jade", "v1", "o1", [(1, 10000, "jewellery")], event_id="o-1"),
            a.order("2026-10-16T12:00", "j-jade", "v1", "o2", [(1, 20000, "jewellery")], event_id="o-2"),
            a.order("2026-10-17T12:00", "j-jade", "v1", "o3", [(1, 30000, "jewellery")], event_id="o-3"),
            a.close("2026-11-01T00:00", MID_OCTOBER, "through-10-15")]
    fold, outcomes = fold_all(log)
    assert fold.state_size()["open_orders"] == 2 and fold.state_size()["closed_orders"] == 1
    late_click = fold.apply(a.click("2026-10-16T08:00", "i-ink", "j-jade", "v1", event_id="c-i"))
    earned = sorted((e.shop_id, e.subject, e.amount) for e in late_click.entries if e.account == "earned_pending")
    assert earned == [("h-hats", "order:j-jade:o2", -2000), ("h-hats", "order:j-jade:o3", -3000),
                      ("i-ink", "order:j-jade:o2", 2000), ("i-ink", "order:j-jade:o3", 3000)]
    refund = fold.apply(a.refund("2026-10-20T00:00", "j-jade", "o1", 5000))
    assert refund.quarantine == "period_closed"
    raise_ = fold.apply(a.agreement(at="2026-10-16T00:00", agreement_id="cps", version=2, merchant="j-jade",
                                    rate_bp=2000, window=7, hold=5, effective_from="2026-10-16T00:00"))
    repriced: dict[str, int] = {}
    for e in raise_.entries:
        if e.shop_id == "i-ink" and e.account == "earned_pending":
            repriced[e.subject] = repriced.get(e.subject, 0) + e.amount
    assert repriced == {"order:j-jade:o2": 2000, "order:j-jade:o3": 3000}  # from 10 % to 20 %


def test_refunds_waiting_at_the_close_are_given_up_in_the_order_they_came_and_later_ones_keep_waiting():
    a, log = summer()
    log += [a.refund("2026-10-10T08:00", "i-ink", "oX", 100, event_id="r-z"),
            a.refund("2026-10-11T08:00", "i-ink", "oZ", 100, event_id="r-y"),
            a.refund(MID_OCTOBER, "i-ink", "oX", 100, event_id="r-x"),  # exactly at the close: given up
            a.refund("2026-10-20T08:00", "j-jade", "oY", 1000, event_id="r-after"),
            a.click("2026-10-19T07:00", "h-hats", "j-jade", "v1", event_id="c-y")]
    fold, outcomes = fold_all(log + [a.close("2026-11-01T00:00", MID_OCTOBER, "c")])
    assert outcomes[-1].late_quarantines == (("r-z", "period_closed"), ("r-y", "period_closed"),
                                             ("r-x", "period_closed"))
    assert fold.state_size()["parked_refunds"] == 1  # r-after waits; nothing given up still waits
    order = fold.apply(a.order("2026-10-19T08:00", "j-jade", "v1", "oY", [(1, 10000, "jewellery")]))
    assert order.quarantine is None and order.late_quarantines == ()
    earned = [e.amount for e in order.entries if e.shop_id == "h-hats" and e.account == "earned_pending"]
    assert sum(earned) == 900  # 10 % of 10,000, less 10 % of the waiting 1,000 refund


def test_a_visitor_who_clicked_through_seventy_times_keeps_the_clicks_of_the_last_ninety_days():
    """v9 clicked h-hats' banner for j-jade every hour around the ninety days' edge: the six
    older clicks are forgotten, the sixty-four from the edge on are kept, in order."""
    a, log = summer()
    edge = ms(NINETY_DAYS_BEFORE)
    clicks = [a.click("2026-07-17T18:00", "h-hats", "j-jade", "v9", event_id=f"c-{n:02d}") for n in range(70)]
    for n, click in enumerate(clicks):
        click["occurred_at"] = edge + (n - 6) * 3_600_000
    fold, outcomes = fold_all(log + clicks + [a.close("2026-11-01T00:00", MID_OCTOBER, "c")])
    kept = [c.event_id for c in fold.clicks.for_visitor("j-jade", "v9")]
    assert kept == [f"c-{n:02d}" for n in range(6, 70)]


def test_the_24_hours_run_on_from_the_last_closed_click_that_counted():
    """h-hats' clicks of v1 at i-ink 30 and 2 hours before the close both counted. After the
    close a click 30 hours after it arrives, then one 10 hours after it: the earlier one is within
    24 hours of the last closed click that counted and earns nothing; the later one keeps its 30."""
    a, log = summer()
    log += [a.click("2026-10-14T18:00", "h-hats", "i-ink", "v1", event_id="c-a"),
            a.click("2026-10-15T22:00", "h-hats", "i-ink", "v1", event_id="c-b"),
            a.close("2026-11-01T00:00", MID_OCTOBER, "through-10-15"),
            a.click("2026-10-17T06:00", "h-hats", "i-ink", "v1", event_id="c-d")]
    fold, outcomes = fold_all(log)
    assert [e.amount for e in outcomes[-1].entries if e.account == "earned_pending"] == [30]
    late = fold.apply(a.click("2026-10-16T10:00", "h-hats", "i-ink", "v1", event_id="c-c"))
    assert late.quarantine is None and late.entries == ()
    assert {c.event_id: valid for c, valid in fold.clicks.rows()} == {"c-a": True, "c-b": True, "c-c": False,
                                                                       "c-d": True}


def test_a_visitor_with_more_than_sixty_four_clicks_keeps_them_in_order_whatever_order_they_arrive_in():
    a, log = summer()
    start = ms("2026-10-20T00:00")
    clicks = [a.click("2026-10-20T00:00", "h-hats", "j-jade", "v9", event_id=f"c-{n:02d}") for n in range(70)]
    for n, click in enumerate(clicks):
        click["occurred_at"] = start + n * 60_000
    arrival = clicks[:66] + [clicks[69], clicks[67], clicks[68], clicks[66]]
    fold, outcomes = fold_all(log + arrival)
    assert [c.event_id for c in fold.clicks.for_visitor("j-jade", "v9")] == [f"c-{n:02d}" for n in range(70)]
    assert [c.event_id for c, valid in fold.clicks.rows() if valid] == ["c-00"]


def test_what_the_fold_remembers_is_counted_per_kind():
    """What `stats` shows of each log's fold after the close: every kind by name."""
    a, log = summer()
    log += [a.click("2026-10-14T10:00", "h-hats", "j-jade", "v1", event_id="c-h"),
            a.order("2026-10-16T12:00", "j-jade", "v1", "o2", [(1, 20000, "jewellery")], event_id="o-2"),
            a.refund("2026-10-20T08:00", "j-jade", "oY", 1000, event_id="r-after"),
            a.close("2026-11-01T00:00", MID_OCTOBER, "through-10-15")]
    fold, _ = fold_all(log)
    assert fold.state_size() == {"event_ids": 3, "clicks": 1, "open_orders": 1, "closed_orders": 0,
                                 "parked_refunds": 1, "pending_subjects": 1, "agreements": 2, "members": 3,
                                 "signing_keys": 0}


def cpc_story(a, *later):
    """h-hats is paid 50 a click by the shop it sends a visitor to (hold 0); its click c-h of 3 October is
    settled and closed; then the same id comes back on a new click, to j-jade, after the close."""
    log = [a.member(s, at="2026-09-30T00:00") for s in SHOPS]
    log += [a.agreement(at="2026-09-30T00:00", effective_from="2026-09-30T00:00", model="cpc", amount_minor=50,
                        currency="CNY", hold=0),
            a.click("2026-10-03T10:00", "h-hats", "i-ink", "v1", event_id="c-h"),
            a.settlement("2026-11-01T00:00", "2026-10-31T23:59:59.999Z", "2026-10"),
            a.close("2026-11-01T00:00:01", MID_OCTOBER, "through-10-15", event_id="close-1"),
            a.click("2026-10-20T11:00", "h-hats", "j-jade", "v2", event_id="c-h"),
            *later]
    return log


def agreement_story() -> list[dict]:
    """The default terms (10 %, toys 30 %) are closed with October's first half; the same event id then
    carries version 2 (20 %, toys 50 %); h-hats refers an order of toys 1000 + care 1000 to i-ink on
    1 November, which earns 500 + 200 under version 2."""
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-10-01T00:00") for s in ("h-hats", "i-ink")]
    return log + [
        a.agreement(at="2026-10-01T00:00", rate_bp=1000, category_rates_bp={"toys": 3000}, event_id="ag"),
        a.close("2026-10-16T00:00", "2026-10-15T00:00:00.000Z", "through-10-15"),
        a.agreement(at="2026-10-20T00:00", version=2, effective_from="2026-10-20T00:00", rate_bp=2000,
                    category_rates_bp={"toys": 5000}, event_id="ag"),
        a.click("2026-11-01T00:00", "h-hats", "i-ink", "v1"),
        a.order("2026-11-01T01:00", "i-ink", "v1", "O1", [(1, 1000, "toys"), (1, 1000, "care")])]


def refund_story() -> list[dict]:
    """Refund rf halves O0 (2000, 10 %) and is closed with October's first half; the id then comes back
    on a refund of 5000 for O2, which waits for its order and is given up when O2 turns out to be 1000
    (refund_exceeds_order): h-hats earns 100 on O0 and 100 on O2."""
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-10-01T00:00") for s in ("h-hats", "i-ink")]
    return log + [
        a.agreement(at="2026-10-01T00:00", rate_bp=1000),
        a.click("2026-10-03T00:00", "h-hats", "i-ink", "v1"),
        a.order("2026-10-03T01:00", "i-ink", "v1", "O0", [(1, 2000, "toys")]),
        a.refund("2026-10-04T00:00", "i-ink", "O0", 1000, event_id="rf"),
        a.close("2026-10-16T00:00", "2026-10-15T00:00:00.000Z", "through-10-15"),
        a.refund("2026-10-20T00:00", "i-ink", "O2", 5000, event_id="rf"),
        a.click("2026-10-20T00:00", "h-hats", "i-ink", "v2"),
        a.order("2026-10-20T01:00", "i-ink", "v2", "O2", [(1, 1000, "toys")])]


def test_a_cpc_click_that_reuses_a_forgotten_id_earns_as_a_click_of_its_own():
    a = Alliance("harbor-fair")
    fold, outcomes = fold_all(cpc_story(a))
    assert outcomes[-1].quarantine is None and not outcomes[-1].skipped
    assert moved(outcomes, "h-hats") == {"earned_payable": 50, "earned_pending": 50}
    assert moved(outcomes, "i-ink") == {"owed_payable": 50}  # the closed click is left alone
    assert moved(outcomes, "j-jade") == {"owed_pending": 50}
    # November's settlement moves the new click to payable, the old one being settled already
    fold, outcomes = fold_all(cpc_story(a, a.settlement("2026-12-01T00:00", "2026-11-30T23:59:59.999Z", "2026-11")))
    assert moved(outcomes, "h-hats") == {"earned_payable": 100}
    assert moved(outcomes, "j-jade") == {"owed_payable": 50}


def moved(outcomes, shop: str) -> dict:
    return {account: amount for account, amount in balance_of(outcomes, shop).items() if amount}


def test_two_clicks_sharing_an_id_survive_a_snapshot():
    from refledger.ledger.fold import PartitionFold
    from refledger.ledger.snapshot import export_state, restore_state

    a = Alliance("harbor-fair")
    fold, _ = fold_all(cpc_story(a))
    restored = PartitionFold()
    restore_state(restored, export_state(fold))
    assert export_state(restored) == export_state(fold)
    assert restored.clicks.size() == 2 and len(restored.postings.pending_subjects()) == 1
    # and the restored fold settles the new click as the live one does
    november = a.settlement("2026-12-01T00:00", "2026-11-30T23:59:59.999Z", "2026-11")
    live, copy = fold.apply(november), restored.apply(november)
    assert live.entries == copy.entries
    assert [(e.account, e.amount) for e in live.entries if e.shop_id == "h-hats"] == [
        ("earned_pending", -50), ("earned_payable", 50)]
