"""Every worked scenario, ingested through the CLI, gives exactly its expected balances.

New scenarios dropped into ../shared/scenarios/ are picked up automatically.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from refledger.cli import cli
from tests.pipeline_support import SCENARIOS

SCENARIO_FILES = sorted(SCENARIOS.glob("*.jsonl"))


def nonzero(rows):
    return sorted((r for r in rows if any(v for k, v in r.items() if k not in ("shop_id", "currency"))),
                  key=lambda r: (r["shop_id"], r["currency"]))


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_there_are_scenarios():
    assert len(SCENARIO_FILES) >= 3


@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda p: p.stem)
def test_scenario_balances(scenario, tmp_path):
    db = tmp_path / f"{scenario.stem}.duckdb"
    run("ingest", scenario, "--db", db)
    got = json.loads(run("balances", "--db", db, "--format", "json"))
    expected = json.loads(scenario.with_name(f"{scenario.stem}.expected-balances.json").read_text())
    assert nonzero(got) == nonzero(expected)

    expected_q = scenario.with_name(f"{scenario.stem}.expected-quarantine.json")
    if expected_q.exists():
        rows = json.loads(run("quarantine", "--db", db, "--format", "json"))
        assert [{"event_id": r["event_id"], "reason": r["reason"]} for r in rows] == json.loads(expected_q.read_text())
        assert all(r["position"].startswith(f"{scenario.name}:") for r in rows)


@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda p: p.stem)
def test_ingesting_again_changes_nothing(scenario, tmp_path):
    db = tmp_path / "again.duckdb"
    run("ingest", scenario, "--db", db)
    first = run("balances", "--db", db, "--format", "json")
    stats_first = json.loads(run("stats", "--db", db, "--format", "json"))
    run("ingest", scenario, "--db", db)
    assert run("balances", "--db", db, "--format", "json") == first
    stats_again = json.loads(run("stats", "--db", db, "--format", "json"))
    # Every line is a re-delivery now: skipped when identical; quarantined again when it conflicts with the
    # event first folded under its id, or when a close has made its date final (SPEC §9a: not duplicate-checked),
    # or for a reason checked before duplicates (a close of the future).
    skipped = stats_again["duplicates_skipped"] - stats_first["duplicates_skipped"]
    requarantined = {reason: n - stats_first["quarantined_by_reason"].get(reason, 0)
                     for reason, n in stats_again["quarantined_by_reason"].items()}
    requarantined = {reason: n for reason, n in requarantined.items() if n}
    assert set(requarantined) <= {"conflicting_duplicate", "period_closed", "future_close"}, requarantined
    assert skipped + sum(requarantined.values()) == stats_first["events_read"]
    # the log keeps every re-delivery it did not skip (with its quarantine row); nothing else was added
    # (an alliance event is counted once however many copies the logs hold)
    assert stats_first["events"] <= stats_again["events"] <= stats_first["events"] + sum(requarantined.values())
    closed_lines = 0 if "close" not in scenario.read_text() else 1
    assert (requarantined.get("period_closed", 0) > 0) == bool(closed_lines)
