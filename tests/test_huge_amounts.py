"""Huge amounts: SPEC §2 bounds every amount, and no sum over any number of events overflows.

Every ``*_minor`` amount is at most 10^12 minor units in absolute value and a
quantity at most 10^6; one more is ``schema_invalid`` whichever way the event
comes (a JSON line, an Avro message, the fixed-layout readers, the
consumer's decode step). Amounts at the bound are events like any other, and
an alliance whose balances pass 2^63 fen (each order at the bound, priced at
a rate of 20 million percent) still gets exact balances, statements, a
verified ledger and a replay that matches.
"""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.schemas import codec
from refledger.schemas.codec import SchemaInvalid
from refledger.schemas.event_files import write_event_file
from refledger.schemas.traffic import read_purchase
from tests.codec_support import encode_unchecked
from tests.readers_support import SAMPLES, _consumer_step, disagreements

BOUND = 10**12
MAX_QUANTITY = 10**6


def _order(lines: list[tuple[int, int]], total: int) -> dict:
    sample = SAMPLES["order"]
    return {**sample, "order": {**sample["order"], "total_minor": total, "lines": [
        {"sku": f"s{n}", "category": "care", "quantity": quantity, "unit_price_minor": price}
        for n, (quantity, price) in enumerate(lines)]}}


def _amount(kind: str, amount: int) -> dict:
    sample = SAMPLES["adjustment" if kind == "adjustment" else kind]
    return {**sample, kind: {**sample[kind], "amount_minor": amount}}


def _cpa(amount: int) -> dict:
    sample = SAMPLES["agreement-cpc"]
    return {**sample, "agreement": {**sample["agreement"], "model": "cpa", "amount_minor": amount}}


# (field the bound applies to, the event at the bound, the event one past it)
CASES = [
    ("order.lines[0].unit_price_minor", _order([(1, BOUND)], BOUND), _order([(1, BOUND + 1)], BOUND)),
    ("order.lines[0].quantity", _order([(MAX_QUANTITY, 1)], MAX_QUANTITY),
     _order([(MAX_QUANTITY + 1, 1)], MAX_QUANTITY + 1)),
    ("order.total_minor", _order([(1, BOUND - 1), (1, 1)], BOUND), _order([(1, BOUND), (1, 1)], BOUND + 1)),
    ("refund.amount_minor", _amount("refund", BOUND), _amount("refund", BOUND + 1)),
    ("payout.amount_minor", _amount("payout", BOUND), _amount("payout", BOUND + 1)),
    ("adjustment.amount_minor", _amount("adjustment", BOUND), _amount("adjustment", BOUND + 1)),
    ("adjustment.amount_minor", _amount("adjustment", -BOUND), _amount("adjustment", -BOUND - 1)),
    ("agreement.amount_minor", _cpa(BOUND), _cpa(BOUND + 1)),
]
IDS = ["unit_price", "quantity", "total", "refund", "payout", "adjustment", "negative-adjustment", "cpa"]


@pytest.mark.parametrize(("field", "at_bound", "beyond"), CASES, ids=IDS)
def test_an_amount_at_the_bound_is_an_event_and_one_more_is_schema_invalid_on_every_path(field, at_bound, beyond):
    # JSON Lines
    line = json.dumps(codec.record_to_json(at_bound))
    assert codec.record_from_json(line) == codec.validate_record(at_bound)
    beyond_line = line.replace(str(_value(at_bound, field)), str(_value(beyond, field)), 1)
    if field == "order.total_minor":
        beyond_line = json.dumps({**json.loads(line), "order": {
            **json.loads(line)["order"], "lines": beyond["order"]["lines"], "total_minor": BOUND + 1}})
    with pytest.raises(SchemaInvalid, match=rf"^{_pattern(field)}: "):
        codec.record_from_json(beyond_line)
    # Avro, as the codec and as every other reader reads it
    message = codec.encode(at_bound)
    assert codec.decode(message) == codec.validate_record(at_bound)
    with pytest.raises(SchemaInvalid, match=rf"^{_pattern(field)}: "):
        codec.encode(beyond)
    damaged = encode_unchecked(beyond)
    with pytest.raises(SchemaInvalid, match=rf"^{_pattern(field)}: "):
        codec.decode(damaged)
    assert disagreements(message) == [] and disagreements(damaged) == []
    if at_bound["type"] in ("order", "refund"):
        assert read_purchase(message, codec.CURRENT_FINGERPRINT) == codec.decode(message), "the fast reader reads it"
        assert read_purchase(damaged, codec.CURRENT_FINGERPRINT) is None
    item, row = _consumer_step(damaged, kafka_records=True)
    assert (item, row) == ("schema_invalid", None)


