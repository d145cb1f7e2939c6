"""The simulated alliance has members the operator should notice, and `refledger health` finds them
(SPEC §14): liu-books takes its banner down and keeps taking visitors, huang-shoes only takes
traffic, zhou-strollers sells less every month while the alliance grows."""

from __future__ import annotations

import pytest

from tests.alliance_story import as_json, simulated_ledger


@pytest.fixture(scope="module")
def four_months(tmp_path_factory):
    return simulated_ledger(tmp_path_factory.mktemp("behaviours"), seed=3, visitors=200, days=130)


def test_health_finds_the_three_members_and_nobody_else(four_months):
    raised = as_json("health", "--db", four_months, code=1)
    assert sorted((row["flag"], row["shop_id"]) for row in raised) == [
        ("declining", "zhou-strollers"), ("free_rider", "huang-shoes"), ("silent_withdrawal", "liu-books")]
    [declining] = [row for row in raised if row["flag"] == "declining"]
    assert declining["months"] == ["2026-11", "2026-12", "2027-01", "2027-02"]


def test_the_withdrawn_member_gave_nothing_since_day_118_and_still_received(four_months):
    before = {c["shop_id"]: c for c in as_json("members", "--db", four_months, "--at", "2027-02-28")}
    after = {c["shop_id"]: c for c in as_json("members", "--db", four_months)}
    assert after["liu-books"]["views_out"] == before["liu-books"]["views_out"] > 0
    assert after["liu-books"]["clicks_in"] > before["liu-books"]["clicks_in"]


def test_the_alliance_grows_while_the_decliner_shrinks(four_months):
    gmv = {}
    for month in ("2026-12", "2027-02"):
        for card in as_json("members", "--db", four_months, "--period", month):
            gmv[(card["shop_id"], month)] = card["gmv_total"]
    shops = {shop for shop, _ in gmv}
    grew = [s for s in shops if gmv[(s, "2027-02")] > gmv[(s, "2026-12")]]
    assert len(grew) >= 4 and "zhou-strollers" not in grew


def test_without_behaviours_nobody_is_singled_out():
    from refledger.producers.simulate import SimulationConfig, simulate

    def views_and_last(behaviours: bool):
        given, last = {}, {}
        for record in simulate(SimulationConfig(seed=3, visitors=200, days=40, behaviours=behaviours)):
            if record["type"] == "view":
                given[record["shop_id"]] = given.get(record["shop_id"], 0) + 1
                last[record["shop_id"]] = record["occurred_at"]
        return given, last

    plain, plain_last = views_and_last(False)
    shaped, shaped_last = views_and_last(True)
    assert plain["huang-shoes"] > 5 * shaped["huang-shoes"]
    assert plain_last["liu-books"] > shaped_last["liu-books"] + 10 * 86_400_000
