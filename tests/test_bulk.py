"""The independent SQL recomputation (`replay.bulk`) against the fold, as `refledger verify` uses it.

An auditor's question: "if I recompute every shop's commission from the
stored events with plain SQL, do I get what the ledger says?" The worked
scenarios must give their published totals by SQL alone; generated alliances
(late clicks, late agreements, suspensions, refunds, payouts, adjustments,
bad events, all shuffled) must give the fold's totals; and a ledger forged so
that its chains and transactions still check out must fail on the SQL check,
naming the order that was changed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refledger.ledger.chain import GENESIS, canonical_values, chain_hash
from refledger.cli import cli
from refledger.schemas.event_files import write_event_file
from refledger.replay.bulk import compare
from refledger.replay.verify import HASHED
from tests.ledger_support import Alliance
from tests.scenario_files import SCENARIOS
from tests.test_ledger_properties import HOUR, SHOPS, T0, alliances, iso
from tests.examples import examples
from tests.test_closing import agreement_story, refund_story

EARNED = ("earned_pending", "earned_payable", "received")
OWED = ("owed_pending", "owed_payable", "paid_out")


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def ingest(records_or_file, db: Path) -> Path:
    source = records_or_file
    if not isinstance(source, Path):
        source = db.with_suffix(".jsonl")
        write_event_file(records_or_file, source)
    run("ingest", source, "--db", db)
    return db


def sql_earned(db: Path) -> dict:
    """What each shop earns by the SQL recomputation, which must agree with the fold."""
    problems, result = recompute(db)
    assert problems == []
    return {r["shop_id"]: r["earned"] for r in result.balances if r["earned"]}


def refunds_in(db: Path) -> tuple[list, int]:
    """The ledger's quarantine rows (event id, reason, late) in log order, and the refunds it folded."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return (con.execute('SELECT event_id, reason, late FROM quarantine ORDER BY "offset"').fetchall(),
                con.execute("SELECT count(*) FROM folded_events WHERE type = 'refund'").fetchone()[0])
    finally:
        con.close()


def recompute(db: Path):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return compare(con)
    finally:
        con.close()


@pytest.mark.parametrize("scenario", sorted(SCENARIOS.glob("*.jsonl")), ids=lambda p: p.stem)
def test_sql_alone_gives_each_scenarios_published_totals(scenario, tmp_path):
    name = scenario.stem
    db = ingest(scenario, tmp_path / "ledger.duckdb")
    problems, result = recompute(db)
    assert problems == []
    expected = json.loads((SCENARIOS / f"{name}.expected-balances.json").read_text(encoding="utf-8"))
    by_sql = {(r["shop_id"], r["currency"]): r for r in result.balances}
    for row in expected:
        key = (row["shop_id"], row["currency"])
        sql = by_sql.get(key, {"earned": 0, "owed": 0, "received": 0, "paid_out": 0})
        if row["currency"] == "CLICK":
            assert (sql["earned"], sql["owed"]) == (row["swap_given"], row["swap_received"]), key
        else:
            assert sql["earned"] == sum(row[k] for k in EARNED), key
            assert sql["owed"] == sum(row[k] for k in OWED), key
            assert (sql["received"], sql["paid_out"]) == (row["received"], row["paid_out"]), key