def _value(record: dict, field: str) -> int:
    payload = record[record["type"]]
    if field.startswith("order.lines"):
        return payload["lines"][0][field.rsplit(".", 1)[1]]
    return payload[field.rsplit(".", 1)[1]]


def _pattern(field: str) -> str:
    return field.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]")


# ---------------------------------------------------------------- sums past 2^63

ORDERS = 50
RATE_BP = 2_000_000_000          # 20,000,000 %: an Avro int; SPEC bounds amounts, not rates
COMMISSION = BOUND * RATE_BP // 10_000   # 2 × 10^17 fen per order: one entry still fits 64 bits
REFUND = BOUND // 2                      # half of one order back: 10^17 reversed


def _at(day: int, minute: int = 0) -> str:
    return f"2026-11-{day:02d}T10:{minute:02d}:00.000Z"


def alliance_past_int64() -> list[dict]:
    def event(event_id, kind, at, shop, payload, visitor="v-1"):
        return {"event_id": event_id, "type": kind, "occurred_at": at, "alliance_id": "big", "shop_id": shop,
                "visitor_id": visitor if shop != "alliance" else None, kind: payload}

    events = [event(f"m-{shop}", "member", "2026-10-30T00:00:00.000Z", "alliance",
                    {"member_shop_id": shop, "status": "active"}) for shop in ("li-kids", "wang-bath")]
    events.append(event("a-1", "agreement", "2026-10-31T00:00:00.000Z", "alliance", {
        "agreement_id": "generous", "version": 1, "effective_from": "2026-11-01T00:00:00.000Z",
        "merchant_shop_id": "*", "referrer_shop_id": "*", "model": "cps", "rate_bp": RATE_BP}))
    events.append(event("c-1", "click", _at(1), "li-kids", {
        "referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "banner"}))
    for n in range(ORDERS):
        events.append(event(f"o-{n}", "order", _at(1, n + 1), "wang-bath", {
            "order_id": f"o{n}", "merchant_shop_id": "wang-bath", "currency": "CNY",
            "lines": [{"sku": "gold-crib", "category": "care", "quantity": 1, "unit_price_minor": BOUND}],
            "total_minor": BOUND}))
    events.append(event("r-1", "refund", _at(2), "wang-bath", {
        "order_id": "o0", "refund_id": "r1", "merchant_shop_id": "wang-bath", "currency": "CNY",
        "amount_minor": REFUND}))
    events.append(event("s-1", "settlement", "2026-12-01T00:00:00.000Z", "alliance", {
        "settlement_id": "2026-11", "period_end": "2026-11-30T15:59:59.999Z"}))
    events.append(event("x-1", "close", "2026-12-01T00:00:01.000Z", "alliance", {  # the fold is snapshotted
        "close_id": "through-2026-11", "closed_through": "2026-11-30T15:59:59.999Z"}))
    return events


def payout(event_id: str, amount: int) -> dict:
    return {"event_id": event_id, "type": "payout", "occurred_at": "2026-12-05T00:00:00.000Z", "alliance_id": "big",
            "shop_id": "alliance", "visitor_id": None, "payout": {
                "payout_id": event_id, "merchant_shop_id": "wang-bath", "referrer_shop_id": "li-kids",
                "currency": "CNY", "amount_minor": amount}}


def run(*args, code: int = 0) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "250"})
    assert result.exit_code == code, result.output
    return result.output


def test_balances_past_two_to_the_63_are_exact_everywhere(tmp_path):
    events = tmp_path / "big.jsonl"
    events.write_text("".join(codec.record_to_json_line(codec.record_from_json(e)) + "\n"
                              for e in alliance_past_int64()), encoding="utf-8")
    db = tmp_path / "big.duckdb"
    run("ingest", events, "--db", db)
    earned = ORDERS * COMMISSION - COMMISSION // 2
    assert earned > 2**63

    rows = {(r["shop_id"], r["currency"]): r for r in json.loads(run("balances", "--db", db, "--format", "json"))}
    assert rows[("li-kids", "CNY")]["earned_payable"] == earned
    assert rows[("wang-bath", "CNY")]["owed_payable"] == earned
    assert "¥99,000,000,000,000,000.00" in run("balances", "--db", db)
    assert f"li-kids,CNY,0,{earned}," in run("balances", "--db", db, "--format", "csv")

    result = json.loads(run("verify", "--db", db, "--format", "json"))
    assert result["ok"], result["problems"]
    assert "bulk" in result["checks"]
    run("replay", "--db", db)

    statement = json.loads(run("statement", "--db", db, "--shop", "li-kids", "--period", "2026-11",
                               "--format", "json"))
    closing = {row["currency"]: row for row in statement["closing"]}
    assert closing["CNY"]["earned_payable"] == earned
    [netting] = statement["netting"]
    assert netting["net"] == earned and netting["payer"] == "wang-bath"
    assert "li-kids" in run("statement", "--db", db, "--shop", "li-kids", "--period", "2026-11")

    sheet = json.loads(run("sheet", "--db", db, "--period", "2026-11", "--format", "json"))
    assert [(t["from"], t["to"], t["amount_minor"]) for t in sheet["transfers"]] == [("wang-bath", "li-kids", earned)]
    assert "¥99,000,000,000,000,000.00" in run("sheet", "--db", db)


def test_a_fold_owing_past_two_to_the_63_is_snapshotted_and_restarts_exactly(tmp_path):
    """The close snapshots the fold, payable per pair and all; a later run starts from the snapshot
    and pays out against the exact payable."""
    events = tmp_path / "big.jsonl"
    write_event_file([codec.record_from_json(e) for e in alliance_past_int64()], events)
    db = tmp_path / "big.duckdb"
    run("ingest", events, "--db", db)
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(*) FROM snapshots").fetchone() == (1,), "the close took a snapshot"
    con.close()
    later = tmp_path / "payouts.jsonl"
    write_event_file([codec.record_from_json(payout("p-1", BOUND))], later)
    run("ingest", later, "--db", db)
    rows = {(r["shop_id"], r["currency"]): r for r in json.loads(run("balances", "--db", db, "--format", "json"))}
    assert rows[("li-kids", "CNY")]["received"] == BOUND
    assert rows[("li-kids", "CNY")]["earned_payable"] == ORDERS * COMMISSION - COMMISSION // 2 - BOUND
    assert json.loads(run("quarantine", "--db", db, "--format", "json")) == []
    assert json.loads(run("verify", "--db", db, "--format", "json"))["ok"]


def test_money_for_people_is_exact_however_many_digits():
    """Decimal's default 28 digits would round a sum of a billion orders at the bound, or fail."""
    from refledger.reports.money import as_decimal, format_money

    huge = 10**30 + 1
    assert format_money(huge, "CNY") == "¥10,000,000,000,000,000,000,000,000,000.01"
    assert format_money(-huge, "JPY") == "-JP¥1,000,000,000,000,000,000,000,000,000,001"
    assert as_decimal(huge, "BHD") == Decimal("1000000000000000000000000000.001")
