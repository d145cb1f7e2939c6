"""A fold restored from a snapshot goes on exactly like the fold that was snapshotted (SPEC §12.8).

Folding a log from the start, and folding it from a snapshot taken anywhere in
it, must post the same entries with the same ids and the same chain, and
remember the same things. The snapshot's rows hold only plain values.
"""

from __future__ import annotations

import pytest

from refledger.ledger.fold import PartitionFold
from refledger.ledger.snapshot import KINDS, SnapshotError, export_state, restore_state
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.schemas import codec
from tests.ledger_support import load_records
from tests.scenario_files import SCENARIOS


def simulated(events: int, seed: int) -> list[dict]:
    return [codec.validate_record(r) for r in simulate(SimulationConfig(seed=seed, events=events, visitors=200))]


def restored(fold: PartitionFold) -> PartitionFold:
    again = PartitionFold()
    restore_state(again, export_state(fold))
    return again


def fold_from(records, cut: int):
    """Entries after ``cut`` records, folding straight on and folding on from a snapshot taken there."""
    straight = PartitionFold()
    for record in records[:cut]:
        straight.apply(record)
    resumed = restored(straight)
    assert resumed.state_size() == straight.state_size()
    assert export_state(resumed) == export_state(straight)
    after_straight = [straight.apply(r) for r in records[cut:]]
    after_resumed = [resumed.apply(r) for r in records[cut:]]
    return after_straight, after_resumed, straight, resumed


@pytest.mark.parametrize("cut", [0, 1, 7, 150, 611, 1999, 3000])
def test_folding_on_from_a_snapshot_posts_what_folding_straight_on_posts(cut):
    records = simulated(3000, seed=11)
    straight, resumed, a, b = fold_from(records, cut)
    assert [o.entries for o in straight] == [o.entries for o in resumed]
    assert [(o.quarantine, o.skipped, o.parked, o.late_quarantines) for o in straight] == \
        [(o.quarantine, o.skipped, o.parked, o.late_quarantines) for o in resumed]
    assert a.chain_head == b.chain_head and export_state(a) == export_state(b)
    if cut < len(records):
        assert sum(len(o.entries) for o in straight) > 10


@pytest.mark.parametrize("scenario", sorted(SCENARIOS.glob("*.jsonl")), ids=lambda p: p.stem)
def test_every_scenario_resumes_from_every_point(scenario):
    records = load_records(scenario)
    for cut in range(len(records) + 1):
        straight, resumed, a, b = fold_from(records, cut)
        assert [o.entries for o in straight] == [o.entries for o in resumed], cut
        assert [o.quarantine for o in straight] == [o.quarantine for o in resumed], cut


def test_a_cpc_click_counted_before_the_snapshot_is_taken_back_after_it_by_a_late_click():
    """li-kids earns 30 fen a click from wang-bath. v1's click at 10:00 is counted and earns; the
    fold is snapshotted; then a click of v1 at 09:00 arrives late: it is the one counted, and
    the 10:00 click (within 24 hours of it) earns nothing. The restarted fold takes back what
    the 10:00 click earned, as the fold that never stopped does."""
    from tests.boundary_support import HOUR, Story, t

    s = Story()
    nine = t("2026-11-02T09:00")
    log = s.head + [s.agreement_at(t("2026-11-01T00:00"), agreement_id="cpc", merchant="wang-bath",
                                   referrer="li-kids", model="cpc", amount_minor=30, currency="CNY",
                                   event_id="a-cpc"),
                    s.click_at(nine + HOUR, "li-kids", "wang-bath", "v1", event_id="c-ten"),
                    s.click_at(nine, "li-kids", "wang-bath", "v1", event_id="c-nine")]
    cut = len(log) - 1
    straight, resumed, a, b = fold_from(log, cut)
    late = [(e.event_id, e.click_event_id, e.account, e.amount) for e in straight[-1].entries]
    assert ("c-nine", "c-ten", "earned_pending", -30) in late
    assert ("c-nine", "c-nine", "earned_pending", 30) in late
    assert [o.entries for o in resumed] == [o.entries for o in straight]


def test_an_order_without_lines_resumes_from_a_snapshot():
    """wang-bath records a zero-fen order with no lines (a gift voucher); the fold is snapshotted
    with it open, and the restarted fold still knows the order: the same order id sent again
    is a duplicate order, as in the fold that never stopped."""
    from tests.boundary_support import HOUR, Story, t

    s = Story()
    ten = t("2026-11-02T10:00")
    log = s.head + [s.agreement_at(t("2026-11-01T00:00"), agreement_id="default", rate_bp=800, event_id="a-1"),
                    s.click_at(ten - HOUR, "li-kids", "wang-bath", "v1", event_id="c-1"),
                    s.order_at(ten, "wang-bath", "v1", "o-gift", [], event_id="o-gift"),
                    s.order_at(ten + HOUR, "wang-bath", "v1", "o-gift", [], event_id="o-gift-again")]
    straight, resumed, a, b = fold_from(log, len(log) - 1)
    assert [o.quarantine for o in resumed] == [o.quarantine for o in straight] == ["duplicate_order"]