@st.composite
def busy_alliances(draw):
    """A generated alliance plus a settlement, payouts, adjustments and some bad events, shuffled."""
    head, alliance_events, shop_events = draw(alliances())
    a = Alliance("gen")
    extra = [a.settlement(iso(T0 + 24 * 5 * HOUR), iso(T0 + draw(st.integers(0, 24 * 10)) * HOUR),
                          event_id="settle-1")]
    for n in range(draw(st.integers(0, 3))):
        merchant, referrer = draw(st.sampled_from(SHOPS)), draw(st.sampled_from(SHOPS))
        amount = draw(st.integers(-300, 300))
        if draw(st.booleans()):
            extra.append(a.adjustment(iso(T0 + n * HOUR), merchant, referrer, amount, "goodwill",
                                      adjustment_id=f"adj-{n}", event_id=f"adj-{n}"))
        else:
            extra.append(a.payout(iso(T0 + n * HOUR), merchant, referrer, abs(amount), payout_id=f"pay-{n}",
                                  event_id=f"pay-{n}"))
    extra.append(a.click(iso(T0), "s-ghost", "s-a", "v1", event_id="bad-ghost"))
    extra.append(a.order(iso(T0 + HOUR), "s-a", "v1", "o0", [(1, 100, "toys")], event_id="bad-dup-order"))
    tail = alliance_events + shop_events + extra
    draw(st.randoms(use_true_random=False)).shuffle(tail)
    return head + tail


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(busy_alliances())
def test_sql_recomputes_the_folds_totals_on_generated_alliances(records):
    with tempfile.TemporaryDirectory() as tmp:
        db = ingest(records, Path(tmp) / "ledger.duckdb")
        problems, _result = recompute(db)
    assert problems == []


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    from refledger.producers.simulate import SimulationConfig, simulate

    root = tmp_path_factory.mktemp("bulk")
    return ingest(list(simulate(SimulationConfig(seed=9, visitors=400, days=35))), root / "ledger.duckdb")


def test_a_simulated_month_recomputes_exactly_and_verify_says_so(simulated):
    problems, result = recompute(simulated)
    assert problems == []
    assert result.subjects > 100, "the month must have earned something for the check to mean anything"
    assert {r["currency"] for r in result.balances} >= {"CNY", "CLICK"}
    report = json.loads(run("verify", "--db", simulated, "--format", "json").output)
    assert report["ok"] and "bulk" in report["checks"]


def _rehash(con) -> None:
    """Recompute every chain, recorded checkpoint and balance total as a thorough forger would, so
    that every chain and balance check passes on a doctored ledger."""
    cols = ", ".join(f'"{c}"' for c in HASHED)
    rows = con.execute(f"SELECT topic, partition, {cols} FROM entries ORDER BY topic, partition, seq").fetchall()
    prev, log = GENESIS, None
    for row in rows:
        if (row[0], row[1]) != log:
            prev, log = GENESIS, (row[0], row[1])
        digest = chain_hash(prev, canonical_values(row[2:]))
        con.execute("UPDATE entries SET prev_hash = ?, hash = ? WHERE entry_id = ?", [prev, digest, row[2]])
        prev = digest
    con.execute("""UPDATE checkpoints SET head = (SELECT hash FROM entries e WHERE e.topic = checkpoints.topic
                   AND e.partition = checkpoints.partition AND e.seq = checkpoints.entries - 1)""")
    # and the per-batch balance moves and their running totals, which balances are read from
    con.execute("DELETE FROM balance_moves")
    con.execute("""INSERT INTO balance_moves SELECT shop_id, currency, account, sum(amount)::HUGEINT, batch_id
                   FROM entries GROUP BY ALL""")
    con.execute("""CREATE TEMP TABLE totals_at AS SELECT DISTINCT batch_id FROM balance_totals""")
    con.execute("DELETE FROM balance_totals")
    con.execute("""INSERT INTO balance_totals SELECT m.shop_id, m.currency, m.account, sum(m.amount), t.batch_id
                   FROM totals_at t JOIN balance_moves m ON m.batch_id <= t.batch_id GROUP BY ALL""")


