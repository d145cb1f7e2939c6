"""One store interface, two stores: the same contract holds for the DuckDB file and for DuckLake.

Each test runs against both (`ledger` is a DuckDB file's path, or a fresh ledger
on DuckLake with its own catalog database and data path), through the
`LedgerStorage` interface and through the command line a member or an auditor
uses. The last test folds one simulated alliance into both and asks every
read query: the answers must be the same.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.consumers.batch import LogProcessor
from refledger.consumers.ingest import INGEST_TOPIC, ingest_files
from refledger.ledger.fold import PartitionFold
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.reports.health import health
from refledger.reports.scorecard import members
from refledger.reports.sheet import sheet
from refledger.reports.statement import statement
from refledger.reports.traffic import traffic
from refledger.schemas.event_files import write_event_file
from refledger.store import queries
from refledger.store.ledger_file import BatchWrite, StoreError
from refledger.store.readside import query
from refledger.store.storage import LedgerStorage, open_store
from tests.scenario_files import SCENARIOS

SCENARIO_FILES = sorted(SCENARIOS.glob("*.jsonl"))


@pytest.fixture(params=["file", "lake"])
def ledger(request, tmp_path):
    """Where a test's ledger lives: a DuckDB file, or a new DuckLake."""
    if request.param == "file":
        return str(tmp_path / "ledger.duckdb")
    return request.getfixturevalue("lake")


def db_args(ledger) -> list[str]:
    if isinstance(ledger, str):
        return ["--db", ledger]
    return ["--db", str(ledger), "--data-path", ledger.data_path]


def run(*args, expect: int = 0) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result.output


def ingest(ledger, path: Path, snapshot_every: int = 250_000, batch_size: int = 5000):
    store = open_store(ledger)
    try:
        processor = LogProcessor(store, PartitionFold, source="ingest", snapshot_every=snapshot_every)
        ingest_files([path], processor, batch_size=batch_size)
        processor.close()
    finally:
        store.close()


def nonzero(rows):
    return sorted((r for r in rows if any(v for k, v in r.items() if k not in ("shop_id", "currency"))),
                  key=lambda r: (r["shop_id"], r["currency"]))


@pytest.fixture(scope="module")
def alliance_file(tmp_path_factory) -> Path:
    """Three simulated months of an alliance: settlements, closes, late events, a few bad ones."""
    path = tmp_path_factory.mktemp("alliance") / "alliance.jsonl"
    write_event_file(simulate(SimulationConfig(seed=5, shops=8, visitors=80, days=100)), path)
    return path


def test_both_stores_implement_the_interface(ledger):
    store = open_store(ledger)
    try:
        assert isinstance(store, LedgerStorage)
        assert store.positions() == {} and store.logs() == []
    finally:
        store.close()


@pytest.mark.parametrize("scenario", SCENARIO_FILES, ids=lambda p: p.stem)
def test_every_worked_scenario_gives_its_balances(ledger, scenario):
    run("ingest", scenario, *db_args(ledger))
    got = json.loads(run("balances", *db_args(ledger), "--format", "json"))
    expected = json.loads(scenario.with_name(f"{scenario.stem}.expected-balances.json").read_text())
    assert nonzero(got) == nonzero(expected)
    expected_q = scenario.with_name(f"{scenario.stem}.expected-quarantine.json")
    if expected_q.exists():
        rows = json.loads(run("quarantine", *db_args(ledger), "--format", "json"))
        assert [{"event_id": r["event_id"], "reason": r["reason"]} for r in rows] == json.loads(expected_q.read_text())
    run("verify", *db_args(ledger))


def test_a_batch_is_read_back_as_it_was_written(ledger, alliance_file):
    ingest(ledger, alliance_file, batch_size=3000)
    store = open_store(ledger)
    try:
        [(read, stored)] = store.cursor().execute(
            "SELECT sum(events_read), sum(events_stored) FROM batches").fetchall()
        assert store.logs() == [(INGEST_TOPIC, 0)]
        assert store.positions() == {(INGEST_TOPIC, 0): read}
        events = list(store.partition_events(INGEST_TOPIC, 0))
        assert len(events) == stored
        assert [e[0] for e in events] == sorted(e[0] for e in events)
        later = list(store.partition_events(INGEST_TOPIC, 0, after=events[100][0]))
        assert later == events[101:]
    finally:
        store.close()


