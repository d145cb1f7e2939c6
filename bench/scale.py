"""Scale benchmark: `consume` into one DuckDB file, into a DuckLake, and two consumers into a DuckLake.

One run, one simulated topic of 6 partitions, three timings, each a fresh
ledger and consumer group, every consumer pinned to one core with taskset
(its fold process inherits the core):

* file:   one consumer into a DuckDB file, on core 0;
* lake-1: one consumer into a DuckLake, on core 0;
* lake-2: two consumers of one group into a DuckLake, on cores 0 and 1.

A run's rate is the events the ledger gained from the moment every consumer
of the run holds its partitions (on a lake: the latest claims of the six
partitions name as many consumers as the run has; on the file: its first
batch) to the moment it held the whole topic, divided by the time between
them. The consumers' start-up, their joining the group and the rebalances
while the second one joins are left out, and so is the idle wait at the end.
The ledger is watched every 0.2 s. Over the same window it counts
the CPU the consumers used (with their fold processes) and the CPU the rest
of the machine used (the broker, the catalog, this watcher), in cores busy:
where the broker and catalog take part of the second core, two consumers
cannot reach twice one. It
reports lake-2 / lake-1 (two consumers against one: target ≥ 1.6) and
lake-1 / file (a consumer's rate into the lake against into a file: target
≥ 0.8), with the load average before and after.

    python bench/scale.py --events 400000

Uses $KAFKA_BOOTSTRAP_SERVERS or starts a local broker; starts its own
catalog (`refledger catalog`) on a free port. Prints a table, then one JSON
line with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
from procfs import machine_busy_s, tree_cpu_s

from refledger import broker, catalog
from refledger.producers.publisher import publish_records
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.render import emit
from refledger.store.lake import connect, lake_ledger
from refledger.store.ledger_file import StoreError
from refledger.store.queries import stats
from refledger.store.readside import ReadError, query


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def consumer(bootstrap: str, topic: str, db, group: str, core: int, log) -> subprocess.Popen:
    args = ["taskset", "-c", str(core), sys.executable, "-m", "refledger", "consume", "--bootstrap-servers",
            bootstrap, "--topic", topic, "--group", group, "--until-idle", "6", "--format", "json",
            "--db", str(db)]
    if not isinstance(db, (str, Path)):
        args += ["--data-path", db.data_path, "--compact-every", "60"]
    return subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)


class Watcher:
    """How many events the ledger has read, asked cheaply every 0.2 s: a DuckDB file through its
    consumer's socket; a lake on one read-only connection kept open, a new snapshot each time (a
    new connection per look would cost the consumers' cores more than the look)."""

    def __init__(self, db):
        self.db, self.con = db, None

    def look(self) -> tuple[int, int]:
        """(events read, consumers holding the partitions by their latest claims; 1 for a file)."""
        if isinstance(self.db, (str, Path)):
            try:
                return query(self.db, stats)["events_read"], 1
            except ReadError:
                return 0, 0
        try:
            if self.con is None:
                self.con = connect(self.db, read_only=True)
            self.con.execute("BEGIN TRANSACTION")
            try:
                [(read,)] = self.con.execute("SELECT coalesce(sum(events_read), 0) FROM batches").fetchall()
                [(holders, partitions)] = self.con.execute(
                    """SELECT count(DISTINCT owner), count(*) FROM (
                           SELECT arg_max(owner, epoch) AS owner FROM owners WHERE partition >= 0
                           GROUP BY topic, partition)""").fetchall()
            finally:
                self.con.execute("ROLLBACK")
            return int(read), int(holders) if partitions == 6 else 0
        except (StoreError, duckdb.Error):
            return 0, 0

    def close(self) -> None:
        if self.con is not None:
            self.con.close()


