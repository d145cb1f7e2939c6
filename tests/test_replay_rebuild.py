"""`refledger replay`: the ledger rebuilt from Kafka, from an archive and from its own stored log
equals the live one; a changed amount is found; --until shows the ledger as the log stood then;
a what-if prices the baby-care month again and never touches the live file.

One simulated alliance (late clicks and orders, refunds, bad events, a settlement, payouts) is
published and consumed once for the module.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import duckdb
import pytest
from click.testing import CliRunner

from refledger.producers.simulate import SimulationConfig, simulate
from refledger.cli import cli
from refledger.store.queries import stats
from refledger.store.readside import ReadError, query, socket_path
from refledger.schemas.archive import archive_partitions, iter_partition
from refledger.cli_replay import replay as replay_command
from refledger.schemas import codec
from tests.kafka_env import fresh_topic
from tests.pipeline_support import publish, send_raw
from tests.scenario_files import SCENARIOS


def run(*args, code=0, env=None):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env=env)
    assert result.exit_code == code, result.output
    return result


def replay(*args, code=0, env=None):
    result = CliRunner().invoke(replay_command, [str(a) for a in args], catch_exceptions=False, env=env)
    assert result.exit_code == code, result.output
    return result


def replay_json(*args, code=0) -> dict:
    return json.loads(replay(*args, "--format", "json", code=code).output)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def row_counts(db) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()


def ledger_of(db) -> tuple[list, dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        entries = con.execute("SELECT * EXCLUDE (batch_id) FROM entries ORDER BY topic, partition, seq").fetchall()
        heads = dict(con.execute("SELECT partition, arg_max(hash, seq) FROM entries GROUP BY ALL").fetchall())
    finally:
        con.close()
    return entries, heads


def balances(db) -> list[dict]:
    return json.loads(run("balances", "--db", db, "--format", "json").output)


@pytest.fixture(scope="module")
def alliance(kafka_bootstrap, tmp_path_factory):
    """35 days of a simulated alliance, consumed from Kafka into a live ledger, and archived."""
    topic = fresh_topic(kafka_bootstrap, "replay-rebuild")
    publish(kafka_bootstrap, topic, simulate(SimulationConfig(seed=41, visitors=600, days=35)))
    # a broken integration's messages between them, quarantined before the fold
    send_raw(kafka_bootstrap, topic, [b"not an event", b"\xc3\x01" + bytes(8) + b"garbage"], partition=2)
    root = tmp_path_factory.mktemp("replay-rebuild")
    db = root / "live.duckdb"
    run("consume", "--bootstrap-servers", kafka_bootstrap, "--db", db, "--topic", topic,
        "--group", f"{topic}-live", "--until-idle", 4)
    run("archive", "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--out", root / "archive",
        "--segment-records", 2000)
    con = duckdb.connect(str(db), read_only=True)
    roles = dict(con.execute("SELECT role, count(*) FROM entries GROUP BY ALL").fetchall())
    stages = dict(con.execute("SELECT stage, count(*) FROM quarantine GROUP BY ALL").fetchall())
    con.close()
    # what makes this history worth replaying: late events re-attributed orders, refunds, a settlement,
    # and messages quarantined both before the fold (undecodable) and by it (conflicting duplicates, ...)
    assert roles.get("reverse") and roles.get("refund") and roles.get("settle") and roles.get("payout"), roles
    assert stages.get("decode") and stages.get("fold"), stages
    return {"db": db, "topic": topic, "root": root, "archive": root / "archive", "bootstrap": kafka_bootstrap}


def assert_identical(report: dict, live_db) -> None:
    assert report["identical"] is True, report["comparison"]
    heads = report["comparison"]["heads"]
    assert len(heads) >= 3 and all(h["same"] and h["live_entries"] > 0 for h in heads)
    con = duckdb.connect(str(live_db), read_only=True)
    [(entries,)] = con.execute("SELECT count(*) FROM entries").fetchall()
    [(read,)] = con.execute("SELECT sum(events_read) FROM batches").fetchall()
    con.close()
    assert sum(h["rebuilt_entries"] for h in heads) == entries == report["entries_posted"]
    assert report["quarantined"] > 0 and report["comparison"]["quarantine_differences"] == 0
    assert report["events_read"] <= read  # the stored events leave out the skipped duplicates


@pytest.mark.kafka
def test_replay_from_kafka_is_identical_and_reads_only(alliance):
    before, counts = digest(alliance["db"]), row_counts(alliance["db"])
    report = replay_json("--db", alliance["db"], "--source", "kafka", "--bootstrap-servers", alliance["bootstrap"])
    assert_identical(report, alliance["db"])
    assert report["topics"] == [alliance["topic"]]
    # every message of the topic was read again: the ledger read it exactly once too
    assert report["events_read"] == sum(o for _, _, o in report["snapshot"]["positions"])
    assert digest(alliance["db"]) == before and row_counts(alliance["db"]) == counts


@pytest.mark.kafka
def test_replay_from_an_archive_is_identical(alliance):
    report = replay_json("--db", alliance["db"], "--source", alliance["archive"])
    assert_identical(report, alliance["db"])
    assert report["source"] == str(alliance["archive"])


@pytest.mark.kafka
def test_replay_from_the_stored_events_replays_the_quarantined_messages_too(alliance):
    report = replay_json("--db", alliance["db"])
    assert_identical(report, alliance["db"])
    con = duckdb.connect(str(alliance["db"]), read_only=True)
    [(stored,)] = con.execute("SELECT count(*) FROM events").fetchall()
    [(before_fold,)] = con.execute("SELECT count(*) FROM quarantine WHERE stage = 'decode'").fetchall()
    [(quarantined,)] = con.execute("SELECT count(*) FROM quarantine").fetchall()
    con.close()
    # the log replayed is every stored event plus every message quarantined before the fold,
    # at the same offsets: the positions match (compared), and so does the quarantine
    assert report["events_read"] == stored + before_fold
    assert report["events_stored"] == stored and report["quarantined"] == quarantined
    shown = replay("--db", alliance["db"]).output
    assert "identical" in shown and "chain heads" in shown


@pytest.mark.kafka
@pytest.mark.parametrize("from_", [0, 10**12])
def test_a_long_history_is_folded_in_a_process_of_its_own_and_replays_the_same(alliance, monkeypatch, from_):
    from refledger.consumers import fold_worker
    from refledger.replay import replayer

    started = []
    real = fold_worker.ChildProcessFolds.__init__

    def spy(self, *args, **kwargs):
        started.append(1)
        real(self, *args, **kwargs)

    monkeypatch.setattr(fold_worker.ChildProcessFolds, "__init__", spy)
    monkeypatch.setattr(replayer, "FOLD_PROCESS_FROM", from_)  # a history of any length counts as long, or none
    report = replay_json("--db", alliance["db"])
    assert_identical(report, alliance["db"])
    assert len(started) == (1 if from_ == 0 else 0)
    assert replay_json("--db", alliance["db"], "--from-snapshot")["identical"] is True


@pytest.mark.kafka
def test_a_fold_process_that_dies_ends_the_replay_with_one_line(alliance, monkeypatch):
    from refledger.consumers import fold_worker
    from refledger.replay import replayer

    def gone(self, job_id):
        self._process.kill()
        raise fold_worker.FoldWorkerError("the fold process ended (exit code -9)")

    monkeypatch.setattr(fold_worker.ChildProcessFolds, "result", gone)
    monkeypatch.setattr(replayer, "FOLD_PROCESS_FROM", 0)
    shown = replay("--db", alliance["db"], code=2).output
    assert "the fold process ended" in shown and "Traceback" not in shown


@pytest.mark.kafka
def test_ingesting_the_archive_directory_gives_the_live_ledger(alliance, tmp_path):
    copy = tmp_path / "from-archive.duckdb"
    run("ingest", alliance["archive"], "--db", copy)
    assert ledger_of(copy) == ledger_of(alliance["db"])
    again = json.loads(run("ingest", alliance["archive"], "--db", copy, "--format", "json").output)
    assert again["events_stored"] == 0 and ledger_of(copy) == ledger_of(alliance["db"])
    assert_identical(replay_json("--db", copy), copy)


@pytest.mark.kafka
def test_a_changed_amount_is_found_with_its_entry_and_balance(alliance, tmp_path):
    tampered = tmp_path / "tampered.duckdb"
    shutil.copy(alliance["db"], tampered)
    con = duckdb.connect(str(tampered))
    [(partition, seq, entry_id, shop, account, amount)] = con.execute(
        """SELECT partition, seq, entry_id, shop_id, account, amount FROM entries
           WHERE role = 'commission' AND account = 'earned_pending' ORDER BY partition, seq LIMIT 1""").fetchall()
    con.execute("UPDATE entries SET amount = amount + 100 WHERE entry_id = ?", [entry_id])
    con.close()

    report = replay_json("--db", tampered, code=1)

    assert report["identical"] is False
    [first] = report["comparison"]["first_differences"]
    assert (first["partition"], first["seq"], first["differing_columns"]) == (partition, seq, ["amount"])
    assert first["live"]["entry_id"] == first["rebuilt"]["entry_id"] == entry_id
    assert (first["live"]["amount"], first["rebuilt"]["amount"]) == (amount + 100, amount)
    [change] = report["comparison"]["balance_changes"]
    assert (change["shop_id"], change["account"], change["change"]) == (shop, account, -100)
    assert change["live"] - change["rebuilt"] == 100
    shown = replay("--db", tampered, code=1).output
    assert "DIFFERENT" in shown and f"first differing entry, seq {seq}" in shown and entry_id in shown


@pytest.mark.kafka
def test_until_gives_the_ledger_as_the_log_stood_then(alliance, tmp_path):
    con = duckdb.connect(str(alliance["db"]), read_only=True)
    [(middle,)] = con.execute("SELECT quantile_disc(kafka_timestamp, 0.5) FROM events").fetchall()
    con.close()
    until = codec.format_time(middle)

    report = replay_json("--db", alliance["db"], "--until", until)

    # the rebuilt entries equal the live entries caused by each partition's log up to `until`
    assert report["mode"] == "until" and report["identical"] is True
    then = {(r["shop_id"], r["currency"]): r for r in report["balances"]}
    now = {(r["shop_id"], r["currency"]): r for r in balances(alliance["db"])}
    earned = lambda rows: sum(r.get("earned_pending", 0) + r.get("earned_payable", 0) for r in rows.values())  # noqa: E731
    assert 0 < earned(then) < earned(now)
    # the same, found independently: each archived partition cut at its first message stamped after
    # `until`, ingested as that partition
    prefix_db = tmp_path / "prefix.duckdb"
    for partition in archive_partitions(alliance["archive"], alliance["topic"]):
        lines = []
        for datum in iter_partition(alliance["archive"], alliance["topic"], partition):
            if datum["timestamp"] > middle:
                break
            lines.append(codec.record_to_json_line(codec.decode(datum["value"])) + "\n")
        (tmp_path / f"p{partition}.jsonl").write_text("".join(lines))
        run("ingest", tmp_path / f"p{partition}.jsonl", "--db", prefix_db, "--partition", partition)
    assert {(r["shop_id"], r["currency"]): r for r in balances(prefix_db)} == then
    # the same cut from Kafka's own timestamps
    from_kafka = replay_json("--db", alliance["db"], "--until", until, "--source", "kafka",
                             "--bootstrap-servers", alliance["bootstrap"])
    assert from_kafka["identical"] is True and from_kafka["balances"] == report["balances"]


@pytest.mark.kafka
def test_replay_reads_a_ledger_that_consume_holds(alliance, tmp_path):
    held = tmp_path / "held.duckdb"
    shutil.copy(alliance["db"], held)
    proc = subprocess.Popen(
        [sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", alliance["bootstrap"],
         "--db", str(held), "--topic", alliance["topic"], "--group", f"{alliance['topic']}-held",
         "--until-idle", "120"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not os.path.exists(socket_path(held)):
            assert proc.poll() is None and time.monotonic() < deadline, "consume did not start"
            time.sleep(0.1)
        while True:
            try:
                query(held, stats, wait=1)
                break
            except ReadError:
                assert time.monotonic() < deadline
        with pytest.raises(duckdb.IOException):
            duckdb.connect(str(held), read_only=True)

        report = replay_json("--db", held)

        assert report["snapshot"]["via"] == "consumer"
        assert_identical(report, alliance["db"])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_what_if_a_seven_day_window_at_ten_percent_in_baby_care(tmp_path):
    live = tmp_path / "baby-care.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", live)
    before, counts = digest(live), row_counts(live)
    # The alliance's one agreement, (*, *) "default" v1 (event a-1): cps 800 bp, toys 1000 bp, window 15 days,
    # hold 15 days. What if it had said 10 % on everything with a 7-day window?
    terms = {"agreement_id": "default", "version": 1, "effective_from": "2026-11-01T00:00:00.000Z",
             "merchant_shop_id": "*", "referrer_shop_id": "*", "model": "cps", "rate_bp": 1000,
             "category_rates_bp": {}, "attribution_window_days": 7, "hold_days": 15}
    whatif = tmp_path / "seven-days-ten-percent.jsonl"
    whatif.write_text(json.dumps({
        "event_id": "a-1-whatif", "type": "agreement", "occurred_at": "2026-10-31T12:00:00.000Z",
        "alliance_id": "baby-care", "shop_id": "alliance", "visitor_id": None, "agreement": terms}) + "\n")

    report = replay_json("--db", live, "--agreements", whatif)

    # By hand, SPEC §13 step by step, rounding half up per line (§6, §7):
    # 1. o1 at wang-bath, referred by li-kids (click 5 minutes before, inside 7 days):
    #    2 × 4,950 × 10 % = 990; 1 × 3,333 × 10 % = 333.3 → 333; C = 1,323 (live: 792 + 267 = 1,059).
    # 2. refund 3,333 of 13,233: reversed round(1,323 × 3,333 / 13,233) = round(333.22) = 333;
    #    990 remains (live: 1,059 − 267 = 792).
    # 3. o2: clicked 11-02, ordered 11-20, 18 days: outside 7 days as it was outside 15: nothing.
    # 4. o3 at li-kids, last click zhang-toys 30 minutes before: 25,900 × 10 % = 2,590 (live: 8 % = 2,072).
    # 5. self-referral: nothing.
    # 6. settlement 11-30, hold 15: o1 (11-01) and o3 (11-04) are payable, as live.
    # Changes: li-kids earns 990 − 792 = +198 and owes 2,590 − 2,072 = +518; wang-bath owes +198;
    # zhang-toys earns +518.
    assert [(c["shop_id"], c["account"], c["live"], c["rebuilt"], c["change"])
            for c in report["comparison"]["balance_changes"]] == [
        ("li-kids", "earned_payable", 792, 990, 198),
        ("li-kids", "owed_payable", 2072, 2590, 518),
        ("wang-bath", "owed_payable", 792, 990, 198),
        ("zhang-toys", "earned_payable", 2072, 2590, 518),
    ]
    assert [(u["action"], u["replaced_event_ids"]) for u in report["what_if"]] == [("replaced", ["a-1"])]
    assert report["mode"] == "what-if" and report["what_if_quarantined"] == []
    shown = replay("--db", live, "--agreements", whatif).output
    assert "balance changes against the live ledger" in shown and "518" in shown and "198" in shown

    # the same terms as a new version 2, added: it resolves over v1 (same effective_from, greater version)
    added = tmp_path / "version-2.jsonl"
    added.write_text(json.dumps({
        "event_id": "a-2-whatif", "type": "agreement", "occurred_at": "2026-10-31T12:00:00.000Z",
        "alliance_id": "baby-care", "shop_id": "alliance", "visitor_id": None,
        "agreement": {**terms, "version": 2}}) + "\n")
    report_added = replay_json("--db", live, "--agreements", added)
    assert report_added["comparison"]["balance_changes"] == report["comparison"]["balance_changes"]
    assert [u["action"] for u in report_added["what_if"]] == ["added"]

    assert digest(live) == before and row_counts(live) == counts, "a what-if never writes to the live ledger"


def test_a_what_if_agreement_the_fold_rejects_is_reported(tmp_path):
    live = tmp_path / "baby-care.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", live)
    whatif = tmp_path / "retroactive.jsonl"
    whatif.write_text(json.dumps({
        "event_id": "a-9", "type": "agreement", "occurred_at": "2026-11-10T00:00:00.000Z",
        "alliance_id": "baby-care", "shop_id": "alliance", "visitor_id": None,
        "agreement": {"agreement_id": "default", "version": 9, "effective_from": "2026-11-01T00:00:00.000Z",
                      "merchant_shop_id": "*", "referrer_shop_id": "*", "model": "none"}}) + "\n")
    report = replay_json("--db", live, "--agreements", whatif)
    assert [q["reason"] for q in report["what_if_quarantined"]] == ["retroactive_agreement"]
    assert report["comparison"]["balance_changes"] == []
    assert "retroactive_agreement" in replay("--db", live, "--agreements", whatif).output


def test_until_on_a_file_ledger_goes_by_occurred_at(tmp_path):
    live = tmp_path / "baby-care.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", live)
    # Noon on 11-03, in file order: o1 earned li-kids 1,059 and the 3,333 refund took back 267 (SPEC §13,
    # steps 1–2); the next line, c-3 on 11-04, ends the log as it stood; nothing settled yet.
    report = replay_json("--db", live, "--until", "2026-11-03T12:00:00Z")
    assert report["identical"] is True
    assert [(r["shop_id"], r["earned_pending"], r["owed_pending"], r["earned_payable"]) for r in report["balances"]] \
        == [("li-kids", 792, 0, 0), ("wang-bath", 0, 792, 0)]


def test_options_that_cannot_work_exit_2_with_a_message(tmp_path):
    live = tmp_path / "baby-care.duckdb"
    run("ingest", SCENARIOS / "baby-care.jsonl", "--db", live)
    no_kafka = replay("--db", live, "--source", "kafka", code=2, env={"KAFKA_BOOTSTRAP_SERVERS": None})
    assert "--bootstrap-servers" in no_kafka.output
    assert "no ledger" in replay("--db", tmp_path / "missing.duckdb", code=2).output
    assert "exists" in replay("--db", live, "--keep", live, code=2).output
    assert "not an ISO 8601 time" in replay("--db", live, "--until", "yesterday", code=2).output
    not_agreements = tmp_path / "orders.jsonl"
    not_agreements.write_text((SCENARIOS / "baby-care.jsonl").read_text().splitlines()[6] + "\n")
    assert "agreement events only" in replay("--db", live, "--agreements", not_agreements, code=2).output
    kept = tmp_path / "rebuilt.duckdb"
    replay("--db", live, "--keep", kept)
    assert ledger_of(kept) == ledger_of(live)
    stored = "SELECT topic, partition, \"offset\", event_id, avro FROM events ORDER BY ALL"
    with duckdb.connect(str(kept), read_only=True) as k, duckdb.connect(str(live), read_only=True) as l:
        assert k.execute(stored).fetchall() == l.execute(stored).fetchall()  # a kept rebuild keeps the events


def test_replay_writes_no_batch_after_one_that_could_not_be_written(tmp_path, monkeypatch):
    """A replay's disk fills while a batch is written and the batches folded after it wait in line:
    none of them is written, or a kept rebuild would hold later events without that batch's (a gap in
    each log's chain). The replay stops on the failure."""
    from refledger.replay.history import ReplayError, stored_history
    from refledger.replay.replayer import fold_history
    from refledger.replay.snapshot import take_snapshot
    from refledger.store.ledger_file import LedgerStore, StoreError
    from tests.boundary_support import ingested

    live = ingested(simulate(SimulationConfig(seed=21, visitors=300, days=35)), tmp_path, "live")

    write_batch, writes = LedgerStore.write_batch, []

    def disk_fills_at_the_second_batch(self, batch):
        writes.append(batch)
        if len(writes) == 2:
            time.sleep(1.5)  # the batches after it are folded and queued meanwhile
            raise StoreError(f"cannot write to ledger {self.path}: No space left on device")
        return write_batch(self, batch)

    monkeypatch.setattr(LedgerStore, "write_batch", disk_fills_at_the_second_batch)
    con = duckdb.connect()  # the replay's scratch copy of the live ledger
    try:
        take_snapshot(live, con, with_values=True)
        with pytest.raises(ReplayError, match="No space left"):
            fold_history(stored_history(con), tmp_path / "rebuilt.duckdb", batch_size=500, fold_process=True)
    finally:
        con.close()
    assert len(writes) == 2, "no batch was written after the one that failed"
    rebuilt = duckdb.connect(str(tmp_path / "rebuilt.duckdb"), read_only=True)
    try:
        assert rebuilt.execute("SELECT count(*) FROM batches").fetchone() == (1,)
    finally:
        rebuilt.close()


