"""Member health (SPEC §14): each flag raised exactly at its threshold and not one step short of it.

The stories: a-tea, b-cups and c-snacks joined the harbor alliance on
2026-10-01 and send each other visitors. The operator looks at them at
T = 2026-12-31 12:00 UTC unless a test says otherwise, so the silent
withdrawal's baseline is (11-26 12:00, 12-24 12:00], its recent week
(12-24 12:00, 12-31 12:00], the free rider's four weeks start at 12-03 12:00
and the inactive fortnight at 12-17 12:00.
"""

from __future__ import annotations

import pytest

from tests.alliance_story import DAY_MS, Alliance, as_json, iso, ms

T = ms("2026-12-31T12:00:00Z")
JOINED = "2026-10-01T00:00:00Z"
BASELINE_FROM, RECENT_FROM = T - 35 * DAY_MS, T - 7 * DAY_MS


def founders(*shops: str) -> Alliance:
    story = Alliance()
    for shop in shops or ("a-tea", "b-cups", "c-snacks"):
        story.member(shop, JOINED)
    return story


def flags(db, flag: str, *options, at=T) -> list[dict]:
    raised = as_json("health", "--db", db, "--at", iso(at), *options, code=None)
    return [row for row in raised if row["flag"] == flag]


# -- silent withdrawal -------------------------------------------------------------------------------


def withdrawal(baseline: int, recent: int, clicks_in: int = 1) -> Alliance:
    """a-tea showed b-cups' banner ``baseline`` times in the baseline and ``recent`` times in the last
    week, while c-snacks sent a-tea ``clicks_in`` visitors in that week."""
    story = founders()
    story.views("a-tea", "b-cups", baseline, between=(BASELINE_FROM, RECENT_FROM))
    story.views("a-tea", "b-cups", recent, between=(RECENT_FROM, T))
    story.clicks("c-snacks", "a-tea", clicks_in, between=(RECENT_FROM, T))
    return story


@pytest.mark.parametrize("baseline, raised", [(199, False), (200, True)])
def test_a_banner_shown_200_times_in_the_baseline_is_enough_to_miss_199_is_not(tmp_path, baseline, raised):
    found = flags(withdrawal(baseline, recent=0).ledger(tmp_path), "silent_withdrawal")
    assert bool(found) is raised
    if raised:
        [row] = found
        assert (row["shop_id"], row["baseline_views_out"], row["recent_views_out"], row["recent_clicks_in"]) == (
            "a-tea", 200, 0, 1)
        assert (row["baseline_from"], row["recent_from"], row["at"]) == (
            iso(BASELINE_FROM), iso(RECENT_FROM), iso(T))


@pytest.mark.parametrize("baseline, raised", [(240, True), (239, False)])
def test_last_week_times_40_may_equal_the_baseline_but_not_exceed_it_by_one(tmp_path, baseline, raised):
    # 6 views last week: 6 × 40 = 240, equal to a baseline of 240, one above a baseline of 239
    found = flags(withdrawal(baseline, recent=6).ledger(tmp_path), "silent_withdrawal")
    assert [r["shop_id"] for r in found] == (["a-tea"] if raised else [])


@pytest.mark.parametrize("clicks_in, raised", [(0, False), (1, True)])
def test_a_withdrawn_member_is_flagged_only_while_it_still_takes_traffic(tmp_path, clicks_in, raised):
    assert bool(flags(withdrawal(300, recent=0, clicks_in=clicks_in).ledger(tmp_path), "silent_withdrawal")) is raised


@pytest.mark.parametrize("at, counted", [(BASELINE_FROM, False), (BASELINE_FROM + 1, True)])
def test_the_baseline_opens_just_after_t_minus_35_days(tmp_path, at, counted):
    story = withdrawal(199, recent=0)
    story.view("a-tea", "b-cups", at)
    assert bool(flags(story.ledger(tmp_path), "silent_withdrawal")) is counted


