"""What the operator sends one member (`--as SHOP`): its own rows, the alliance's totals, nobody else's numbers.

In the baby-care alliance (SPEC §13), zhang-toys won o3 at li-kids against
wang-bath's earlier click. wang-bath, sent the story of o3, learns that its
click lost to a later one, but not whose; li-kids, the merchant, sees its
own order in full; zhao-photo, which had nothing to do with o3, sees nothing.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli
from tests.scenario_files import SCENARIOS


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    db = tmp_path_factory.mktemp("shop-view") / "baby-care.duckdb"
    assert CliRunner().invoke(cli, ["ingest", str(SCENARIOS / "baby-care.jsonl"), "--db", str(db)]).exit_code == 0
    return str(db)


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def test_balances_as_a_member_show_its_rows_and_the_alliance_totals_only(ledger):
    everyone = json.loads(run("balances", "--db", ledger, "--format", "json"))
    mine = json.loads(run("balances", "--db", ledger, "--as", "li-kids", "--format", "json"))
    assert [r["shop_id"] for r in mine] == ["li-kids", "(alliance total)"]
    assert mine[0] == next(r for r in everyone if r["shop_id"] == "li-kids" and r["currency"] == "CNY")
    total = mine[1]
    assert total["earned_payable"] == sum(r["earned_payable"] for r in everyone if r["currency"] == "CNY") == 2864
    table = run("balances", "--db", ledger, "--as", "li-kids", "--locale", "en_US")
    for other in ("wang-bath", "zhang-toys", "zhao-photo"):
        assert other not in table


def test_the_merchant_sees_its_own_order_in_full(ledger):
    story = json.loads(run("explain", "--db", ledger, "--order", "o3", "--as", "li-kids", "--format", "json"))
    assert story["decision"]["referrer_shop_id"] == "zhang-toys"
    assert {c["referrer_shop_id"] for c in story["decision"]["clicks"]} == {"wang-bath", "zhang-toys"}


def test_a_referrer_that_lost_learns_it_lost_but_not_to_whom(ledger):
    story = json.loads(run("explain", "--db", ledger, "--order", "o3", "--as", "wang-bath", "--format", "json"))
    text = json.dumps(story)
    assert "zhang-toys" not in text and "2072" not in text
    clicks = story["decision"]["clicks"]
    assert [(c["referrer_shop_id"], c["eligible"]) for c in clicks] == [("wang-bath", True),
                                                                       ("(another member)", True)]
    assert story["decision"]["referrer_shop_id"] == "(another member)" and story["entries"] == []
    assert "zhang-toys" not in run("explain", "--db", ledger, "--order", "o3", "--as", "wang-bath")


def test_the_winner_sees_its_commission_and_only_its_own_entries(ledger):
    story = json.loads(run("explain", "--db", ledger, "--order", "o3", "--as", "zhang-toys", "--format", "json"))
    assert story["decision"]["commission"] == 2072
    assert {e["shop_id"] for e in story["entries"]} == {"zhang-toys"}
    assert "wang-bath" not in json.dumps(story)


def test_a_shop_that_had_nothing_to_do_with_an_order_sees_nothing(ledger):
    output = run("explain", "--db", ledger, "--order", "o3", "--as", "zhao-photo", code=1)
    assert "zhao-photo took part in" in output


def test_a_statement_as_a_member_is_its_own_statement(ledger):
    own = run("statement", "--db", ledger, "--as", "li-kids", "--period", "2026-11", "--format", "json")
    assert own == run("statement", "--db", ledger, "--shop", "li-kids", "--period", "2026-11", "--format", "json")
    refused = run("statement", "--db", ledger, "--as", "li-kids", "--shop", "wang-bath", "--period", "2026-11",
                  code=2)
    assert "only li-kids's own statement" in refused


@pytest.mark.parametrize("placeholder", ["(alliance total)", "(another member)"])
def test_a_view_for_a_shop_named_like_a_placeholder_is_refused_rather_than_mixed_up(ledger, placeholder):
    # a member's view calls the totals and the others by these names: a shop of that id could not tell
    # its own row from them, so its view is refused with the reason
    for command in (["balances"], ["statement", "--period", "2026-11", "--shop", placeholder]):
        output = run(*command, "--db", ledger, "--as", placeholder, code=2)
        assert "cannot have a view of its own" in output
