"""Member scorecards (SPEC §14) on the worked example of SPEC §13 and on stories told for them."""

from __future__ import annotations

import csv
import io

import pyarrow.parquet as pq
import pytest

from tests.alliance_story import DAY_MS, Alliance, as_json, iso, ms, run
from tests.scenario_files import SCENARIOS


@pytest.fixture(scope="module")
def baby(tmp_path_factory):
    db = tmp_path_factory.mktemp("members") / "baby.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", db)
    return db


def cards(db, *options) -> dict[str, dict]:
    return {card["shop_id"]: card for card in as_json("members", "--db", db, *options)}


def test_november_in_the_baby_care_alliance(baby):
    rows = as_json("members", "--db", baby, "--period", "2026-11")
    assert [(c["rank"], c["shop_id"]) for c in rows] == [
        (1, "zhang-toys"), (2, "li-kids"), (3, "wang-bath"), (4, "zhao-photo")]  # 0 and 0: by shop id
    card = {c["shop_id"]: c for c in rows}
    li, zhang, wang = card["li-kids"], card["zhang-toys"], card["wang-bath"]
    # li-kids sent v1 to wang-bath (o1: 13,233 less the 3,333 refunded) and v2 to zhang-toys (outside the
    # window); its own banner for v4 is no traffic; v3 came to it twice, from wang-bath and zhang-toys
    assert (li["clicks_out"], li["uv_out"], li["clicks_in"], li["uv_in"]) == (2, 2, 2, 1)
    assert (li["orders_referred"], li["gmv_referred"], li["commission_earned"]) == (1, 9_900, 792)
    assert (li["gmv_total"], li["gmv_via_alliance"], li["commission_owed"]) == (30_400, 25_900, 2_072)
    assert (zhang["orders_referred"], zhang["gmv_referred"], zhang["commission_earned"]) == (1, 25_900, 2_072)
    assert (zhang["gmv_total"], zhang["gmv_via_alliance"]) == (19_900, 0)  # o2 came 18 days after the click
    assert (wang["gmv_total"], wang["gmv_via_alliance"], wang["commission_owed"]) == (9_900, 9_900, 792)
    assert (li["reciprocity"], card["zhao-photo"]["reciprocity"]) == (1.0, None)
    assert all(c["currency"] == "CNY" and c["status"] == "active" for c in rows)
    assert li["status_changes"] == [{"at": "2026-10-31T00:00:00.000Z", "status": "active"}]


def test_the_scorecards_sum_to_the_traffic_matrix(baby):
    rows = as_json("members", "--db", baby, "--period", "2026-11")
    pairs = as_json("traffic", "--db", baby, "--period", "2026-11")
    assert sum(c["clicks_out"] for c in rows) == sum(c["clicks_in"] for c in rows) == sum(p["clicks"] for p in pairs)
    assert sum(c["gmv_referred"] for c in rows) == sum(c["gmv_via_alliance"] for c in rows) == sum(
        p["gmv_minor"] for p in pairs)
    assert sum(c["commission_earned"] for c in rows) == sum(c["commission_owed"] for c in rows) == sum(
        p["commission_minor"] for p in pairs)


def test_at_t_counts_everything_up_to_t_and_refunds_by_then(baby):
    # the end of 2026-11-02 in Shanghai: o1 is in, its refund of 11-03 not yet
    early = cards(baby, "--at", "2026-11-02")
    assert (early["li-kids"]["gmv_referred"], early["li-kids"]["commission_earned"]) == (13_233, 1_059)
    assert early["zhang-toys"]["gmv_referred"] == 0
    later = cards(baby)  # T = the latest event: everything
    assert (later["li-kids"]["gmv_referred"], later["zhang-toys"]["gmv_referred"]) == (9_900, 25_900)
    assert run("members", "--db", baby, "--period", "2026-11", "--at", "2026-11-02", code=2)