def test_a_view_at_exactly_t_minus_7_days_belongs_to_the_baseline_not_to_the_last_week(tmp_path):
    # counted in the baseline: 240 vs 6 × 40 → flagged; counted in the last week it would be 239 vs 7 × 40
    story = withdrawal(239, recent=6)
    story.view("a-tea", "b-cups", RECENT_FROM)
    [row] = flags(story.ledger(tmp_path), "silent_withdrawal")
    assert (row["baseline_views_out"], row["recent_views_out"]) == (240, 6)


def test_a_view_at_t_itself_is_last_week_and_one_after_t_is_not_counted(tmp_path):
    story = withdrawal(240, recent=6)
    story.view("a-tea", "b-cups", T + 1)
    assert flags(story.ledger(tmp_path), "silent_withdrawal")
    story.view("a-tea", "b-cups", T)
    assert not flags(story.ledger(tmp_path, "again"), "silent_withdrawal")


@pytest.mark.parametrize("at, counted", [(RECENT_FROM, False), (RECENT_FROM + 1, True)])
def test_the_click_it_still_takes_must_fall_in_the_last_week(tmp_path, at, counted):
    story = withdrawal(300, recent=0, clicks_in=0)
    story.click("c-snacks", "a-tea", at)
    assert bool(flags(story.ledger(tmp_path), "silent_withdrawal")) is counted


def test_a_suspension_in_the_window_is_a_change_of_status_and_no_silent_withdrawal(tmp_path):
    story = withdrawal(300, recent=0)
    story.member("a-tea", T - 10 * DAY_MS, "suspended")
    story.member("a-tea", T - 9 * DAY_MS, "active")
    assert not flags(story.ledger(tmp_path), "silent_withdrawal")


def test_a_member_event_that_restates_active_changes_nothing(tmp_path):
    story = withdrawal(300, recent=0)
    story.member("a-tea", T - 10 * DAY_MS, "active")
    assert flags(story.ledger(tmp_path), "silent_withdrawal")


def test_the_status_that_counts_is_the_one_at_t_minus_35_days(tmp_path):
    back = withdrawal(300, recent=0)
    back.member("a-tea", "2026-10-10T00:00:00Z", "suspended")
    back.member("a-tea", BASELINE_FROM, "active")  # active again at exactly T − 35 d
    assert flags(back.ledger(tmp_path, "back"), "silent_withdrawal")
    late = Alliance()
    for shop in ("b-cups", "c-snacks"):
        late.member(shop, JOINED)
    late.member("a-tea", BASELINE_FROM + 1)  # joined after T − 35 d
    late.events += withdrawal(300, recent=0).events[3:]
    assert not flags(late.ledger(tmp_path, "late"), "silent_withdrawal")


def test_the_withdrawal_thresholds_are_options(tmp_path):
    db = withdrawal(150, recent=2).ledger(tmp_path)
    assert not flags(db, "silent_withdrawal")
    assert flags(db, "silent_withdrawal", "--baseline-views", "150", "--withdrawal-factor", "75")
    assert not flags(db, "silent_withdrawal", "--baseline-views", "150", "--withdrawal-factor", "76")


# -- free rider --------------------------------------------------------------------------------------

RIDER_FROM = T - 28 * DAY_MS


def rider(clicks_in: int, clicks_out: int) -> Alliance:
    """Over the last four weeks a-tea sent b-cups ``clicks_in`` visitors; b-cups sent ``clicks_out`` back."""
    story = founders()
    story.clicks("a-tea", "b-cups", clicks_in, between=(RIDER_FROM, T), visitors=7)
    story.clicks("b-cups", "a-tea", clicks_out, between=(RIDER_FROM, T), visitors=3)
    return story


@pytest.mark.parametrize("clicks_in, raised", [(29, False), (30, True)])
def test_thirty_clicks_received_make_a_free_rider_twenty_nine_do_not(tmp_path, clicks_in, raised):
    found = flags(rider(clicks_in, 0).ledger(tmp_path), "free_rider")
    assert [(r["shop_id"], r["clicks_in"], r["clicks_out"]) for r in found] == (
        [("b-cups", 30, 0)] if raised else [])