def test_a_forged_but_consistent_ledger_fails_the_sql_check_naming_the_order(simulated, tmp_path):
    forged = tmp_path / "forged.duckdb"
    shutil.copy(simulated, forged)
    con = duckdb.connect(str(forged))
    [(txn, subject, referrer)] = con.execute(
        """SELECT txn_id, subject, shop_id FROM entries
           WHERE subject LIKE 'order:%' AND account = 'earned_pending' AND amount > 0
           ORDER BY seq LIMIT 1""").fetchall()
    # Ten more for the referrer, ten more owed by the merchant: still balanced, re-chained.
    con.execute("UPDATE entries SET amount = amount + 10 WHERE txn_id = ? AND account = 'earned_pending'", [txn])
    con.execute("UPDATE entries SET amount = amount - 10 WHERE txn_id = ? AND account = 'owed_pending'", [txn])
    _rehash(con)
    con.close()
    report = json.loads(run("verify", "--db", forged, "--format", "json", code=1).output)
    assert {p["check"] for p in report["problems"]} == {"bulk"}, report["problems"]
    details = " ".join(f"{p['where']} {p['detail']}" for p in report["problems"])
    assert f"shop {referrer} CNY" in details and subject in details


def test_a_shop_missing_from_the_folds_entries_is_named_with_each_sum_sql_finds(simulated, tmp_path):
    """Every entry of one merchant, and every swap credit one shop received, deleted from a copy: the SQL
    check names what the fold then lacks, each sum by its name, the fold's side as 0."""
    cut = tmp_path / "cut.duckdb"
    shutil.copy(simulated, cut)
    con = duckdb.connect(str(cut))
    [(merchant,)] = con.execute(
        """SELECT shop_id FROM entries WHERE currency = 'CNY' AND account IN ('owed_pending', 'owed_payable')
           GROUP BY shop_id HAVING sum(amount) <> 0 ORDER BY shop_id LIMIT 1""").fetchall()
    [(swapper,)] = con.execute(
        """SELECT shop_id FROM entries WHERE currency = 'CLICK' AND account = 'swap_received'
           GROUP BY shop_id HAVING sum(amount) <> 0 ORDER BY shop_id LIMIT 1""").fetchall()
    con.execute("DELETE FROM entries WHERE shop_id = ? AND currency = 'CNY'", [merchant])
    con.execute("DELETE FROM entries WHERE shop_id = ? AND currency = 'CLICK' AND account = 'swap_received'", [swapper])
    problems, result = compare(con)
    con.close()
    sql = {(r["shop_id"], r["currency"]): r for r in result.balances}
    owed, received = sql[(merchant, "CNY")]["owed"], sql[(swapper, "CLICK")]["owed"]
    assert owed != 0 and received != 0
    said = set(problems)
    assert (f"shop {merchant} CNY", f"owed: the fold has 0, SQL recomputes {owed:,}") in said
    assert (f"shop {swapper} CLICK", f"swap_received: the fold has 0, SQL recomputes {received:,}") in said
    assert result.sql_seconds > 0 and result.decode_seconds > 0  # what bench/pipeline.py reports


def test_two_cpc_clicks_sharing_an_id_across_a_close_recompute_alike(tmp_path):
    # SPEC §9a: after the close, c-h comes back on a new click; both earn, and the SQL agrees entry for entry
    from tests.test_closing import cpc_story

    a = Alliance("harbor-fair")
    db = ingest(cpc_story(a), tmp_path / "ledger.duckdb")
    assert sql_earned(db) == {"h-hats": 100}
    assert run("replay", "--db", db).exit_code == 0


def test_an_agreement_whose_id_comes_back_after_a_close_prices_once_at_its_own_rates(tmp_path):
    # SPEC §9a: the alliance's default terms (10%, toys 30%) are closed with October's first half; the same
    # event id then carries version 2 (20%, toys 50%). An order of toys 1000 + care 1000 earns 500 + 200,
    # and the SQL recomputation prices it once, at version 2's rates, as the fold does.
    db = ingest(agreement_story(), tmp_path / "ledger.duckdb")
    assert sql_earned(db) == {"h-hats": 700}
    assert run("verify", "--db", db).exit_code == 0


