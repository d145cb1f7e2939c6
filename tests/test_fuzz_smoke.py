"""A short, seeded fuzzing run on every test run: what `bench/fuzz.py` does for minutes, for seconds.

Each target (a Kafka value, a `.jsonl` file, a `.avro` file) gets a fixed
number of inputs mutated from valid ones with a fixed seed, so a run finds
the same things every time; any disagreement between readers, any exception
other than the codec's errors, or an event the fold cannot take fails it.
The harness itself is checked to find planted defects, and the bench script
to run end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz_targets import TARGETS, run_mutations
from tests.readers_support import unsigned_length_string

ROOT = Path(__file__).resolve().parents[1]
EXECUTIONS = {"message": 3000, "json": 600, "container": 400}


@pytest.mark.parametrize("target", TARGETS)
def test_a_seeded_fuzzing_run_finds_nothing(target):
    runs, findings = run_mutations(target, seed=11, executions=EXECUTIONS[target])
    assert runs == EXECUTIONS[target]
    assert findings == []


def test_the_same_seed_mutates_the_same_inputs():
    from tests.fuzz_targets import mutate, seeds

    import random

    def inputs(seed: int) -> list[bytes]:
        rng, pool = random.Random(seed), seeds("json")
        return [mutate(rng.choice(pool), pool, rng, "json") for _ in range(50)]

    assert inputs(3) == inputs(3) != inputs(4)


def test_fuzzing_finds_a_reader_that_skips_a_check(monkeypatch):
    """A fast reader that reads a one-byte length without its sign, as one once did."""
    from refledger.schemas import traffic

    monkeypatch.setattr(traffic, "read_string", unsigned_length_string)
    _runs, findings = run_mutations("message", seed=11, executions=EXECUTIONS["message"])
    assert any("stored an event where the codec raises Undecodable" in problem for problem, _data in findings)


def test_fuzzing_finds_an_event_the_fold_cannot_take(monkeypatch):
    from refledger.ledger import fold

    checked = fold.check_event

    def broken(event, knows):
        if event.type == "refund":
            raise ZeroDivisionError("a bug in the refund rule")
        return checked(event, knows)

    monkeypatch.setattr(fold, "check_event", broken)
    _runs, findings = run_mutations("json", seed=11, executions=50)
    assert any(problem == "json: ZeroDivisionError: a bug in the refund rule" for problem, _data in findings)


def test_the_bench_script_fuzzes_every_target_and_reports(tmp_path):
    done = subprocess.run([sys.executable, "bench/fuzz.py", "--runs", "50", "--seed", "1", "--format", "json",
                           "--findings", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["findings"] == 0
    assert [r["target"] for r in report["results"]] == list(TARGETS)
    assert all(r["executions"] >= 50 for r in report["results"])
    if report["engine"] == "atheris":
        assert all(r["coverage_edges"] > 100 for r in report["results"])
