"""The operator's month end against a real broker: `refledger settle` publishes the month's settlement
and close once, a second run says what was published before, and the dry run's figures are what the
settlement then makes payable."""

from __future__ import annotations

import json
from collections import Counter

import duckdb
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.producers.operator import settlement_record
from refledger.producers.publisher import AlliancePublisher
from refledger.schemas import codec
from refledger.schemas.periods import alliance_zone
from tests.ledger_support import Alliance, ms
from tests.pipeline_support import publish, read_topic

SHANGHAI = alliance_zone("Asia/Shanghai")


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def lantern_fair():
    """k-kites, l-lamps and m-mugs in November 2026, Beijing time (UTC+8)."""
    a = Alliance("lantern")
    return [
        a.member("k-kites", "2026-10-01T00:00"), a.member("l-lamps", "2026-10-01T00:00"),
        a.member("m-mugs", "2026-10-01T00:00"),
        a.agreement(rate_bp=1000, window=7, hold=5),                                   # cps 10 %, hold 5 days
        a.agreement(agreement_id="lamps-per-click", merchant="l-lamps", referrer="k-kites", model="cpc",
                    amount_minor=30, currency="CNY", hold=0),
        a.agreement(agreement_id="mugs-per-order", merchant="m-mugs", model="cpa", amount_minor=500,
                    currency="CNY", hold=10),
        # a cpc click, held 0 days: k-kites earns ¥0.30 from l-lamps
        a.click("2026-11-10T02:00", "k-kites", "l-lamps", "v1"),
        # l-lamps refers o1 (¥100.00) to k-kites, 10 %, then ¥20.00 is refunded: ¥8.00, held 5 days
        a.click("2026-11-12T02:00", "l-lamps", "k-kites", "v2"),
        a.order("2026-11-12T02:10", "k-kites", "v2", "o1", [(1, 10000, "kites")]),
        a.refund("2026-11-14T02:00", "k-kites", "o1", 2000),
        # k-kites refers o2 to m-mugs: cpa ¥5.00, held 10 days (11-15 is before 11-20 23:59 Beijing)
        a.click("2026-11-15T02:00", "k-kites", "m-mugs", "v3"),
        a.order("2026-11-15T03:00", "m-mugs", "v3", "o2", [(1, 3000, "mugs")]),
        # ...and o3 on 11-25: still held at November's end
        a.click("2026-11-25T02:00", "k-kites", "m-mugs", "v4"),
        a.order("2026-11-25T03:00", "m-mugs", "v4", "o3", [(1, 3000, "mugs")]),
        # m-mugs refers o4 (¥40.00) to l-lamps on 11-24: ¥4.00, 5 days later is 11-29
        a.click("2026-11-24T02:00", "m-mugs", "l-lamps", "v5"),
        a.order("2026-11-24T03:00", "l-lamps", "v5", "o4", [(1, 4000, "lamps")]),
        # o5 at 02:00 Beijing time on December 1st is December's
        a.click("2026-11-30T17:00", "l-lamps", "k-kites", "v6"),
        a.order("2026-11-30T18:00", "k-kites", "v6", "o5", [(1, 50000, "kites")]),
    ]


def consume(bootstrap, topic, db):
    run("consume", "--bootstrap-servers", bootstrap, "--db", db, "--topic", topic, "--group", f"{topic}-ledger",
        "--until-idle", 3, "--format", "json")


def month_end_messages(bootstrap, topic) -> Counter:
    """(partition, event id) of every settlement and close in the topic, counted."""
    found = Counter()
    for partition, messages in read_topic(bootstrap, topic).items():
        for _offset, value in messages:
            record = codec.decode(value)
            if record["type"] in ("settlement", "close"):
                found[(partition, record["event_id"])] += 1
    return found


def settle_entries(db, event_id) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            """SELECT counterparty_shop_id, shop_id, currency, sum(amount)::BIGINT FROM entries
               WHERE event_id = ? AND role = 'settle' AND account = 'earned_payable'
               GROUP BY ALL ORDER BY ALL""", [event_id]).fetchall()
    finally:
        con.close()


def ledger_counts(db) -> tuple:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return tuple(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("events", "entries", "checkpoints", "batches"))
    finally:
        con.close()