def test_two_agreement_versions_sharing_an_id_across_a_close_keep_their_own_rates_in_a_snapshot():
    """The default terms (10 %, toys 30 %) are closed with October's first half; the same event id
    then carries version 2 (20 %, toys 50 %). Snapshotted there, the restarted fold prices toys 1000
    + care 1000 at version 2's rates alone, 500 + 200, as the fold that never stopped does."""
    from tests.test_closing import agreement_story

    log = agreement_story()
    straight, resumed, _a, _b = fold_from([codec.validate_record(r) for r in log], len(log) - 2)
    earned = [e.amount for e in resumed[-1].entries if e.shop_id == "h-hats"]
    assert earned == [700]
    assert [o.entries for o in resumed] == [o.entries for o in straight]


def test_a_snapshot_holds_plain_values_only():
    records = simulated(2000, seed=3)
    fold = PartitionFold()
    for r in records:
        fold.apply(r)
    rows = export_state(fold)
    assert set(rows) == set(KINDS)
    for kind, table in rows.items():
        for row in table:
            assert len(row) == len(KINDS[kind]), kind
            assert all(v is None or type(v) in (str, int, bool, bytes) for v in row), (kind, row)
    assert rows["clicks"] and rows["subjects"] and rows["seen"] and rows["orders"] and rows["members"]
    # what a subject has earned so far is a number even before it earns (an order no click referred)
    subjects = [dict(zip(KINDS["subjects"], row)) for row in rows["subjects"]]
    assert any(s["t_referrer"] is None for s in subjects)
    assert all(type(s["net"]) is int and type(s["settled"]) is bool for s in subjects)


def test_a_snapshot_of_another_layout_is_refused():
    rows = export_state(PartitionFold())
    rows["fold"] = [(99, *rows["fold"][0][1:])]
    with pytest.raises(SnapshotError, match="layout 99"):
        restore_state(PartitionFold(), rows)
    only_fold = {"fold": rows["fold"]}
    with pytest.raises(SnapshotError, match=r"^not a fold snapshot: missing \['agreement_rates', 'agreements', "):
        restore_state(PartitionFold(), only_fold)
    with pytest.raises(SnapshotError, match="^not a fold snapshot: missing its fold row$"):
        restore_state(PartitionFold(), {**rows, "fold": []})


def test_a_snapshot_is_stored_compressed_and_an_uncompressed_one_still_loads():
    """A month of an alliance's state is stored compressed (its digests of ids and content do not
    compress, the rest does); a snapshot in the uncompressed container 2 still loads."""
    from refledger.store.snapshots import CONTAINER, MAGIC, decode_snapshot, encode_snapshot

    fold = PartitionFold()
    for r in simulated(3000, seed=5):
        fold.apply(r)
    rows = export_state(fold)
    blob = encode_snapshot(rows)
    assert blob[:len(MAGIC)] == MAGIC and blob[len(MAGIC)] == CONTAINER == 3

    old = encode_snapshot(rows, container=2)
    assert len(blob) * 3 < len(old) * 2
    assert decode_snapshot(blob) == decode_snapshot(old) == rows
    again = PartitionFold()
    restore_state(again, decode_snapshot(old))
    assert export_state(again) == rows


# -- snapshots in the ledger: restarts load them, a damaged one is never used -----------------------

import logging  # noqa: E402

import duckdb  # noqa: E402

from refledger.store.ledger_file import SNAPSHOT_STATE  # noqa: E402
from refledger.store.snapshots import digest  # noqa: E402

from refledger.consumers.batch import LogProcessor  # noqa: E402
from refledger.consumers.ingest import ingest_files  # noqa: E402
from refledger.schemas.event_files import write_event_file  # noqa: E402
from refledger.store.ledger_file import LedgerStore  # noqa: E402

ENTRY_COLUMNS = "topic, partition, seq, entry_id, txn_id, event_id, account, amount, prev_hash, hash"


def ingest_in_runs(db, files, snapshot_every):
    """Ingest each file with a new processor, as a consumer restarted between them would; returns how
    many stored events each restart folded again to rebuild its fold."""
    refolded = []
    for path in files:
        store = LedgerStore(db)
        processor = LogProcessor(store, PartitionFold, source="test", snapshot_every=snapshot_every)
        try:
            ingest_files([path], processor, batch_size=500)
            refolded.append({key: log.since_snapshot for key, log in processor.folds.folds.items()})
        finally:
            processor.close()
            store.close()
    return refolded


