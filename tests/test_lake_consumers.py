"""Many `consume` processes, one ledger on DuckLake, against a real broker and a real catalog.

* The same topic consumed by one process into a DuckDB file, and by two and
  then three processes into a lake (one killed with SIGKILL twice, one joining
  mid-stream), gives the same balances, entries, chain heads, quarantine and
  counts.
* A consumer paused (SIGSTOP) past its session timeout loses its partitions
  to another member; resumed (SIGCONT), it never commits to them again.
* Readers attach the lake while three consumers write it: every read is
  prompt and sees whole batches only.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from refledger.producers.simulate import SimulationConfig, simulate
from refledger.store import queries
from refledger.store.readside import query
from tests.lake_support import consume_process, epochs_in_commit_order, events_read, ledger_facts
from tests.pipeline_support import publish

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def alliance(seed: int, visitors: int = 150) -> list[dict]:
    """About a hundred days of an alliance: settlements, closes, refunds, late and bad events."""
    return list(simulate(SimulationConfig(seed=seed, shops=8, visitors=visitors, days=100)))


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# longer than the group's session timeout (10 s): a member killed with SIGKILL leaves no word, and the
# others get its partitions only once the broker has given up on it
UNTIL_IDLE = 25


def finish(procs, timeout: float = 600) -> None:
    """Every consumer stops (by itself when idle, or told to) and exits 0; one that does not is killed, and
    fails the test."""
    try:
        for proc in procs:
            assert proc.wait(timeout=timeout) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()


STARTED_S = 20  # a consumer this old has opened its ledger and taken SIGTERM as "finish and exit 0"


def stop_once_all_read(procs, lake, sent: int) -> None:
    """Once the lake has read the whole topic, stop the consumers as an operator does (SIGTERM: each
    finishes its batch, commits and exits 0) rather than waiting out their idle time. One started
    moments ago is given time to start first: before that, SIGTERM ends a process the default way."""
    try:
        wait_for(lambda: events_read(lake) >= sent, 600, "the whole topic in the lake")
    finally:
        for proc in procs:
            time.sleep(max(0.0, proc.started_at + STARTED_S - time.monotonic()))
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        finish(procs)


def test_consumers_of_one_group_write_the_ledger_one_consumer_writes(kafka_bootstrap, kafka_topic, lake, tmp_path):
    records = alliance(seed=21)
    sent = publish(kafka_bootstrap, kafka_topic, records)
    file = tmp_path / "one-consumer.duckdb"
    with open(tmp_path / "file.log", "wb") as log:
        finish([consume_process(kafka_bootstrap, kafka_topic, file, f"{kafka_topic}-file", log)])

    group = f"{kafka_topic}-lake"
    with open(tmp_path / "lake.log", "wb") as log:
        first = consume_process(kafka_bootstrap, kafka_topic, lake, group, log, UNTIL_IDLE)
        second = consume_process(kafka_bootstrap, kafka_topic, lake, group, log, UNTIL_IDLE)
        wait_for(lambda: events_read(lake) >= sent // 5, 300, "a fifth of the topic in the lake")
        second.send_signal(signal.SIGKILL)                 # mid-batch, perhaps: nothing lost, nothing twice
        second.wait()
        third = consume_process(kafka_bootstrap, kafka_topic, lake, group, log, UNTIL_IDLE)   # joins mid-stream
        wait_for(lambda: events_read(lake) >= sent // 2, 300, "half the topic in the lake")
        first.send_signal(signal.SIGKILL)
        first.wait()
        again = consume_process(kafka_bootstrap, kafka_topic, lake, group, log, UNTIL_IDLE)   # the killed one comes back
        stop_once_all_read([third, again], lake, sent)

    assert events_read(lake) >= sent
    on_lake, on_file = ledger_facts(lake), ledger_facts(file)
    assert on_lake["entries"] == on_file["entries"]
    assert on_lake["heads"] == on_file["heads"]
    assert on_lake["balances"] == on_file["balances"]
    assert on_lake["quarantine"] == on_file["quarantine"]
    assert on_lake["stats"] == on_file["stats"]
    assert len(on_lake["stats"]["positions"]) == 6 and on_lake["stats"]["snapshots"] > 0


def test_a_paused_consumer_never_commits_to_partitions_taken_over(kafka_bootstrap, kafka_topic, lake, tmp_path):
    records = alliance(seed=33, visitors=250)
    sent = publish(kafka_bootstrap, kafka_topic, records)
    group = f"{kafka_topic}-fenced"
    paused_log, other_log = tmp_path / "paused.log", tmp_path / "other.log"
    with open(paused_log, "wb") as p_log, open(other_log, "wb") as o_log:
        paused = consume_process(kafka_bootstrap, kafka_topic, lake, group, p_log, until_idle=UNTIL_IDLE)
        wait_for(lambda: events_read(lake) >= sent // 10, 300, "the first consumer to write")
        paused.send_signal(signal.SIGSTOP)                 # holding its partitions, perhaps a batch half-written
        stopped_at = events_read(lake)
        other = consume_process(kafka_bootstrap, kafka_topic, lake, group, o_log, until_idle=UNTIL_IDLE)
        # past the session timeout the group gives every partition to the other member, which claims them
        wait_for(lambda: len(claimed_by_latest_epoch(lake)) == 6, 120, "the other member to claim all partitions")
        wait_for(lambda: events_read(lake) > stopped_at, 240, "the other member to write")
        paused.send_signal(signal.SIGCONT)
        finish([paused, other])

    # every batch of a partition committed after a claim belongs to that claim or a later one
    for log_name, epochs in query(lake, epochs_in_commit_order).items():
        assert epochs == sorted(epochs), (log_name, epochs)
    assert events_read(lake) >= sent
    replayed = json.loads(run_cli("replay", "--db", str(lake), "--source", "kafka",
                                  "--bootstrap-servers", kafka_bootstrap, "--topic", kafka_topic, "--format", "json"))
    assert replayed["identical"], replayed["comparison"]
    refused = "this one's batch was not written" in paused_log.read_text()
    print(f"the resumed consumer had a batch refused: {refused}")


def claimed_by_latest_epoch(lake) -> set[str]:
    """The partitions whose latest claim is the latest claim of all (the last member to claim)."""
    rows = query(lake, _latest_claims)
    latest = max((epoch for _log, epoch in rows), default=None)
    return {log for log, epoch in rows if epoch == latest}


def _latest_claims(cur):
    return [[f"{t}:{p}", int(e)] for t, p, e in cur.execute(
        "SELECT topic, partition, max(epoch) FROM owners WHERE partition >= 0 GROUP BY ALL").fetchall()]


def run_cli(*args) -> str:
    from click.testing import CliRunner

    from refledger.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return result.output


def whole_batches(cur) -> dict:
    """What the batches say they wrote against what the tables hold, in one snapshot."""
    [(entries_said, events_said, read)] = cur.execute(
        "SELECT coalesce(sum(entries_posted), 0), coalesce(sum(events_stored), 0), coalesce(sum(events_read), 0) "
        "FROM batches").fetchall()
    [(entries,)] = cur.execute("SELECT count(*) FROM entries").fetchall()
    [(events,)] = cur.execute("SELECT count(*) FROM events").fetchall()
    sums = cur.execute("SELECT currency, sum(amount) FROM entries GROUP BY ALL HAVING sum(amount) <> 0").fetchall()
    return {"entries": [int(entries_said), int(entries)], "events": [int(events_said), int(events)],
            "read": int(read), "unbalanced": [[c, int(s)] for c, s in sums]}


def test_readers_see_whole_batches_and_never_wait_while_three_consumers_write(kafka_bootstrap, kafka_topic, lake,
                                                                               tmp_path):
    records = alliance(seed=45, visitors=400)
    sent = publish(kafka_bootstrap, kafka_topic, records)
    group = f"{kafka_topic}-readers"
    reads = []
    with open(tmp_path / "consumers.log", "wb") as log:
        # batches of 5,000: the readers must meet the ledger between many commits, not two or three
        procs = [consume_process(kafka_bootstrap, kafka_topic, lake, group, log, UNTIL_IDLE, compact_every=5,
                                 batch_records=5000)
                 for _ in range(3)]
        try:
            wait_for(lambda: events_read(lake) > 0, 300, "the first batch")
            deadline = time.monotonic() + 600
            while not reads or reads[-1][1]["read"] < sent:
                assert time.monotonic() < deadline and any(p.poll() is None for p in procs), "the topic was read"
                started = time.monotonic()
                seen = query(lake, whole_batches)
                balances = query(lake, queries.balances)
                reads.append((time.monotonic() - started, seen, balances))
                time.sleep(0.1)
        finally:
            stop_once_all_read(procs, lake, sent)
    progress = [seen["read"] for _, seen, _ in reads]
    assert len({r for r in progress if 0 < r < sent}) >= 3, "reads came while the consumers wrote"
    assert progress == sorted(progress), "a later read never sees less"
    for seconds, seen, balances in reads:
        assert seen["entries"][0] == seen["entries"][1] and seen["events"][0] == seen["events"][1], seen
        assert seen["unbalanced"] == []
        for currency in {b["currency"] for b in balances if b["currency"] != "CLICK"}:
            rows = [b for b in balances if b["currency"] == currency]
            earned = sum(b["earned_pending"] + b["earned_payable"] + b["received"] for b in rows)
            owed = sum(b["owed_pending"] + b["owed_payable"] + b["paid_out"] for b in rows)
            assert earned == owed
    slowest = max(seconds for seconds, _, _ in reads)
    assert slowest < 20, f"a read took {slowest:.1f}s"
    assert query(lake, queries.stats)["events_read"] >= sent
