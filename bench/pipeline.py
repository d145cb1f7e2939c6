"""Pipeline benchmark: producer, bare consume+decode loop, `consume` into DuckDB, replay, bulk SQL.

All figures come from one run on the same topic, so their ratios mean
something on any machine:

    python bench/pipeline.py --events 1000000

The signed stage folds the same simulated alliance signed (SPEC §4a: a
policy requiring signatures, every event signed by its emitter), published
to its own topic, with the engine, and reports its rate against the
unsigned `consume` with the engine (``ratio_consume_signed_over_engine``).

It also reports the CPU an event costs (both of `consume`'s processes, all
their threads; the bare loop's process) and the ceiling that alone sets:
``consume_engine_cpu_ceiling_events_per_s`` is the rate `consume` would reach
with every core of the machine busy with it and nothing else, not even the
broker; ``ratio_cpu_ceiling_over_bare`` that rate against the bare loop's. A
ratio target above it cannot be met on this machine by overlapping work
better, only by spending less CPU on an event. ``…_parent_cores_busy`` and
``…_fold_cores_busy`` split the cores between `consume`'s two processes: the
one near a whole core (its interpreter lock) is the one that sets the pace.

`consume` and replay are both timed from their first batch committed to
their last, over the events of the batches after the first (a consumer's
group join and a replay's set-up are not its rate); the bare loop from its
first records to its last. ``replay_fold_events_per_s`` is the rate
`replay` itself reports, over its whole fold: the fold process's start, the
first query over the stored log (it sorts the whole log) and the rebuilt
ledger's last checkpoint included.

Uses $KAFKA_BOOTSTRAP_SERVERS or starts a local broker on a free port.
Prints a table, then one JSON line with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from refledger.consumers.batch import LogProcessor
from refledger.consumers.kafka_consumer import consume
from refledger.consumers.verification import signed_fold
from refledger.producers.publisher import AlliancePublisher
from refledger.producers.signed_alliance import signed_simulation
from refledger.producers.simulate import SimulationConfig, simulate
from refledger import broker
from refledger.compiled import ACCELERATED, compiled_modules
from refledger.producers.kafka_admin import create_topic
from refledger.render import emit
from refledger.store.ledger_file import LedgerStore


CORES = len(os.sched_getaffinity(0))


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def produce(bootstrap: str, topic: str, records) -> tuple[int, float]:
    create_topic(bootstrap, topic, 6)
    started = time.perf_counter()
    with AlliancePublisher(bootstrap, topic, linger_ms=50) as pub:
        for i, record in enumerate(records, 1):
            pub.publish(record)
            if i % 200_000 == 0:
                say(f"  produced {i:,}")
        sent = pub.sent
    return sent, time.perf_counter() - started


def bare_consume_decode(bootstrap: str, topic: str, total: int, cpu: dict | None = None) -> float:
    """The ceiling, with no project code: a kafka-python poll loop and fastavro.schemaless_reader,
    the writer schema of each message looked up by the fingerprint in its single-object header
    (older versions resolved to the newest), as anyone would write it from the .avsc files."""
    from io import BytesIO

    from fastavro import schemaless_reader
    from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

    root = Path(__file__).resolve().parents[1] / "schemas"
    writers, newest = {}, None
    for version in sorted((d for d in root.glob("v*") if d.is_dir()), key=lambda d: int(d.name[1:])):
        newest = load_schema(version / "refledger.events.Event.avsc")
        writers[bytes.fromhex(fingerprint(to_parsing_canonical_form(newest), "CRC-64-AVRO"))] = newest
    # the fetch sizes and records per poll `consume` uses, so both read alike
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             max_poll_records=20_000, fetch_max_bytes=64 * 1024 * 1024,
                             max_partition_fetch_bytes=8 * 1024 * 1024)
    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    seen = 0
    first = first_cpu = None
    while seen < total:
        for records in consumer.poll(timeout_ms=500, max_records=20_000).values():
            if first is None:
                first, first_cpu = time.perf_counter(), time.process_time()
            for r in records:
                value = r.value
                writer = writers[value[2:10]]
                schemaless_reader(BytesIO(value[10:]), writer, None if writer is newest else newest)
            seen += len(records)
    elapsed = time.perf_counter() - first
    if cpu is not None:  # this process's CPU, all its threads (kafka-python's network thread among them)
        cpu["seconds"] = time.process_time() - first_cpu
    consumer.close()
    return elapsed


def _cpu_seconds(child_pid: int) -> tuple[float, float]:
    """CPU seconds so far of this process (all its threads) and of its fold process."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    fields = Path(f"/proc/{child_pid}/stat").read_text().rsplit(")", 1)[1].split()
    child = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return own.ru_utime + own.ru_stime, child