def timed_run(name: str, bootstrap: str, topic: str, db, cores: list[int], total: int, logs: Path) -> dict:
    """Start one consumer per core, watch the ledger fill, and time it from first batch to last."""
    group = f"bench-{name}-{uuid.uuid4().hex[:6]}"
    with open(logs / f"{name}.log", "wb") as log:
        procs = [consumer(bootstrap, topic, db, group, core, log) for core in cores]
        watcher = Watcher(db)
        first = None
        seen = 0
        try:
            while seen < total:
                if all(p.poll() is not None for p in procs):
                    raise SystemExit(f"{name}: the consumers stopped at {seen:,} of {total:,} events; see {logs}")
                time.sleep(0.2)
                seen, holders = watcher.look()
                if first is None and seen > 0 and holders == len(cores):
                    first = (time.perf_counter(), seen)
                    cpu_first = (sum(tree_cpu_s(p.pid) for p in procs), machine_busy_s())
            done = time.perf_counter()
            cpu_done = (sum(tree_cpu_s(p.pid) for p in procs), machine_busy_s())
        finally:
            watcher.close()
        for p in procs:
            p.wait(timeout=300)
    stored = _stored_bytes(db)
    seconds = done - first[0]
    rate = (total - first[1]) / seconds
    consumers_cores = (cpu_done[0] - cpu_first[0]) / seconds
    other_cores = (cpu_done[1] - cpu_first[1]) / seconds - consumers_cores
    say(f"  {name}: {rate:,.0f} events/s over {seconds:.1f}s; cores busy: consumers {consumers_cores:.2f}, "
        f"the rest (broker, catalog, this watcher) {other_cores:.2f}")
    return {"run": name, "consumers": len(cores), "events": total, "seconds": round(seconds, 2),
            "events_per_second": int(rate), "per_consumer": int(rate / len(cores)),
            "consumer_cores": round(consumers_cores, 2), "other_cores": round(other_cores, 2),
            "events_per_consumer_cpu_s": int(rate / consumers_cores) if consumers_cores else None,
            "stored_bytes_per_event": round(stored / total)}


def _stored_bytes(db) -> int:
    """The ledger's size on disk once its consumers stopped: the DuckDB file, or the lake's Parquet
    files under its data path (as the consumers' last compaction left them; the catalog not counted)."""
    if isinstance(db, (str, Path)):
        return Path(db).stat().st_size
    return sum(f.stat().st_size for f in Path(db.data_path).rglob("*") if f.is_file())


def half_shares(bootstrap: str, topic: str) -> float:
    """The share of the topic's messages in partitions 0-2 (the first consumer's, by the range assignor)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(6)])
    finally:
        consumer.close()
    return sum(o for tp, o in ends.items() if tp.partition < 3) / sum(ends.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--cores", default="0,1", help="two cores to pin consumers to")
    args = parser.parse_args()
    cores = [int(c) for c in args.cores.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="refledger-scale-") as scratch:
        scratch = Path(scratch)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        local_broker = None
        if not bootstrap:
            local_broker = scratch / "broker"
            bootstrap = broker.start(broker.free_port(), local_broker, wait_s=120).bootstrap
        catalog_dir = scratch / "catalog"
        info = catalog.start(catalog_dir, broker.free_port())
        try:
            topic = f"bench-scale-{uuid.uuid4().hex[:8]}"
            say(f"producing about {args.events:,} events to {topic} (6 partitions)")
            # 30 shops, seed 2: the range assignor's two halves of the partitions (0-2, 3-5) carry about the
            # same traffic, so the two consumers have the same work and the figure measures the ledger,
            # not how the merchants happened to hash (with 12 shops one half carries 58 %)
            records = simulate(SimulationConfig(seed=2, shops=30, visitors=20_000, days=90, events=args.events))
            _events, total = publish_records(records, bootstrap, topic, partitions=6)
            halves = half_shares(bootstrap, topic)
            say(f"  {total:,} messages; partitions 0-2 hold {halves:.1%} of them")

            def lake(name):
                catalog.create_database(info.port, name)
                path = catalog_dir / "lake" / name
                path.mkdir(parents=True)
                return lake_ledger(catalog.connection_db(info.port, name), str(path))

            runs = [timed_run("file", bootstrap, topic, scratch / "ledger.duckdb", cores[:1], total, scratch),
                    timed_run("lake-1", bootstrap, topic, lake("one"), cores[:1], total, scratch),
                    timed_run("lake-2", bootstrap, topic, lake("two"), cores[:2], total, scratch)]
        finally:
            catalog.stop(catalog_dir)
            if local_broker is not None:
                broker.stop(local_broker)
    by = {r["run"]: r for r in runs}
    figures = {
        "two_consumers_vs_one": round(by["lake-2"]["events_per_second"] / by["lake-1"]["events_per_second"], 2),
        "lake_vs_file_per_process": round(by["lake-1"]["events_per_second"] / by["file"]["events_per_second"], 2),
        "first_half_share": round(halves, 3),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(),
    }
    columns = ("run", "consumers", "events", "seconds", "events_per_second", "per_consumer", "consumer_cores",
               "other_cores", "events_per_consumer_cpu_s", "stored_bytes_per_event")
    emit(runs, "table", columns, title="consume: a DuckDB file, a DuckLake, two consumers into a DuckLake",
         numeric=columns[1:])
    say(f"two consumers / one: {figures['two_consumers_vs_one']} (target ≥ 1.6); "
        f"lake / file per process: {figures['lake_vs_file_per_process']} (target ≥ 0.8); "
        f"load average {figures['load_average_before']} → {figures['load_average_after']}")
    print(json.dumps({"runs": runs, **figures}))


if __name__ == "__main__":
    main()
