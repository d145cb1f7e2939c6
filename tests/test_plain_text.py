"""Everything that came from an event is printed as plain text (STYLE §16).

A shop id, event id, order id or visitor id is whatever an integration wrote;
the tables and lines meant for people must show it exactly as written: not
read as rich markup (`[bold red]…[/]` restyling a name, or a stray `[/]`
crashing the table), not turned into an emoji (`:moneybag:`), and never
passed to the terminal as a control sequence (ESC clears the screen or
recolours what follows): a control character is shown escaped, as `\\x1b`.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli

LOUD = "[bold red]mallory[/]"          # a member whose name is markup
CRASH = "[/bold]o-1"                   # an order id that closes a tag never opened
CLICK = "[link=http://x]c-1[/link]"
VISITOR = ":moneybag:v1"
ESCAPE = "e\x1b[2Jghost"               # an emitter id that would clear the terminal
STRAY = "[/]refund"


def _event(event_id, kind, at, shop, visitor, payload):
    return {"event_id": event_id, "type": kind, "occurred_at": at, "alliance_id": "[i]night[/i]",
            "shop_id": shop, "visitor_id": visitor, kind: payload}


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """li-kids and a member named like markup; mallory refers a visitor who buys at li-kids; a ghost
    that never joined clicks (quarantined); a refund waits for an order that never comes (parked)."""
    folder = tmp_path_factory.mktemp("plain")
    events = [
        _event("m-1", "member", "2026-10-31T00:00:00.000Z", "alliance", None,
               {"member_shop_id": "li-kids", "status": "active"}),
        _event("m-2", "member", "2026-10-31T00:00:00.000Z", "alliance", None,
               {"member_shop_id": LOUD, "status": "active"}),
        _event("a-1", "agreement", "2026-10-31T12:00:00.000Z", "alliance", None,
               {"agreement_id": "[b]default", "version": 1, "effective_from": "2026-11-01T00:00:00.000Z",
                "merchant_shop_id": "*", "referrer_shop_id": "*", "model": "cps", "rate_bp": 800}),
        _event(CLICK, "click", "2026-11-01T10:00:00.000Z", LOUD, VISITOR,
               {"referrer_shop_id": LOUD, "merchant_shop_id": "li-kids", "placement_id": "[p]"}),
        _event("[/]order-event", "order", "2026-11-01T10:05:00.000Z", "li-kids", VISITOR,
               {"order_id": CRASH, "merchant_shop_id": "li-kids", "currency": "CNY",
                "lines": [{"sku": "[sku]", "category": "[/cat]", "quantity": 1, "unit_price_minor": 10000}],
                "total_minor": 10000}),
        _event("[/bold]ghost-click", "click", "2026-11-01T11:00:00.000Z", ESCAPE, "v2",
               {"referrer_shop_id": ESCAPE, "merchant_shop_id": "li-kids", "placement_id": "p"}),
        _event(STRAY, "refund", "2026-11-02T10:00:00.000Z", "li-kids", VISITOR,
               {"order_id": "[/]never", "refund_id": "[/]r-1", "merchant_shop_id": "li-kids",
                "currency": "CNY", "amount_minor": 100}),
    ]
    source = folder / "markup.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    db = folder / "markup.duckdb"
    result = CliRunner().invoke(cli, ["ingest", str(source), "--db", str(db), "--format", "json"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["events_stored"] == len(events) and counts["quarantined"] == 1, counts
    return db


def _table(*args) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    return result.output


def test_balances_show_a_member_named_like_markup_by_its_name(ledger):
    shown = _table("balances", "--db", str(ledger))
    assert LOUD in shown
    assert "¥8.00" in shown  # mallory earned 8 % of ¥100.00


def test_quarantine_lists_an_emitter_that_carries_a_terminal_escape_without_passing_it_on(ledger):
    shown = _table("quarantine", "--db", str(ledger))
    assert "[/bold]ghost-click" in shown
    assert "unknown_shop" in shown
    assert "\x1b" not in shown
    assert "e\\x1b[2Jghost" in shown


def test_explain_shows_an_order_id_that_closes_a_tag_never_opened(ledger):
    shown = _table("explain", "--db", str(ledger), "--order", CRASH)
    for text in (CRASH, LOUD, CLICK, VISITOR, "[/]order-event", "[b]default"):
        assert text in shown, text


def test_parked_refunds_show_their_ids_as_written(ledger):
    shown = _table("parked", "--db", str(ledger))
    for text in (STRAY, "[/]never", "[/]r-1"):
        assert text in shown, text


def test_a_statement_shows_the_member_and_its_counterparty_as_written(ledger):
    shown = _table("statement", "--db", str(ledger), "--shop", LOUD, "--period", "2026-11")
    assert shown.splitlines()[0].startswith(LOUD), "the statement's title names the member as written"
    assert "[/]order-event" in shown and "[b]default" in shown
    assert "li-kids" in shown


def test_json_keeps_the_ids_exactly(ledger):
    rows = json.loads(_table("balances", "--db", str(ledger), "--format", "json"))
    assert {r["shop_id"] for r in rows} == {LOUD, "li-kids"}
