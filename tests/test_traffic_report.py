"""Who brings what to whom (SPEC §14): `refledger traffic` checked against counts made straight from
the event file, around the end of November in Beijing (16:00 UTC on the 30th)."""

from __future__ import annotations

import io
import json
import random
from collections import defaultdict
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest

from tests.alliance_story import DAY_MS, Alliance, as_json, iso, ms, run

SHOPS = ("a-tea", "b-cups", "c-snacks", "d-noodles")
RATE_BP = 1000
BOUNDARY = ms("2026-11-30T16:00:00Z")  # 2026-12-01 00:00 in Shanghai


def month_in(zone: str, when: str) -> str:
    moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    return moment.astimezone(ZoneInfo(zone)).strftime("%Y-%m")


def half_up(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """Four tea-street shops for ten days around the month's end, a third of it in the hours around
    midnight in Beijing; plus the events the fold refuses, which no report may count."""
    rng = random.Random(20261130)
    story = Alliance("tea-street")
    for shop in SHOPS:
        story.member(shop, "2026-10-01T00:00:00Z")
    story.agreement("2026-11-01T00:00:00Z", rate_bp=RATE_BP)
    for i in range(900):
        if i % 3 == 0:
            at = BOUNDARY + rng.randint(-2 * 3600_000, 2 * 3600_000)
        else:
            at = ms("2026-11-25T00:00:00Z") + rng.randint(0, 10 * DAY_MS)
        referrer, merchant = rng.choice(SHOPS), rng.choice(SHOPS)  # now and then a shop's own banner
        visitor = f"v-{rng.randint(1, 40):04d}"
        kind = rng.random()
        if kind < 0.5:
            story.view(referrer, merchant, at, visitor)
        elif kind < 0.85:
            story.click(referrer, merchant, at, visitor)
        else:
            order_id = story.order(merchant, at, rng.choice((999, 1005, 2500, 10_000, 12_345)), visitor)
            if rng.random() < 0.3:
                story.refund(merchant, order_id, at + rng.randint(1, 3 * DAY_MS),
                             rng.choice((1, 333, 500)), visitor)
    story.events.sort(key=lambda e: e["occurred_at"])  # a log in time order (refunds after their orders)
    # v-late clicks d-noodles → c-snacks, orders, and the later click b-cups → c-snacks that preceded
    # the order arrives after it: the order is attributed again, to b-cups (SPEC §8)
    story.click("d-noodles", "c-snacks", BOUNDARY - 3600_000, "v-late")
    story.order("c-snacks", BOUNDARY + 600_000, 8_800, "v-late", order_id="o-late")
    story.click("b-cups", "c-snacks", BOUNDARY + 300_000, "v-late")
    good = list(story.events)
    first_order = next(e for e in good if e["type"] == "order")
    # what the fold refuses: they are stored, quarantined, and counted nowhere
    story.click("ghost-shop", "a-tea", BOUNDARY - 1, "v-0001")                       # unknown_shop
    story.order(first_order["shop_id"], BOUNDARY - 2, 777, "v-0002",
                order_id=first_order["order"]["order_id"])                            # duplicate_order
    story.refund(first_order["shop_id"], first_order["order"]["order_id"], BOUNDARY - 3,
                 first_order["order"]["total_minor"] + 1, "v-0003")                   # refund_exceeds_order
    story.refund("b-cups", "o-later", BOUNDARY - 5, 4000, "v-0004")                  # parked, then given up:
    story.order("b-cups", BOUNDARY - 4, 1000, "v-0004", order_id="o-later")           # it exceeds its order
    good.append(story.events[-1])
    db = story.ledger(tmp_path_factory.mktemp("traffic"))
    assert as_json("explain", "--db", db, "--order", "o-late")["decision"]["referrer_shop_id"] == "b-cups"
    reasons = sorted(q["reason"] for q in as_json("quarantine", "--db", db))
    assert reasons == ["duplicate_order", "refund_exceeds_order", "refund_exceeds_order", "unknown_shop"]
    return db, good


def expected_rows(events: list[dict], period: str, zone: str = "Asia/Shanghai") -> dict:
    """The SPEC §14 pair rows, counted directly from the events the fold took."""
    views, clicks, visitors = defaultdict(int), defaultdict(int), defaultdict(set)
    click_log = defaultdict(list)
    refunded = defaultdict(int)
    for e in events:
        if e["type"] in ("view", "click"):
            p = e[e["type"]]
            pair = (p["referrer_shop_id"], p["merchant_shop_id"])
            if e["type"] == "click":
                click_log[(e["visitor_id"], pair[1])].append((e["occurred_at"], e["event_id"], pair[0]))
            if pair[0] == pair[1] or month_in(zone, e["occurred_at"]) != period:
                continue
            if e["type"] == "view":
                views[pair] += 1
            else:
                clicks[pair] += 1
                visitors[pair].add(e["visitor_id"])
        elif e["type"] == "refund":
            refunded[(e["shop_id"], e["refund"]["order_id"])] += e["refund"]["amount_minor"]
    money = defaultdict(lambda: [0, 0, 0])
    for e in events:
        if e["type"] != "order" or month_in(zone, e["occurred_at"]) != period:
            continue
        o, merchant = e["order"], e["shop_id"]
        eligible = [c for c in click_log[(e["visitor_id"], merchant)]
                    if c[0] <= e["occurred_at"] and c[2] != merchant
                    and ms(e["occurred_at"]) - ms(c[0]) <= 15 * DAY_MS]
        if not eligible:
            continue
        referrer = max(eligible)[2]  # last click wins (ISO times of one width sort as times; then event id)
        total, back = o["total_minor"], refunded[(merchant, o["order_id"])]
        commission = int(half_up(Decimal(total * RATE_BP) / 10_000, "1"))
        commission -= int(half_up(Decimal(commission * back) / total, "1"))
        row = money[(referrer, merchant, "CNY")]
        row[0] += 1
        row[1] += total - back
        row[2] += commission
    rows = {}
    for (r, m, currency), (orders, gmv, commission) in money.items():
        rows[(r, m, currency)] = (views[(r, m)], clicks[(r, m)], len(visitors[(r, m)]), orders, gmv, commission)
    for (r, m) in set(views) | set(clicks):
        if not any(key[:2] == (r, m) for key in rows):
            rows[(r, m, None)] = (views[(r, m)], clicks[(r, m)], len(visitors[(r, m)]), 0, 0, 0)
    return rows


def ratios(orders: int, gmv: int, uv: int):
    if uv == 0:
        return None, None
    return float(half_up(Decimal(orders) / uv, "0.0001")), int(half_up(Decimal(gmv) / uv, "1"))


@pytest.mark.parametrize("period", ["2026-11", "2026-12"])
def test_every_pair_matches_the_event_file_counted_by_hand(market, period):
    db, events = market
    rows = as_json("traffic", "--db", db, "--period", period)
    expected = expected_rows(events, period)
    got = {(r["referrer_shop_id"], r["merchant_shop_id"], r["currency"]):
           (r["views"], r["clicks"], r["uv"], r["orders"], r["gmv_minor"], r["commission_minor"]) for r in rows}
    assert got == expected
    assert sum(r["orders"] for r in rows) > 10 and sum(r["views"] for r in rows) > 100
    for r in rows:
        assert (r["conversion"], r["uv_yield_minor"]) == ratios(r["orders"], r["gmv_minor"], r["uv"])
        assert r["referrer_shop_id"] != r["merchant_shop_id"], "a shop's own banner is no alliance traffic"
    assert [(-r["gmv_minor"], r["referrer_shop_id"], r["merchant_shop_id"]) for r in rows] == sorted(
        (-r["gmv_minor"], r["referrer_shop_id"], r["merchant_shop_id"]) for r in rows)


def test_the_month_follows_the_alliance_s_zone(market):
    db, events = market
    shanghai = as_json("traffic", "--db", db, "--period", "2026-11")
    utc = as_json("traffic", "--db", db, "--period", "2026-11", "--tz", "UTC")
    assert sum(r["clicks"] for r in utc) > sum(r["clicks"] for r in shanghai)
    got = {(r["referrer_shop_id"], r["merchant_shop_id"], r["currency"]): (r["views"], r["clicks"], r["uv"],
                                                                           r["orders"], r["gmv_minor"],
                                                                           r["commission_minor"]) for r in utc}
    assert got == expected_rows(events, "2026-11", "UTC")


def test_conversion_and_uv_yield_round_half_up():
    from refledger.reports.ratios import conversion, reciprocity, uv_yield

    assert conversion(1, 8) == 0.125 and conversion(2, 3) == 0.6667 and conversion(1, 3) == 0.3333
    assert conversion(1, 20_000) == 0.0001 and conversion(1, 20_001) == 0.0 and conversion(0, 0) is None
    assert uv_yield(5, 2) == 3 and uv_yield(7, 4) == 2 and uv_yield(10**12 * 3, 2) == 1_500_000_000_000
    assert uv_yield(9, 0) is None and reciprocity(1, 4) == 0.25
    assert json.dumps(conversion(1, 12)) == "0.0833"


def test_the_table_shows_money_as_money_and_csv_and_parquet_keep_minor_units(market, tmp_path):
    db, _ = market
    rows = as_json("traffic", "--db", db, "--period", "2026-11")
    top = rows[0]
    table = run("traffic", "--db", db, "--period", "2026-11").output
    assert "引流方" in table and "成交方" in table and "转化率" in table
    from refledger.reports.money import format_money

    assert format_money(top["gmv_minor"], "CNY") in table and "¥" in table
    english = run("traffic", "--db", db, "--period", "2026-11", "--locale", "en_US").output
    assert "referrer" in english and format_money(top["gmv_minor"], "CNY", "en_US") in english
    csv_text = run("traffic", "--db", db, "--period", "2026-11", "--format", "csv").output
    header, first = csv_text.splitlines()[:2]
    assert header.split(",")[:3] == ["referrer_shop_id", "merchant_shop_id", "currency"]
    assert str(top["gmv_minor"]) in first.split(",")
    out = tmp_path / "traffic.parquet"
    run("traffic", "--db", db, "--period", "2026-11", "--format", "parquet", "--out", out)
    table = pq.read_table(out).to_pylist()
    assert table == rows
    piped = run("traffic", "--db", db, "--period", "2026-11", "--format", "parquet").stdout_bytes
    assert pq.read_table(io.BytesIO(piped)).to_pylist() == rows


def test_a_bad_period_is_one_clear_line(market):
    db, _ = market
    result = run("traffic", "--db", db, "--period", "2026-13", code=2)
    assert "period must be YYYY-MM" in result.output


def test_a_pair_with_two_currencies_has_a_row_for_each(tmp_path):
    story = Alliance()
    for shop in ("a-tea", "b-cups"):
        story.member(shop, "2026-10-01T00:00:00Z")
    story.agreement("2026-11-01T00:00:00Z")
    story.click("a-tea", "b-cups", "2026-11-02T10:00:00Z", "v-1")
    story.click("a-tea", "b-cups", "2026-11-02T10:00:00Z", "v-2")
    story.order("b-cups", "2026-11-02T10:05:00Z", 10_000, "v-1")
    story.order("b-cups", "2026-11-02T10:06:00Z", 5_000, "v-2", currency="USD")
    rows = as_json("traffic", "--db", story.ledger(tmp_path), "--period", "2026-11")
    assert [(r["currency"], r["clicks"], r["uv"], r["orders"], r["gmv_minor"], r["commission_minor"], r["conversion"],
             r["uv_yield_minor"]) for r in rows] == [("CNY", 2, 2, 1, 10_000, 1_000, 0.5, 5_000),
                                                     ("USD", 2, 2, 1, 5_000, 500, 0.5, 2_500)]
    assert iso("2026-11-02T10:00:00Z") == "2026-11-02T10:00:00.000Z"
