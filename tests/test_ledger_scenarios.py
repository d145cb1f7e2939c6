"""Every worked scenario in ../shared/scenarios, folded as one partition, gives its
expected balances (and quarantine, where the scenario lists one), and a chain that an
auditor's own few lines of hashlib verify.

New scenario files are picked up automatically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    assert entries and first_broken_link(entries) is None  # the auditor's check, not the ledger's code
    assert fold.chain_head == entries[-1].hash


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


FOLD_IN_A_CHILD = """
import json, sys
from refledger.ledger.fold import PartitionFold
from tests.ledger_support import load_records
from pathlib import Path
fold = PartitionFold()
hashes = [e.hash for r in load_records(Path(sys.argv[1])) for e in fold.apply(r).entries]
print(json.dumps(hashes))
"""


@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda p: p.stem)
def test_a_scenario_folded_in_other_processes_gives_the_same_chain(scenario):
    """SPEC §12.2 across processes: two fresh interpreters with other string hash seeds (so
    other set and dict iteration orders) fold the scenario to the very same chain as this one."""
    _, outcomes = fold_all(load_records(scenario))
    here = [e.hash for e in all_entries(outcomes)]
    root = Path(__file__).resolve().parents[1]
    for seed in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", FOLD_IN_A_CHILD, str(scenario)], cwd=root, check=True,
                              capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(done.stdout) == here