def ledger_rows(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return (con.execute(f"SELECT {ENTRY_COLUMNS} FROM entries ORDER BY topic, partition, seq").fetchall(),
                con.execute('SELECT topic, partition, "offset", reason FROM quarantine ORDER BY ALL').fetchall())
    finally:
        con.close()


def split_alliance(tmp_path, parts: int):
    records = list(simulate(SimulationConfig(seed=8, visitors=300, days=75)))
    size = -(-len(records) // parts)
    files = []
    for i in range(parts):
        path = tmp_path / f"part-{i}.jsonl"
        write_event_file(records[i * size:(i + 1) * size], path)
        files.append(path)
    return files


@pytest.mark.slow
def test_a_restarted_ingest_folds_on_from_the_latest_snapshot_and_writes_the_same_ledger(tmp_path):
    files = split_alliance(tmp_path, 3)
    whole = tmp_path / "whole.duckdb"
    ingest_in_runs(whole, files, snapshot_every=10**9)
    resumed = tmp_path / "resumed.duckdb"
    refolded = ingest_in_runs(resumed, files, snapshot_every=1500)
    assert ledger_rows(resumed) == ledger_rows(whole)
    con = duckdb.connect(str(resumed), read_only=True)
    [(snapshots,)] = con.execute("SELECT count(*) FROM snapshots").fetchall()
    [(recorded,)] = con.execute("SELECT count(*) FROM checkpoints WHERE snapshot_digest IS NOT NULL").fetchall()
    con.close()
    assert snapshots >= 3 and recorded == snapshots
    # each restart rebuilt its fold from a snapshot and fewer events than a batch of snapshot_every
    [(log, count)] = refolded[1].items()
    assert count < 1500 + 500


def damage_snapshot(db, which: str) -> None:
    """One byte added to the state of the earliest ("min") or latest ("max") snapshot, where the
    ledger keeps it (a table of its own, named by its digest)."""
    con = duckdb.connect(str(db))
    [(snapshot_digest,)] = con.execute(f"""SELECT digest FROM snapshots
                                           WHERE "offset" = (SELECT {which}("offset") FROM snapshots)""").fetchall()
    con.execute(f"""UPDATE {SNAPSHOT_STATE}."{snapshot_digest}" SET state = state || '\\x00'::BLOB""")
    con.close()


@pytest.mark.slow
def test_each_snapshots_bytes_are_kept_apart_so_a_checkpoint_never_reads_the_earlier_ones(tmp_path):
    """DuckDB writes a table's last row group again at each checkpoint: snapshots sharing one table
    were all read back after every new one. Each snapshot's bytes have a table of their own, and
    the latest still restarts the fold."""
    files = split_alliance(tmp_path, 2)
    db = tmp_path / "ledger.duckdb"
    ingest_in_runs(db, files, snapshot_every=1500)
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT digest, octet_length(state) FROM snapshots").fetchall()
    kept = {name for (name,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = ?",
                                            [SNAPSHOT_STATE]).fetchall()}
    assert len(rows) >= 3 and all(length == 0 for _d, length in rows)
    assert kept == {d for d, _length in rows}
    for snapshot_digest, _length in rows:
        [(state,)] = con.execute(f'SELECT state FROM {SNAPSHOT_STATE}."{snapshot_digest}"').fetchall()
        assert digest(state) == snapshot_digest
    con.close()


@pytest.mark.slow
def test_a_snapshot_that_does_not_match_its_checkpoint_is_never_used(tmp_path, caplog):
    files = split_alliance(tmp_path, 2)
    whole = tmp_path / "whole.duckdb"
    ingest_in_runs(whole, files, snapshot_every=10**9)
    damaged = tmp_path / "damaged.duckdb"
    ingest_in_runs(damaged, files[:1], snapshot_every=1500)
    # an attacker (or a bad disk) changes the latest snapshot's state: one byte of it
    damage_snapshot(damaged, "max")
    with caplog.at_level(logging.WARNING, logger="refledger.batch"):
        ingest_in_runs(damaged, files[1:], snapshot_every=1500)
    assert "does not match its checkpoint's digest: not used" in caplog.text
    assert ledger_rows(damaged) == ledger_rows(whole)


def test_replay_from_the_latest_snapshot_folds_on_to_the_live_ledger(tmp_path):
    """SPEC §12.8: folding from a snapshot and from the start give identical entries and chain heads."""
    import json

    from click.testing import CliRunner

    from refledger.cli import cli

    db = tmp_path / "harbor.duckdb"
    harbor = next(p for p in sorted(SCENARIOS.glob("*.jsonl")) if p.stem == "harbor-fair")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(harbor), "--db", str(db)]).exit_code == 0
    from_start = json.loads(runner.invoke(cli, ["replay", "--db", str(db), "--format", "json"]).output)
    result = runner.invoke(cli, ["replay", "--db", str(db), "--from-snapshot", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["identical"] and from_start["identical"]
    [(topic, partition, offset)] = report["started_from_snapshots"]
    assert offset > 0 and report["events_read"] < from_start["events_read"]
    # a live entry after the snapshot changed by hand: the replay from the snapshot says so
    con = duckdb.connect(str(db))
    con.execute("UPDATE entries SET amount = amount + 1 WHERE seq = (SELECT max(seq) FROM entries)")
    con.close()
    changed = runner.invoke(cli, ["replay", "--db", str(db), "--from-snapshot", "--format", "json"])
    assert changed.exit_code == 1 and not json.loads(changed.output)["identical"]


def test_replay_from_a_snapshot_taken_at_the_last_event_finds_the_ledger_identical(tmp_path):
    """A month-end run publishes the close last, and a close snapshots the fold: the latest snapshot is
    then the log's last event. Replaying from it folds nothing more, and the ledger is identical: the
    rebuild reached the end of the log through the snapshot."""
    import json

    from click.testing import CliRunner

    from refledger.cli import cli
    from refledger.schemas.event_files import write_event_file
    from tests.ledger_support import Alliance

    a = Alliance("lantern-lane")
    log = [a.member("lu-lamps", at="2026-10-01T00:00"), a.member("ma-mats", at="2026-10-01T00:00"),
           a.agreement(at="2026-10-01T00:00", rate_bp=1000, window=7, hold=0, effective_from="2026-10-01T00:00"),
           a.click("2026-10-02T09:00", "lu-lamps", "ma-mats", "v1"),
           a.order("2026-10-02T10:00", "ma-mats", "v1", "MA-1", [(1, 20000, "mats")]),
           a.settlement("2026-11-01T00:00", "2026-10-31T23:59:59.999Z", "2026-10"),
           a.close("2026-11-01T00:00:01", "2026-10-31T23:59:59.999Z", "2026-10")]
    events = tmp_path / "october.jsonl"
    write_event_file(log, events)
    db = tmp_path / "lantern.duckdb"
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(events), "--db", str(db)]).exit_code == 0
    result = runner.invoke(cli, ["replay", "--db", str(db), "--from-snapshot", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["identical"] and report["events_read"] == 0
    assert [offset for _t, _p, offset in report["started_from_snapshots"]] == [len(log) - 1]
    people = runner.invoke(cli, ["replay", "--db", str(db), "--from-snapshot"])
    assert people.exit_code == 0 and "DIFFERENT" not in people.output, people.output


def test_a_ledger_whose_snapshots_another_version_wrote_replays_and_verifies_from_the_start(tmp_path, monkeypatch):
    """An auditor with a newer refledger and a ledger written by an older one: the snapshots are of a
    layout this version does not read. Replay from the snapshots folds those logs from their start and
    verify passes; neither stops on them."""
    import json

    from click.testing import CliRunner

    from refledger.cli import cli
    from refledger.ledger import snapshot

    db = tmp_path / "harbor.duckdb"
    harbor = next(p for p in sorted(SCENARIOS.glob("*.jsonl")) if p.stem == "harbor-fair")
    runner = CliRunner()
    with monkeypatch.context() as older:
        older.setattr(snapshot, "FORMAT", snapshot.FORMAT - 1)
        assert runner.invoke(cli, ["ingest", str(harbor), "--db", str(db)]).exit_code == 0
    con = duckdb.connect(str(db), read_only=True)
    [(snapshots,)] = con.execute("SELECT count(*) FROM snapshots").fetchall()
    con.close()
    assert snapshots >= 1
    result = runner.invoke(cli, ["replay", "--db", str(db), "--from-snapshot", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["identical"] and report["started_from_snapshots"] == []
    verified = runner.invoke(cli, ["verify", "--db", str(db), "--format", "json"])
    assert verified.exit_code == 0 and json.loads(verified.output)["ok"], verified.output


@pytest.mark.slow
def test_verify_loads_the_latest_snapshot_folds_on_and_catches_a_changed_one(tmp_path):
    import json

    from click.testing import CliRunner

    from refledger.cli import cli

    files = split_alliance(tmp_path, 2)
    db = tmp_path / "ledger.duckdb"
    ingest_in_runs(db, files, snapshot_every=1500)
    runner = CliRunner()
    report = json.loads(runner.invoke(cli, ["verify", "--db", str(db), "--format", "json"]).output)
    assert report["ok"] and "snapshot" in report["checks"], report["problems"]
    damage_snapshot(db, "min")
    result = runner.invoke(cli, ["verify", "--db", str(db), "--format", "json"])
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    assert [p["check"] for p in problems] == ["snapshot"] and "do not match" in problems[0]["detail"]