@pytest.mark.parametrize("clicks_out, raised", [(10, True), (11, False)])
def test_exactly_three_times_the_clicks_given_is_a_free_rider(tmp_path, clicks_out, raised):
    found = flags(rider(30, clicks_out).ledger(tmp_path), "free_rider")
    assert [r["shop_id"] for r in found] == (["b-cups"] if raised else [])


@pytest.mark.parametrize("at, counted", [(RIDER_FROM, False), (RIDER_FROM + 1, True)])
def test_the_four_weeks_open_just_after_t_minus_28_days(tmp_path, at, counted):
    story = rider(29, 0)
    story.click("c-snacks", "b-cups", at)
    assert bool(flags(story.ledger(tmp_path), "free_rider")) is counted


def test_self_referrals_are_no_traffic_given_or_taken(tmp_path):
    story = rider(30, 10)
    story.clicks("b-cups", "b-cups", 50, between=(RIDER_FROM, T))  # its own shop's banner for itself
    [row] = flags(story.ledger(tmp_path), "free_rider")
    assert (row["clicks_in"], row["clicks_out"]) == (30, 10)


def test_the_free_rider_thresholds_are_options(tmp_path):
    db = rider(29, 10).ledger(tmp_path)
    assert not flags(db, "free_rider")
    assert flags(db, "free_rider", "--free-rider-clicks", "29", "--free-rider-ratio", "2")
    assert not flags(db, "free_rider", "--free-rider-clicks", "29", "--free-rider-ratio", "3")


# -- declining ---------------------------------------------------------------------------------------

MARCH = ms("2027-03-15T00:00:00Z")  # complete months before it: Feb, Jan, Dec (Nov the first base)
SHANGHAI_MONTHS = {"2026-11": "2026-11-10T04:00:00Z", "2026-12": "2026-12-10T04:00:00Z",
                   "2027-01": "2027-01-10T04:00:00Z", "2027-02": "2027-02-10T04:00:00Z"}


def sales(by_month: dict[str, int]) -> Alliance:
    """b-cups' total GMV in each month (one order each, nobody referred)."""
    story = founders()
    for month, total in by_month.items():
        story.order("b-cups", SHANGHAI_MONTHS[month], total, visitor=f"v-{month}")
    return story


def test_gmv_falling_three_months_in_a_row_is_declining(tmp_path):
    db = sales({"2026-11": 4000, "2026-12": 3000, "2027-01": 2000, "2027-02": 1000}).ledger(tmp_path)
    [row] = flags(db, "declining", at=MARCH)
    assert (row["shop_id"], row["currency"], row["months"], row["gmv_total"]) == (
        "b-cups", "CNY", ["2026-11", "2026-12", "2027-01", "2027-02"], [4000, 3000, 2000, 1000])


def test_a_month_that_only_equals_the_one_before_is_no_fall(tmp_path):
    db = sales({"2026-11": 4000, "2026-12": 3000, "2027-01": 2000, "2027-02": 2000}).ledger(tmp_path)
    assert not flags(db, "declining", at=MARCH)
    mid_february = ms("2027-02-15T00:00:00Z")  # complete: Nov, Dec, Jan (and Oct, with nothing sold)
    assert not flags(db, "declining", at=mid_february)
    assert flags(db, "declining", "--declining-months", "2", at=mid_february)  # the option: Nov > Dec > Jan


def test_refunds_folded_so_far_lower_the_month_they_belong_to(tmp_path):
    story = sales({"2026-11": 4000, "2026-12": 3000, "2027-01": 2000, "2027-02": 2500})
    story.refund("b-cups", story.events[-1]["order"]["order_id"], "2027-03-01T00:00:00Z", 1500, visitor="v-2027-02")
    [row] = flags(story.ledger(tmp_path), "declining", at=MARCH)
    assert row["gmv_total"] == [4000, 3000, 2000, 1000]