def test_a_refund_id_that_comes_back_after_a_close_and_is_given_up_leaves_the_first_refund_counted(tmp_path):
    # SPEC §9a: refund rf of O0 (half of a 2000 order) is closed with October's first half; the id then comes
    # back on a refund of 5000 for O2, which waits for its order and is given up when O2 turns out to be 1000
    # (refund_exceeds_order). O0's refund still halves its commission, in the fold and in the SQL alike.
    db = ingest(refund_story(), tmp_path / "ledger.duckdb")
    assert refunds_in(db) == ([("rf", "refund_exceeds_order", True)], 1)  # O0's refund folded
    assert sql_earned(db) == {"h-hats": 100 + 100}
    assert run("verify", "--db", db).exit_code == 0


def test_a_refund_given_up_after_a_conflicting_copy_of_it_was_refused_is_the_one_left_out(tmp_path):
    # refund rf of 5000 waits for O2; a second rf with other content is refused (conflicting_duplicate); O2
    # comes at 1000 and gives the waiting refund up. Neither refund counts: O2 earns its full 100.
    a = Alliance("harbor-fair")
    log = [a.member(s, at="2026-10-01T00:00") for s in ("h-hats", "i-ink")]
    log += [a.agreement(at="2026-10-01T00:00", rate_bp=1000),
            a.refund("2026-10-20T00:00", "i-ink", "O2", 5000, event_id="rf"),
            a.refund("2026-10-20T00:00", "i-ink", "O2", 4000, event_id="rf"),
            a.click("2026-10-20T00:00", "h-hats", "i-ink", "v2"),
            a.order("2026-10-20T01:00", "i-ink", "v2", "O2", [(1, 1000, "toys")])]
    db = ingest(log, tmp_path / "ledger.duckdb")
    assert refunds_in(db) == ([("rf", "conflicting_duplicate", False), ("rf", "refund_exceeds_order", True)], 0)
    assert sql_earned(db) == {"h-hats": 100}
    assert run("verify", "--db", db).exit_code == 0
    explained = json.loads(run("explain", "--db", db, "--order", "O2", "--format", "json").output)
    assert [r["status"] for r in explained["refunds"]] == ["quarantined: refund_exceeds_order",
                                                          "quarantined: conflicting_duplicate"]


def test_explain_says_the_refund_of_a_closed_order_applied_though_its_id_came_back_and_was_given_up(tmp_path):
    # the story of the refund id used again after a close: O0's refund applied, O2's was given up
    db = ingest(refund_story(), tmp_path / "ledger.duckdb")
    first = json.loads(run("explain", "--db", db, "--order", "O0", "--format", "json").output)
    second = json.loads(run("explain", "--db", db, "--order", "O2", "--format", "json").output)
    assert [r["status"] for r in first["refunds"]] == ["applied"]
    assert [r["status"] for r in second["refunds"]] == ["quarantined: refund_exceeds_order"]


def test_orders_whose_merchant_and_id_read_alike_joined_by_a_colon_are_explained_and_recomputed_apart(tmp_path):
    a = Alliance("colons")
    log = [a.member(s, at="2026-10-01T00:00") for s in ("a", "a:b", "r")]
    log += [a.agreement(at="2026-10-01T00:00", rate_bp=1000),
            a.click("2026-11-02T00:00", "r", "a:b", "v1"),
            a.order("2026-11-02T01:00", "a:b", "v1", "c", [(1, 1000, "toys")]),
            a.click("2026-11-02T00:00", "r", "a", "v2"),
            a.order("2026-11-02T01:00", "a", "v2", "b:c", [(1, 3000, "toys")]),
            a.member("r", at="2026-11-02T00:30", status="suspended")]  # late: c-… clicks still earlier
    db = ingest(log, tmp_path / "ledger.duckdb")
    assert run("verify", "--db", db).exit_code == 0
    explained = json.loads(run("explain", "--db", db, "--order", "c", "--format", "json").output)
    assert [(e["shop_id"], e["amount"]) for e in explained["entries"]] == [("r", 100), ("a:b", -100)]
    members = json.loads(run("members", "--db", db, "--format", "json").output)
    assert {m["shop_id"]: m["commission_earned"] for m in members if m["shop_id"] == "r"} == {"r": 400}