def test_a_scratch_rebuild_posts_what_a_kept_one_posts_without_a_copy_of_the_events(tmp_path):
    """A replay that keeps no rebuilt ledger compares its entries, quarantine and positions with the
    live ledger's and throws it away: it stores no second copy of the events it read, and posts,
    quarantines and reaches exactly what a kept rebuild does."""
    from refledger.replay.history import stored_history
    from refledger.replay.replayer import fold_history
    from refledger.replay.snapshot import take_snapshot
    from tests.boundary_support import ingested

    live = ingested(simulate(SimulationConfig(seed=23, visitors=300, days=35)), tmp_path, "live")
    con = duckdb.connect()
    try:
        take_snapshot(live, con, with_values=True)
        kept = fold_history(stored_history(con), tmp_path / "kept.duckdb", batch_size=500)
        scratch = fold_history(stored_history(con), tmp_path / "scratch.duckdb", batch_size=500, keep_events=False)
    finally:
        con.close()
    assert scratch == kept  # the same counts and positions reached

    def tables(path):
        rebuilt = duckdb.connect(str(path), read_only=True)
        try:
            return {table: rebuilt.execute(f"SELECT * EXCLUDE (batch_id) FROM {table} ORDER BY ALL").fetchall()
                    for table in ("events", "order_events", "entries", "quarantine", "positions", "decisions")}
        finally:
            rebuilt.close()

    kept_rows, scratch_rows = tables(tmp_path / "kept.duckdb"), tables(tmp_path / "scratch.duckdb")
    assert len(kept_rows["events"]) > 1000 and kept_rows["entries"]
    assert scratch_rows["events"] == [] and scratch_rows["order_events"] == []
    for table in ("entries", "quarantine", "positions", "decisions"):
        assert scratch_rows[table] == kept_rows[table], table