@pytest.mark.kafka
def test_the_month_end_is_published_once_and_the_dry_run_foretells_it(kafka_bootstrap, kafka_topic, tmp_path):
    publish(kafka_bootstrap, kafka_topic, lantern_fair())
    db = tmp_path / "lantern.duckdb"
    consume(kafka_bootstrap, kafka_topic, db)
    before = ledger_counts(db)

    # the dry run reads the ledger only: nothing published, nothing written
    dry = json.loads(run("settle", "--period", "2026-11", "--dry-run", "--db", db, "--format", "json"))
    assert dry["dry_run"] is True and dry["published"] == []
    assert dry["preview"]["period_end"] == "2026-11-30T15:59:59.999Z"
    due = {(m["from"], m["to"], m["currency"]): m["amount_minor"] for m in dry["preview"]["becomes_payable"]}
    assert due == {("l-lamps", "k-kites", "CNY"): 30, ("k-kites", "l-lamps", "CNY"): 800,
                   ("m-mugs", "k-kites", "CNY"): 500, ("l-lamps", "m-mugs", "CNY"): 400}
    text = run("settle", "--period", "2026-11", "--dry-run", "--db", db)
    assert "试算：未发布任何事件" in text and "k-kites 欠 l-lamps ¥8.00 转为应付（1 笔）" in text
    assert month_end_messages(kafka_bootstrap, kafka_topic) == Counter()
    assert ledger_counts(db) == before

    # the month end: settlement of November and the books closed through October, to every partition
    out = run("settle", "--period", "2026-11", "--close-through", "2026-10", "--bootstrap-servers",
              kafka_bootstrap, "--topic", kafka_topic, "--db", db)
    assert "已发布 settlement-2026-11（结算截止 2026-11-30 23:59）到 6 个分区" in out
    assert "已发布 close-through-2026-10（关账至 2026-10-31 23:59）到 6 个分区" in out
    published = month_end_messages(kafka_bootstrap, kafka_topic)
    month_end = ("settlement-2026-11", "close-through-2026-10")
    assert published == Counter({(p, e): 1 for p in range(6) for e in month_end})
    records = {codec.decode(v)["event_id"]: codec.decode(v) for _, v in read_topic(kafka_bootstrap, kafka_topic)[0]}
    settlement, close = records["settlement-2026-11"], records["close-through-2026-10"]
    assert settlement["settlement"] == {"settlement_id": "2026-11", "period_end": ms("2026-11-30T15:59:59.999")}
    assert settlement["occurred_at"] == ms("2026-11-30T16:00:00.000") and settlement["alliance_id"] == "lantern"
    assert close["close"] == {"close_id": "through-2026-10", "closed_through": ms("2026-10-31T15:59:59.999")}

    # a second run publishes nothing and says what was published before
    again = run("settle", "--period", "2026-11", "--close-through", "2026-10", "--bootstrap-servers",
                kafka_bootstrap, "--topic", kafka_topic, "--format", "json")
    report = json.loads(again)
    assert [e["published_to"] for e in report["published"]] == [[], []]
    assert [sorted(p["partition"] for p in e["published_before"]) for e in report["published"]] == [list(range(6))] * 2
    assert "此前已发布到 6 个分区" in run("settle", "--period", "2026-11", "--bootstrap-servers", kafka_bootstrap,
                                         "--topic", kafka_topic)
    assert month_end_messages(kafka_bootstrap, kafka_topic) == published

    # once consumed, the settlement made payable exactly what the dry run said, and the sheet is the one it showed
    consume(kafka_bootstrap, kafka_topic, db)
    assert {(payer, payee, c): a for payer, payee, c, a in settle_entries(db, "settlement-2026-11")} == due
    sheet = json.loads(run("sheet", "--db", db, "--period", "2026-11", "--format", "json"))
    assert sheet["settlement"]["event_id"] == "settlement-2026-11" and sheet["logs_without_settlement"] == []
    assert sheet["transfers"] == dry["preview"]["sheet"]["transfers"]
    after = run("settle", "--period", "2026-11", "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic,
                "--db", db)
    assert "结算单 · 2026-11 结算后（结算截止 2026-11-30 23:59，Asia/Shanghai）" in after
    assert "k-kites 付给 l-lamps ¥7.70" in after  # ¥8.00 owed to l-lamps less its ¥0.30 per click

    # the same month end in another time zone would be other events under the same ids: refused
    clash = run("settle", "--period", "2026-11", "--tz", "UTC", "--bootstrap-servers", kafka_bootstrap,
                "--topic", kafka_topic, code=1)
    assert "settlement-2026-11 was published before with other content" in clash
    assert month_end_messages(kafka_bootstrap, kafka_topic) == published


@pytest.mark.kafka
def test_a_month_end_that_reached_only_some_partitions_is_completed(kafka_bootstrap, kafka_topic):
    publish(kafka_bootstrap, kafka_topic, lantern_fair()[:4])
    with AlliancePublisher(kafka_bootstrap, kafka_topic) as pub:
        pub.publish(settlement_record("lantern", "2026-10", SHANGHAI), partitions=[2])
    out = run("settle", "--period", "2026-10", "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic,
              "--locale", "en_US")
    assert "settlement-2026-10 had reached 1 partitions; published to the other 5 now" in out
    assert month_end_messages(kafka_bootstrap, kafka_topic) == Counter({(p, "settlement-2026-10"): 1
                                                                        for p in range(6)})


def test_a_month_that_has_not_ended_is_refused_unless_forced(tmp_path):
    out = run("settle", "--period", "2099-12", "--bootstrap-servers", "127.0.0.1:1", code=1)
    assert "2099-12 has not ended yet in Asia/Shanghai (it ends 2099-12-31T15:59:59.999Z)" in out
    assert "--force" in out


def test_what_settle_refuses_before_it_reaches_kafka(tmp_path):
    assert "close only months that have been settled" in run(
        "settle", "--period", "2026-10", "--close-through", "2026-11", "--bootstrap-servers", "127.0.0.1:1",
        code=1)
    assert "give --db" in run("settle", "--period", "2026-10", "--dry-run", code=2)
    assert "YYYY-MM" in run("settle", "--period", "2026-1", "--dry-run", "--db", tmp_path / "x.duckdb", code=1)
    assert "unknown time zone" in run("settle", "--period", "2026-10", "--tz", "Mars/Olympus", code=2)
    assert "no ledger at" in run("settle", "--period", "2026-10", "--bootstrap-servers", "127.0.0.1:1", "--db",
                                 tmp_path / "missing.duckdb", code=1)


def test_a_settlement_is_derived_from_its_period_alone():
    assert settlement_record("lantern", "2026-11", SHANGHAI) == settlement_record("lantern", "2026-11", SHANGHAI)
    assert codec.encode(settlement_record("lantern", "2026-11", SHANGHAI)) == \
        codec.encode(settlement_record("lantern", "2026-11", alliance_zone("Asia/Shanghai")))
    december = settlement_record("lantern", "2026-12", SHANGHAI)
    assert december["settlement"]["period_end"] == ms("2026-12-31T15:59:59.999")
