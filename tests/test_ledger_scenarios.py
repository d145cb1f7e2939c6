"""Every worked scenario in ../shared/scenarios, folded as one partition, gives its
expected balances (and quarantine, where the scenario lists one).

New scenario files are picked up automatically.
"""

from __future__ import annotations

import json

import pytest

from refledger.ledger.balances import balances
from tests.ledger_support import SCENARIOS, all_entries, first_broken_link, fold_all, load_records, nonzero_rows

SCENARIO_FILES = sorted(SCENARIOS.glob("*.jsonl"))
WITH_QUARANTINE = [p for p in SCENARIO_FILES if p.with_name(f"{p.stem}.expected-quarantine.json").exists()]


def test_there_are_scenarios():
    assert len(SCENARIO_FILES) >= 3


@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda p: p.stem)
def test_scenario_balances(scenario):
    fold, outcomes = fold_all(load_records(scenario))
    expected = json.loads(scenario.with_name(f"{scenario.stem}.expected-balances.json").read_text())
    entries = all_entries(outcomes)
    assert nonzero_rows(balances(entries)) == nonzero_rows(expected)
    assert first_broken_link(entries) is None
    assert fold.chain_head == (entries[-1].hash if entries else fold.chain_head)


@pytest.mark.parametrize("scenario", WITH_QUARANTINE, ids=lambda p: p.stem)
def test_scenario_quarantine(scenario):
    expected_file = scenario.with_name(f"{scenario.stem}.expected-quarantine.json")
    records = load_records(scenario)
    _, outcomes = fold_all(records)
    got = []
    for record, outcome in zip(records, outcomes):
        if outcome.quarantine is not None:
            got.append({"event_id": record["event_id"], "reason": outcome.quarantine})
        got.extend({"event_id": event_id, "reason": reason} for event_id, reason in outcome.late_quarantines)
    assert got == json.loads(expected_file.read_text())


@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda p: p.stem)
def test_folding_a_scenario_twice_gives_the_same_chain(scenario):
    first, _ = fold_all(load_records(scenario))
    second, _ = fold_all(load_records(scenario))
    assert first.chain_head == second.chain_head