def test_a_batch_that_fails_leaves_nothing_behind(ledger, alliance_file):
    ingest(ledger, alliance_file)
    store = open_store(ledger)
    try:
        store.claim([(INGEST_TOPIC, 0)])
        before = queries.stats(store.cursor())
        broken = BatchWrite(source="ingest", positions={(INGEST_TOPIC, 0): 10**9}, events_read=1)
        broken.extra_tables["entries"] = pa.table({"no_such_column": [1]})
        with pytest.raises(StoreError):
            store.write_batch(broken)
        after = queries.stats(store.cursor())
        assert after == before
        assert store.positions()[(INGEST_TOPIC, 0)] < 10**9
    finally:
        store.close()


def test_a_restart_folds_on_from_the_latest_snapshot_as_if_never_stopped(ledger, alliance_file, tmp_path):
    """Half the file, the store closed and opened again, the other half: the ledger of one run."""
    from refledger.store.snapshots import digest

    lines = alliance_file.read_text().splitlines(keepends=True)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    first.write_text("".join(lines[:len(lines) // 2]))
    second.write_text("".join(lines[len(lines) // 2:]))
    ingest(ledger, first, snapshot_every=2000, batch_size=1000)
    store = open_store(ledger)
    try:
        snapshots = list(store.snapshots(INGEST_TOPIC, 0))
        assert snapshots, "periodic snapshots every 2,000 events"
        assert [s[0] for s in snapshots] == sorted((s[0] for s in snapshots), reverse=True)
        assert all(recorded == found == digest(state) for _, found, recorded, state in snapshots)
    finally:
        store.close()
    ingest(ledger, second, snapshot_every=2000, batch_size=1000)

    whole = str(tmp_path / "whole.duckdb")
    ingest(whole, alliance_file, snapshot_every=2000, batch_size=1000)
    assert chain_heads(ledger) == chain_heads(whole)
    assert query(ledger, queries.balances) == query(whole, queries.balances)
    run("replay", *db_args(ledger), "--from-snapshot")


def chain_heads(ledger) -> dict:
    return json.loads(run("verify", *db_args(ledger), "--format", "json"))["logs"]


def test_the_lake_and_the_file_answer_every_read_query_alike(lake, alliance_file, tmp_path):
    """The same log folded into both stores: every read query of the command line, the same answer."""
    file = str(tmp_path / "ledger.duckdb")
    for db in (file, lake):
        ingest(db, alliance_file, snapshot_every=3000, batch_size=2500)
    shop = query(file, queries.balances)[0]["shop_id"]
    asked = [
        (queries.stats, {}), (queries.balances, {}), (queries.quarantine, {}), (queries.parked_refunds, {}),
        (queries.checkpoints, {}), (queries.latest_snapshots, {}),
        (statement, {"shop_id": shop, "period": "2026-11", "tz": "Asia/Shanghai", "locale": "zh_CN"}),
        (sheet, {"period": None, "tz": "Asia/Shanghai"}), (traffic, {"period": "2026-11", "zone": "Asia/Shanghai"}),
        (members, {"period": None, "zone": "Asia/Shanghai"}), (health, {"zone": "Asia/Shanghai"}),
    ]
    for func, params in asked:
        on_file, on_lake = query(file, func, **params), query(lake, func, **params)
        if func is queries.stats:
            assert (on_file.pop("data_files"), on_lake.pop("data_files") > 1) == (1, True)
        assert on_lake == on_file, func.__name__
    orders = [o for (o,) in open_store(file).cursor().execute(
        "SELECT DISTINCT order_id FROM events WHERE type = 'order' ORDER BY 1 LIMIT 25").fetchall()]
    for order in orders:
        assert query(lake, queries.explain, order_id=order) == query(file, queries.explain, order_id=order)
    verified = [json.loads(run("verify", "--db", db, "--format", "json")) for db in (file, lake)]
    assert verified[0]["ok"] and verified[1]["ok"] and verified[0]["logs"] == verified[1]["logs"]
    replayed = json.loads(run("replay", "--db", lake, "--format", "json"))
    assert replayed["identical"] and replayed["snapshot"]["via"] == "lake"
    previews = [json.loads(run("settle", "--period", "2026-12", "--dry-run", "--db", db, "--format", "json"))
                for db in (file, lake)]
    assert previews[0]["preview"] == previews[1]["preview"]
