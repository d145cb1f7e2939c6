"""The operator's four reads work while `consume` folds the topic: the consumer answers them on its
read socket (the ledger file is locked), and each answer is a whole batch's worth, never half of one."""

from __future__ import annotations

import json
import os
import time

import pytest

from refledger.producers.simulate import SimulationConfig, simulate
from refledger.store.readside import socket_path
from tests.alliance_story import run
from tests.pipeline_support import consume_in_background, publish

pytestmark = pytest.mark.kafka


def test_traffic_members_health_and_report_answer_while_consume_writes(kafka_bootstrap, kafka_topic, tmp_path):
    publish(kafka_bootstrap, kafka_topic, simulate(SimulationConfig(seed=8, visitors=2000, events=60_000)))
    db = tmp_path / "live.duckdb"
    page = tmp_path / "live.html"
    proc = consume_in_background(kafka_bootstrap, kafka_topic, db)
    clicks_seen = []
    try:
        while proc.poll() is None:
            if not os.path.exists(socket_path(db)):
                time.sleep(0.05)
                continue
            pairs = json.loads(run("traffic", "--db", db, "--period", "2026-11", "--format", "json").output)
            cards = json.loads(run("members", "--db", db, "--format", "json").output)
            assert sum(c["clicks_in"] for c in cards) >= sum(p["clicks"] for p in pairs), "read later, never less"
            json.loads(run("health", "--db", db, "--format", "json", code=None).output)
            run("report", "--db", db, "--period", "2026-11", "--out", page)
            assert "js-plotly-plot" in page.read_text(encoding="utf-8")
            if proc.poll() is None:
                clicks_seen.append(sum(p["clicks"] for p in pairs))
    finally:
        _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err.decode()
    assert len(clicks_seen) >= 2, "the four reads answered while the consumer ran"
    assert clicks_seen == sorted(clicks_seen), "the ledger never goes backwards"
    final = json.loads(run("traffic", "--db", db, "--period", "2026-11", "--format", "json").output)
    total = sum(p["clicks"] for p in final)
    assert any(0 < c < total for c in clicks_seen), f"reads land mid-stream: {clicks_seen} of {total}"
