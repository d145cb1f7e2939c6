"""Deeply nested JSON is a bad line like any other, at every JSON entry point.

A line of a thousand ``[`` once stopped `refledger ingest` with a
RecursionError: its batch was lost and the rest of the file could never be
ingested. An event nests four levels deep at most (an order's lines); a
line nested deeper than the codec's limit is ``undecodable``, the same
answer whoever reads it and however deep the reader's own call stack is.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.schemas import codec
from refledger.schemas.codec import SchemaInvalid, Undecodable
MAX_JSON_DEPTH = 64
from refledger.schemas.event_files import read_records
from tests.scenario_files import SCENARIOS

BABY_CARE = SCENARIOS / "baby-care.jsonl"
CLICK = json.loads(BABY_CARE.read_text(encoding="utf-8").splitlines()[5])


def deep_lines() -> dict[str, str]:
    """Lines nested past any event's depth: bare brackets, objects, and events with a deep field."""
    def wrapped(depth: int) -> str:
        return "[" * depth + "]" * depth
    return {
        "a thousand [": "[" * 1000,
        "a hundred thousand [": "[" * 100_000,
        "closed arrays": wrapped(5000),
        "objects": '{"a":' * 2000 + "1" + "}" * 2000,
        "deep event_id": json.dumps({**CLICK, "event_id": "X"}).replace('"X"', wrapped(1000)),
        "deep unknown field": json.dumps({**CLICK, "extra": "X"}).replace('"X"', wrapped(990)),
        "deep payload": json.dumps({**CLICK, "click": "X"}).replace('"X"', '{"a":' * 999 + "1" + "}" * 999),
        "just past the limit": json.dumps({**CLICK, "extra": "X"}).replace('"X"', wrapped(MAX_JSON_DEPTH)),
    }


def run(*args, code: int = 0) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_ingest_quarantines_deep_lines_and_folds_the_rest_of_the_file(tmp_path):
    lines = BABY_CARE.read_text(encoding="utf-8").splitlines()
    deep = list(deep_lines().values())
    events = tmp_path / "alliance.jsonl"
    events.write_text("\n".join(lines[:6] + deep + lines[6:]) + "\n", encoding="utf-8")
    db = tmp_path / "ledger.duckdb"
    run("ingest", events, "--db", db)
    quarantined = json.loads(run("quarantine", "--db", db, "--format", "json"))
    assert [(q["position"], q["reason"]) for q in quarantined] == [
        (f"alliance.jsonl:{n}", "undecodable") for n in range(7, 7 + len(deep))]
    assert quarantined[4]["event_id"] is None, "no event id shows in a line that cannot be read"
    expected = json.loads((SCENARIOS / "baby-care.expected-balances.json").read_text())
    balances = json.loads(run("balances", "--db", db, "--format", "json"))
    assert [r for r in balances if any(r[k] for k in r if k not in ("shop_id", "currency"))] == \
        [r for r in expected if any(r[k] for k in r if k not in ("shop_id", "currency"))], "the rest was folded"
    assert json.loads(run("verify", "--db", db, "--format", "json"))["ok"]


@pytest.mark.parametrize("name", list(deep_lines()))
def test_a_deep_line_is_undecodable_however_deep_the_readers_stack(name):
    line = deep_lines()[name]

    def at_depth(frames: int):
        if frames:
            return at_depth(frames - 1)
        with pytest.raises(Undecodable, match="nested deeper than"):
            codec.record_from_json(line)

    at_depth(0)
    at_depth(800)


def test_nesting_up_to_the_limit_is_read_and_judged_by_its_shape():
    line = json.dumps({**CLICK, "extra": "X"}).replace('"X"', "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1))
    with pytest.raises(SchemaInvalid, match="extra"):
        codec.record_from_json(line)
    assert MAX_JSON_DEPTH >= 8, "an order nests four levels deep"


def test_brackets_inside_strings_do_not_count():
    text = "[" * 500 + "{" * 500
    record = codec.record_from_json(json.dumps({**CLICK, "click": {**CLICK["click"], "placement_id": text}}))
    assert record["click"]["placement_id"] == text


def test_produce_rejects_deep_lines_and_reads_the_rest(tmp_path):
    events = tmp_path / "to-publish.jsonl"
    events.write_text("\n".join([json.dumps(CLICK), "[" * 1000, json.dumps({**CLICK, "event_id": "c-9"})]) + "\n")
    read = list(read_records(events))
    assert [(position, error is None) for position, _record, error in read] == [
        ("to-publish.jsonl:1", True), ("to-publish.jsonl:2", False), ("to-publish.jsonl:3", True)]
    assert read[1][2].startswith("undecodable: ")


def test_a_what_if_file_with_a_deep_line_is_refused_naming_the_line(tmp_path):
    from refledger.replay.history import ReplayError
    from refledger.replay.whatif import read_agreements

    agreements = tmp_path / "what-if.jsonl"
    agreements.write_text("[" * 1000 + "\n")
    with pytest.raises(ReplayError, match=r"^what-if\.jsonl:1: undecodable: "):
        read_agreements(agreements)


@pytest.mark.parametrize("content", [
    "[" * 1000,
    '{"checkpoints": ' + "[" * 100_000 + "}",
    '{"checkpoints": [{"topic": "t", "partition": 0, "entries": "twelve", "head": "00"}]}',
    '{"checkpoints": [{"topic": "t", "partition": 0, "entries": -1, "head": "00"}]}',
    '{"checkpoints": [[1, 2]]}',
    '{"checkpoints": 7}',
    "null",
])
def test_a_checkpoint_file_that_is_not_checkpoints_is_one_clear_line(tmp_path, content):
    db = tmp_path / "ledger.duckdb"
    run("ingest", BABY_CARE, "--db", db)
    saved = tmp_path / "kept.json"
    saved.write_text(content)
    output = run("verify", "--db", db, "--since-checkpoint", saved, code=1)
    assert output.startswith(f"Error: cannot read checkpoints from {saved}: ")
    assert len(output.strip().splitlines()) == 1