def test_status_and_the_dates_it_changed(tmp_path):
    story = Alliance()
    for shop in ("a-tea", "b-cups"):
        story.member(shop, "2026-10-01T00:00:00Z")
    story.member("b-cups", "2026-11-10T02:00:00Z", "suspended")
    story.member("b-cups", "2026-11-12T02:00:00Z", "suspended")  # said again: no change
    story.member("b-cups", "2026-11-20T02:00:00Z", "active")
    story.member("c-snacks", "2026-12-05T00:00:00Z")
    story.click("a-tea", "b-cups", "2026-11-02T00:00:00Z")
    db = story.ledger(tmp_path)
    november = cards(db, "--period", "2026-11")
    assert set(november) == {"a-tea", "b-cups"}  # c-snacks joined in December
    assert november["b-cups"]["status_changes"] == [
        {"at": "2026-10-01T00:00:00.000Z", "status": "active"},
        {"at": "2026-11-10T02:00:00.000Z", "status": "suspended"},
        {"at": "2026-11-20T02:00:00.000Z", "status": "active"}]
    assert (november["b-cups"]["status"], november["b-cups"]["status_since"]) == ("active", "2026-11-20T02:00:00.000Z")
    assert cards(db, "--at", "2026-11-15")["b-cups"]["status"] == "suspended"
    assert november["a-tea"]["currency"] is None  # no money moved at all
    table = run("members", "--db", db, "--period", "2026-11").output
    assert "正常" in table and "2026-11-20" in table and "互惠比" in table
    rows = list(csv.DictReader(io.StringIO(run("members", "--db", db, "--period", "2026-11", "--format", "csv").output)))
    assert rows[1]["status_changes"] == ("2026-10-01T00:00:00.000Z active; 2026-11-10T02:00:00.000Z suspended; "
                                         "2026-11-20T02:00:00.000Z active")
    out = tmp_path / "members.parquet"
    run("members", "--db", db, "--period", "2026-11", "--format", "parquet", "--out", out)
    assert [r["shop_id"] for r in pq.read_table(out).to_pylist()] == ["a-tea", "b-cups"]


def test_an_order_whose_referrer_turns_out_suspended_is_nobody_s_referral(tmp_path):
    # a-tea's click sent v-1 to b-cups, who bought; a late member event then says a-tea was suspended
    # since the day before: the order is unattributed (no commission), and no report credits a-tea
    story = Alliance()
    for shop in ("a-tea", "b-cups"):
        story.member(shop, "2026-10-01T00:00:00Z")
    story.agreement("2026-10-01T00:00:00Z")
    story.click("a-tea", "b-cups", "2026-11-05T00:00:00Z", visitor="v-1")
    story.order("b-cups", "2026-11-05T01:00:00Z", 10_000, visitor="v-1")
    story.member("a-tea", "2026-11-04T00:00:00Z", "suspended")
    db = story.ledger(tmp_path)
    november = cards(db, "--period", "2026-11")
    assert (november["a-tea"]["orders_referred"], november["a-tea"]["gmv_referred"]) == (0, 0)
    assert (november["b-cups"]["gmv_total"], november["b-cups"]["gmv_via_alliance"]) == (10_000, 0)
    [pair] = as_json("traffic", "--db", db, "--period", "2026-11")
    assert (pair["referrer_shop_id"], pair["clicks"], pair["orders"], pair["gmv_minor"]) == ("a-tea", 1, 0, 0)


def test_a_member_event_that_reuses_an_id_after_a_close_is_an_event_of_its_own(tmp_path):
    # SPEC §9a: the id of b-cups' joining (1 October) is forgotten at the close through 15 October;
    # the operator's later event under the same id suspends b-cups, and the reports see both
    story = Alliance()
    story.member("a-tea", "2026-10-01T00:00:00Z")
    story.member("b-cups", "2026-10-01T00:00:00Z", event_id="m-b")
    story.close("2026-10-16T00:00:00Z", "2026-10-15T00:00:00Z")
    story.member("b-cups", "2026-10-20T00:00:00Z", "suspended", event_id="m-b")
    story.view("a-tea", "b-cups", "2026-10-25T00:00:00Z")
    db = story.ledger(tmp_path)
    card = cards(db, "--at", "2026-10-25")["b-cups"]
    assert (card["status"], card["status_since"]) == ("suspended", "2026-10-20T00:00:00.000Z")
    assert [c["status"] for c in card["status_changes"]] == ["active", "suspended"]
    assert run("health", "--db", db, "--format", "json").output.strip() == "[]"  # suspended: not inactive


def test_rank_is_by_gmv_referred_within_each_currency_ties_by_shop_id(tmp_path):
    story = Alliance()
    for shop in ("c-snacks", "a-tea", "b-cups"):
        story.member(shop, "2026-10-01T00:00:00Z")
    story.agreement("2026-11-01T00:00:00Z")
    t = ms("2026-11-05T00:00:00Z")
    for i, (referrer, merchant, total, currency) in enumerate(
            [("c-snacks", "a-tea", 5_000, "CNY"), ("b-cups", "a-tea", 5_000, "CNY"), ("a-tea", "b-cups", 100, "USD")]):
        story.click(referrer, merchant, t + i * DAY_MS, f"v-{i}")
        story.order(merchant, t + i * DAY_MS + 60_000, total, f"v-{i}", currency=currency)
    rows = as_json("members", "--db", story.ledger(tmp_path), "--period", "2026-11")
    assert [(c["currency"], c["rank"], c["shop_id"], c["gmv_referred"]) for c in rows] == [
        ("CNY", 1, "b-cups", 5_000), ("CNY", 2, "c-snacks", 5_000), ("CNY", 3, "a-tea", 0),
        ("USD", 1, "a-tea", 100), ("USD", 2, "b-cups", 0), ("USD", 3, "c-snacks", 0)]
    assert iso(t) == "2026-11-05T00:00:00.000Z"