def ledger_consume(bootstrap: str, topic: str, total: int, db: Path, fold_factory,
                   cpu: dict | None = None) -> tuple[float, float]:
    """`consume` as the CLI runs it, timed from its first commit to its last: the events of every
    batch after the first (the rate is theirs; returned as the seconds ``total`` events take at that
    rate, so that rates and CPU an event compare with the bare loop's, timed over all its events);
    and the seconds spent afterwards folding DuckDB's write-ahead log into the file (the consumer
    checkpoints once it is idle, then closes). ``cpu`` gets the cores it kept busy on average from
    its first commit to its last (CPU seconds of both its processes over those wall seconds), and
    each process's share: ``parent_cores`` (polling, decoding, writing DuckDB, under one interpreter
    lock) and ``fold_cores`` (the fold process). Whichever is near one core sets the pace."""
    store = LedgerStore(db)
    processor = LogProcessor(store, fold_factory, source=f"kafka:{topic}", fold_worker=True)
    marks = {}
    collector = {"seconds": 0.0, "collections": 0}

    def on_collection(phase: str, info: dict) -> None:
        """The main thread's time in the garbage collector (its thresholds: consumers.folding)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            collector["started"] = time.thread_time()
        elif "started" in collector:
            collector["seconds"] += time.thread_time() - collector.pop("started")
            collector["collections"] += 1

    def on_batch(summary):
        now = time.perf_counter()
        pid = processor.folds._process.pid
        if "first" not in marks:
            marks["first"], marks["first_cpu"] = now - 1e-9, _cpu_seconds(pid)
            marks["first_events"] = summary.events_read
        if summary.events_read >= total and "last" not in marks:
            marks["last"], marks["last_cpu"] = now, _cpu_seconds(pid)

    gc.callbacks.append(on_collection)
    try:
        consume(bootstrap, processor, topic=topic, group=f"{db.stem}-{time.time_ns()}", until_idle=3,
                handle_signals=False, on_batch=on_batch)
    finally:
        gc.callbacks.remove(on_collection)
    processor.close()
    # the first batch's events came before the window (a run of one batch: the whole run, as it was)
    timed = total - marks["first_events"]
    scale = total / timed if timed > 0 else 1.0
    if cpu is not None:
        cpu["collector_s"] = round(collector["seconds"], 2)
        cpu["collections"] = collector["collections"]
        wall = marks["last"] - marks["first"]
        (parent_first, fold_first), (parent_last, fold_last) = marks["first_cpu"], marks["last_cpu"]
        seconds = parent_last - parent_first + fold_last - fold_first
        cpu["seconds"] = seconds * scale  # for `total` events, as the returned seconds are
        cpu["cores"] = round(seconds / wall, 2)
        cpu["parent_cores"] = round((parent_last - parent_first) / wall, 2)
        cpu["fold_cores"] = round((fold_last - fold_first) / wall, 2)
    started = time.perf_counter()
    store.close()  # folds what the idle checkpoint left in the write-ahead log into the file
    return (marks["last"] - marks["first"]) * scale, store.checkpoint_seconds + time.perf_counter() - started


def same_ledger(unsigned: Path, signed: Path) -> None:
    """The signed alliance must earn what the unsigned one earns, entry for entry: a signature
    check that refused good events (or let bad ones through) would show here."""
    import duckdb

    def totals(db: Path):
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute("""SELECT shop_id, account, currency, sum(amount), count(*) FROM entries
                                  GROUP BY ALL ORDER BY ALL""").fetchall()
        finally:
            con.close()

    if totals(unsigned) != totals(signed):
        raise SystemExit("the signed alliance's ledger differs from the unsigned one's")


def bulk_recompute(db: Path) -> dict:
    """`verify`'s independent SQL recomputation on the live ledger; it must agree with the fold."""
    import duckdb

    from refledger.replay.bulk import compare

    say("bulk SQL recomputation of every shop's totals, compared with the fold")
    con = duckdb.connect(str(db), read_only=True)
    try:
        started = time.perf_counter()
        problems, result = compare(con)
        seconds = time.perf_counter() - started
    finally:
        con.close()
    if problems:
        raise SystemExit("the SQL recomputation disagrees with the fold:\n" +
                         "\n".join(f"{where}: {what}" for where, what in problems))
    return {"bulk_events": result.events, "bulk_subjects_agreeing": result.subjects,
            "bulk_events_per_s": int(result.events / seconds),
            "bulk_sql_only_events_per_s": int(result.events / result.sql_seconds),
            "bulk_payload_decode_s": round(result.decode_seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--no-engine", action="store_true", help="Only produce and run the bare loop.")
    parser.add_argument("--no-signed", action="store_true", help="Skip the run with signatures required.")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="refledger-bench-"))
    started_broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        port = broker.free_port()
        say(f"starting a local broker on port {port}")
        started_broker = broker.start(port=port, directory=work / "broker")
        bootstrap = started_broker.bootstrap
    try:
        topic = f"bench-{time.time_ns()}"
        say(f"simulating and producing {args.events:,} events to {topic}")
        records = simulate(SimulationConfig(seed=args.seed, events=args.events))
        sent, produce_s = produce(bootstrap, topic, records)
        results = {"events_simulated": args.events, "messages": sent,
                   "producer_events_per_s": int(sent / produce_s)}

        if not args.no_engine and not args.no_signed:
            say(f"signing the same alliance and producing it to {topic}-signed")
            signed_sent, _ = produce(bootstrap, f"{topic}-signed",
                                     signed_simulation(simulate(SimulationConfig(seed=args.seed, events=args.events)),
                                                       args.seed))

        say("bare loop: kafka-python + fastavro.schemaless_reader, no project code")
        bare_cpu: dict = {}
        bare_s = bare_consume_decode(bootstrap, topic, sent, bare_cpu)
        results["bare_consume_decode_events_per_s"] = int(sent / bare_s)
        results["bare_cpu_us_per_event"] = round(bare_cpu["seconds"] / sent * 1e6, 1)

        if not args.no_engine:
            say("refledger consume into DuckDB with the commission engine")
            engine_cpu: dict = {}
            engine_s, close_s = ledger_consume(bootstrap, topic, sent, work / "engine.duckdb", signed_fold,
                                               engine_cpu)
            results["consume_engine_events_per_s"] = int(sent / engine_s)
            results["consume_engine_checkpoint_after_s"] = round(close_s, 2)
            results["ratio_consume_engine_over_bare"] = round(bare_s / engine_s, 3)
            results["consume_engine_cores_busy"] = engine_cpu["cores"]
            results["consume_engine_parent_cores_busy"] = engine_cpu["parent_cores"]
            results["consume_engine_fold_cores_busy"] = engine_cpu["fold_cores"]
            results["consume_engine_main_thread_collector_s"] = engine_cpu["collector_s"]
            results["consume_engine_main_thread_collections"] = engine_cpu["collections"]
            # The ceiling CPU alone sets on this machine: every core busy with `consume` and nothing
            # else (not even the broker), at the CPU an event cost in this run.
            engine_us = engine_cpu["seconds"] / sent * 1e6
            results["consume_engine_cpu_us_per_event"] = round(engine_us, 1)
            ceiling = CORES / engine_us * 1e6
            results["consume_engine_cpu_ceiling_events_per_s"] = int(ceiling)
            results["ratio_cpu_ceiling_over_bare"] = round(ceiling * bare_s / sent, 3)

            if not args.no_signed:
                say("refledger consume with the engine, signatures required: the same alliance signed")
                signed_cpu: dict = {}
                signed_s, _ = ledger_consume(bootstrap, f"{topic}-signed", signed_sent, work / "signed.duckdb",
                                             signed_fold, signed_cpu)
                same_ledger(work / "engine.duckdb", work / "signed.duckdb")
                results["consume_signed_events_per_s"] = int(signed_sent / signed_s)
                results["ratio_consume_signed_over_engine"] = round(engine_s * signed_sent / (signed_s * sent), 3)
                results["consume_signed_cores_busy"] = signed_cpu["cores"]
                results["consume_signed_parent_cores_busy"] = signed_cpu["parent_cores"]
                results["consume_signed_fold_cores_busy"] = signed_cpu["fold_cores"]
                signed_us = signed_cpu["seconds"] / signed_sent * 1e6
                results["consume_signed_cpu_us_per_event"] = round(signed_us, 1)
                # the signed rate with every core busy with it, against the unsigned rate measured
                results["ratio_signed_cpu_ceiling_over_engine"] = round(CORES / signed_us * 1e6 * engine_s / sent, 3)

            from refledger.replay.replayer import rebuild

            say("refledger replay: exact rebuild from the stored events, compared with the live ledger")
            written = []  # (time, events so far) at each batch committed, as `consume` is timed
            report = rebuild(work / "engine.duckdb", "events",
                             on_progress=lambda events: written.append((time.perf_counter(), events)))
            if not report.identical:
                raise SystemExit("replay differs from the live ledger: the benchmark's ledger is wrong")
            (first, first_events), (last, last_events) = written[0], written[-1]
            replay_rate = ((last_events - first_events) / (last - first) if first_events <= last_events / 2
                           else report.events_per_second)  # a run of a batch or two: its whole fold
            results["replay_events_per_s"] = int(replay_rate)
            results["ratio_replay_over_consume_engine"] = round(replay_rate * engine_s / sent, 3)
            # as `replay` itself reports it: the whole fold, with its fold process's start, its
            # first query over the stored log and the rebuilt ledger's last checkpoint
            results["replay_fold_events_per_s"] = int(report.events_per_second)
            results["ratio_replay_fold_over_consume_engine"] = round(report.events_per_second * engine_s / sent, 3)

            results.update(bulk_recompute(work / "engine.duckdb"))
    finally:
        if started_broker is not None:
            broker.stop(started_broker.directory)
        shutil.rmtree(work, ignore_errors=True)

    # the hot path's modules that ran compiled (refledger/compiled.py), of how many
    results["compiled_modules"] = f"{len(compiled_modules())} of {len(ACCELERATED)}"
    emit([{"measure": k, "value": v} for k, v in results.items()], "table", ("measure", "value"),
         title="pipeline benchmark (one run)", numeric=("value",))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