def test_months_are_the_alliance_s_an_order_at_half_past_midnight_in_beijing_is_the_new_month(tmp_path):
    story = sales({"2026-11": 4000, "2026-12": 2500, "2027-01": 2400, "2027-02": 1000})
    story.order("b-cups", "2026-12-31T16:30:00Z", 200, visitor="v-new-year")  # 2027-01-01 00:30 in Shanghai
    db = story.ledger(tmp_path)
    assert not flags(db, "declining", at=MARCH)  # Shanghai: Dec 2,500 < Jan 2,600
    [row] = flags(db, "declining", "--tz", "UTC", at=MARCH)  # UTC: Dec 2,700 > Jan 2,400
    assert row["gmv_total"] == [4000, 2700, 2400, 1000]


def test_a_month_is_complete_at_its_last_millisecond(tmp_path):
    db = sales({"2026-11": 4000, "2026-12": 3000, "2027-01": 2000, "2027-02": 1000}).ledger(tmp_path)
    february_ends = ms("2027-02-28T15:59:59.999Z")  # in Shanghai
    [row] = flags(db, "declining", at=february_ends)
    assert row["months"][-1] == "2027-02"
    assert not flags(db, "declining", at=february_ends - 1)  # Oct (nothing) to Jan: no fall from nothing


# -- inactive ----------------------------------------------------------------------------------------

QUIET_FROM = T - 14 * DAY_MS


def busy_but(quiet_shop_last_event) -> Alliance:
    story = founders()
    story.click("a-tea", "b-cups", T - DAY_MS)
    story.click("b-cups", "a-tea", T - DAY_MS)
    if quiet_shop_last_event is not None:
        story.view("c-snacks", "a-tea", quiet_shop_last_event)
    return story


@pytest.mark.parametrize("last, raised", [(QUIET_FROM, True), (QUIET_FROM + 1, False)])
def test_a_member_silent_for_fourteen_days_is_inactive(tmp_path, last, raised):
    found = flags(busy_but(last).ledger(tmp_path), "inactive")
    assert [(r["shop_id"], r["last_event_at"]) for r in found] == ([("c-snacks", iso(QUIET_FROM))] if raised else [])


def test_a_member_that_never_emitted_anything_is_inactive_and_a_suspended_one_is_not(tmp_path):
    db = busy_but(None).ledger(tmp_path)
    assert [(r["shop_id"], r["last_event_at"]) for r in flags(db, "inactive")] == [("c-snacks", None)]
    story = busy_but(None)
    story.member("c-snacks", T - 20 * DAY_MS, "suspended")
    assert not flags(story.ledger(tmp_path, "suspended"), "inactive")


def test_events_emitted_by_the_alliance_are_not_the_member_s(tmp_path):
    story = busy_but(QUIET_FROM)
    story.member("c-snacks", T - DAY_MS, "active")  # the operator's event names c-snacks; c-snacks said nothing
    assert flags(story.ledger(tmp_path), "inactive")


# -- T, exit status, what is counted ------------------------------------------------------------------


def test_t_defaults_to_the_latest_folded_event_and_quarantined_events_count_for_nothing(tmp_path):
    story = rider(30, 10)
    latest = max(event["occurred_at"] for event in story.events)
    story.click("ghost-shop", "b-cups", T + 5 * DAY_MS)  # never a member: the fold quarantines it
    db = story.ledger(tmp_path)
    assert [q["reason"] for q in as_json("quarantine", "--db", db)] == ["unknown_shop"]
    raised = as_json("health", "--db", db, code=1)
    assert {row["at"] for row in raised} == {latest}
    assert [r for r in raised if r["flag"] == "free_rider"][0]["clicks_in"] == 30


def test_health_exits_1_for_cron_when_any_flag_is_raised_and_0_when_none(tmp_path):
    flagged = rider(30, 10).ledger(tmp_path, "flagged")
    story = rider(30, 11)
    story.click("c-snacks", "a-tea", T - DAY_MS)
    healthy = story.ledger(tmp_path, "healthy")
    assert as_json("health", "--db", flagged, "--at", iso(T), code=1)
    assert as_json("health", "--db", healthy, "--at", iso(T), code=0) == []
    from tests.alliance_story import run

    assert "b-cups" in run("health", "--db", flagged, "--at", iso(T), code=1).output
    assert "无预警" in run("health", "--db", healthy, "--at", iso(T), code=0).output
