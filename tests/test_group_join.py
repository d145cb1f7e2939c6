"""A lone consumer joins its group once.

Every rebalance stops the fold while partitions are revoked and assigned
again, and kafka-python 3 does not always come back from a rebalance that
starts right after an assignment: the member stops heartbeating, the broker
drops it, and `consume` waits for records that never come (seen on a loaded
machine in about one consume out of five). A consumer that learns its
topic's partitions before its group gives it any joins once and is never
asked to rebalance by its own metadata.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.pipeline_support import SCENARIOS, publish
from refledger.schemas.event_files import read_records

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("ledger", ["first", "second"])
def test_a_lone_consumer_is_assigned_its_partitions_once(kafka_bootstrap, kafka_topic, tmp_path, ledger):
    sent = publish(kafka_bootstrap, kafka_topic, (r for _, r, _ in read_records(SCENARIOS / "baby-care.jsonl")))
    result = subprocess.run(
        [sys.executable, "-m", "refledger", "--kafka-log", "info", "consume", "--bootstrap-servers", kafka_bootstrap,
         "--db", str(tmp_path / f"{ledger}.duckdb"), "--topic", kafka_topic, "--group", f"{kafka_topic}-{ledger}",
         "--until-idle", "3", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["events_read"] == sent
    assignments = [line for line in result.stderr.splitlines() if "Setting newly assigned partitions" in line]
    assert len(assignments) == 1, "\n".join(assignments)
