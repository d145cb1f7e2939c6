"""Commands that move events: produce, simulate, consume, ingest, stats."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from refledger.options import bootstrap_option, db_option, format_option, kafka_login_option, topic_option, tz_option
from refledger.render import console, emit, emit_json, progress
from refledger.schemas.messages import DEFAULT_GROUP


def _processor(db: str, source: str, fold_worker: bool = False, snapshot_every: int | None = None):
    from refledger.consumers.batch import LogProcessor
    from refledger.consumers.folding import SNAPSHOT_EVERY
    from refledger.consumers.verification import signed_fold
    from refledger.store.storage import open_store

    store = open_store(db)
    return store, LogProcessor(store, signed_fold, source=source, fold_worker=fold_worker,
                               snapshot_every=snapshot_every or SNAPSHOT_EVERY)


snapshot_option = click.option(
    "--snapshot-every", type=click.IntRange(min=1), default=None, metavar="EVENTS",
    help="Snapshot each partition's fold after this many events (besides at every close) [default: 250000]: "
         "a restart folds at most that many events per partition on top of the latest snapshot.")


def _summary_table(summary: dict, title: str) -> None:
    rows = [{"what": k.replace("_", " "), "count": v} for k, v in summary.items() if isinstance(v, int)]
    emit(rows, "table", ("what", "count"), title=title, numeric=("count",))


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@bootstrap_option
@kafka_login_option
@topic_option
@click.option("--partitions", default=6, show_default=True, help="Partitions when the topic must be created.")
@click.option("--signing-key", type=click.Path(dir_okay=False), default=None,
              help="Sign every event not signed yet with this private key (PEM, from `refledger keygen`).")
@format_option("table", "json")
def produce(files, bootstrap_servers, login, topic, partitions, signing_key, fmt):
    """Publish JSON Lines or Avro container event files to Kafka as Avro.

    Events are validated first; a line that breaks the schema, or that is
    larger than the topic takes in one message, is not sent and is listed
    with its file and line (exit status 1); the other lines are published.
    Shop events are keyed by merchant; member, agreement, settlement, close
    and policy events go to every partition. With --signing-key, events that
    carry no signature are signed (SPEC §4a); signed ones are sent as they are.

    Example: refledger produce alliance.jsonl --bootstrap-servers 127.0.0.1:9092
    """
    from refledger.schemas.event_files import read_records
    from refledger.producers.kafka_admin import create_topic
    from refledger.producers.publisher import AlliancePublisher, EventTooLarge
    from refledger.schemas.keys import read_key_file

    key = read_key_file(signing_key) if signing_key else None
    create_topic(bootstrap_servers, topic, partitions, login=login)
    rejected = []
    published = 0
    started = time.monotonic()
    with AlliancePublisher(bootstrap_servers, topic, signing_key=key, login=login) as pub, progress() as bar:
        task = bar.add_task("publishing", total=None, rate="")
        for path in files:
            for position, record, error in read_records(path):
                if error is None:
                    try:
                        pub.publish(record)
                    except EventTooLarge as exc:
                        error = f"too_large: {exc}"
                if error:
                    rejected.append({"position": position, "error": error})
                    continue
                published += 1
                if published % 2000 == 0:
                    bar.update(task, completed=published,
                               rate=f"{published / (time.monotonic() - started):,.0f} ev/s")
        bar.update(task, completed=published)
    seconds = time.monotonic() - started
    summary = {"published": published, "rejected": len(rejected),
               "events_per_second": int(published / seconds) if seconds else 0}
    if fmt == "json":
        emit_json({**summary, "rejected_events": rejected})
    else:
        _summary_table(summary, f"produced to {topic}")
        for row in rejected:
            console(stderr=True).print(f"rejected {row['position']}: {row['error']}")
    if rejected:
        sys.exit(1)


@click.command()
@click.option("--seed", default=7, show_default=True, help="Same seed, same alliance, byte for byte.")
@click.option("--shops", default=8, show_default=True)
@click.option("--visitors", default=5000, show_default=True)
@click.option("--days", default=30, show_default=True)
@click.option("--events", type=int, default=None, help="Stop after about this many events.")
@click.option("--out", type=click.Path(dir_okay=False), help="Write JSON Lines (.jsonl) or Avro (.avro) here.")
@click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None, metavar="HOST:PORT",
              help="Publish straight to Kafka instead of a file.")
@kafka_login_option
@click.option("--sign", is_flag=True,
              help="Sign every event with its emitter's key (derived from the seed), after a policy requiring "
                   "signatures; members publish their keys.")
@topic_option
@tz_option
@click.option("--month-ends/--no-month-ends", default=True, show_default=True,
              help="Include the operator's month ends (settlements, closes, adjustments, payouts); without them, "
                   "run each month end yourself with `refledger settle`.")
def simulate(seed, shops, visitors, days, events, out, bootstrap_servers, login, topic, sign, zone, month_ends):
    """Generate a realistic alliance's traffic, to a file or straight to Kafka.

    Views, clicks, orders and refunds with late and out-of-order deliveries
    and a few bad events, seeded and deterministic; each month of the
    alliance's time zone ends as `refledger settle` ends it (a settlement and,
    from the third month on, a close through the month before), then payouts.
    With --sign the alliance signs its events (SPEC §4a): one policy first,
    then every event signed by its emitter, with keys derived from the seed
    (for simulations only).

    Example: refledger simulate --seed 7 --events 100000 --out alliance.jsonl
    """
    from refledger.schemas.event_files import write_event_file
    from refledger.producers.simulate import SimulationConfig, simulate as generate

    if not out and not bootstrap_servers:
        raise click.UsageError("give --out FILE or --bootstrap-servers")
    cfg = SimulationConfig(seed=seed, shops=shops, visitors=visitors, days=days, events=events, time_zone=zone.key,
                           settlements=month_ends)
    records = generate(cfg)
    if sign:
        from refledger.producers.signed_alliance import signed_simulation

        records = signed_simulation(records, seed)
    if out:
        count = write_event_file(records, Path(out))
        click.echo(f"wrote {count:,} events to {out}")
    else:
        count, messages = publish_with_progress(records, bootstrap_servers, topic, login=login)
        click.echo(f"published {count:,} events to {topic} as {messages:,} Kafka messages")


def publish_with_progress(records, bootstrap_servers: str, topic: str, login=None) -> tuple[int, int]:
    """`publish_records` with a progress bar on the terminal."""
    from refledger.producers.publisher import publish_records

    started = time.monotonic()
    with progress() as bar:
        task = bar.add_task("publishing", total=None, rate="")

        def show(count: int) -> None:
            bar.update(task, completed=count, rate=f"{count / max(time.monotonic() - started, 1e-6):,.0f} ev/s")

        return publish_records(records, bootstrap_servers, topic, on_progress=show, login=login)


@click.command()
@bootstrap_option
@kafka_login_option
@db_option
@topic_option
@click.option("--group", default=DEFAULT_GROUP, show_default=True, help="Consumer group id.")
@click.option("--until-idle", type=float, default=None, metavar="SECONDS",
              help="Stop once no new event came for this long (default: run until SIGINT/SIGTERM).")
@click.option("--members", default=1, show_default=True, help="Group members in this process.")
@click.option("--instance-id", default=None,
              help="Static group membership: a restarted consumer with the same id takes its partitions back "
                   "at once instead of waiting for the session to time out.")
@snapshot_option
@click.option("--compact-every", type=click.FloatRange(min=0), default=300.0, show_default=True, metavar="SECONDS",
              help="With a DuckLake ledger: merge its small Parquet files this often, beside the writes (0: never; "
                   "see `refledger compact`).")
@click.option("--batch-records", type=click.IntRange(min=1), default=None, metavar="N",
              help="Records per poll, batch and transaction (default 20,000): fewer hold less memory and commit "
                   "sooner; more fold faster.")
@format_option("table", "json")
def consume(bootstrap_servers, login, db, topic, group, until_idle, members, instance_id, snapshot_every,
            compact_every, batch_records, fmt):
    """Fold the alliance's topic from Kafka into the ledger, exactly once.

    Positions live in the ledger: each poll batch is committed to DuckDB in
    one transaction (events, quarantine, entries, positions) before offsets
    are committed to Kafka. SIGINT/SIGTERM finish the batch and exit 0.
    While it runs, balances/explain/quarantine/stats on the same --db are
    answered by this process. With --db ducklake:postgres:..., any number of
    consume processes of one --group, on one machine or several, write one
    ledger, each the partitions the group gives it, and anyone reads it.

    Example: refledger consume --bootstrap-servers 127.0.0.1:9092 --db ledger.duckdb --until-idle 10
    """
    from refledger.consumers.kafka_consumer import consume as run_consume

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    store, processor = _processor(db, f"kafka:{topic}", fold_worker=True, snapshot_every=snapshot_every)
    try:
        with _beside_the_writes(db, store, compact_every):
            summary = run_consume(bootstrap_servers, processor, topic=topic, group=group,
                                  until_idle=until_idle, members=members, instance_id=instance_id, login=login,
                                  max_records=batch_records)
    finally:
        processor.close()
        store.close()
    if fmt == "json":
        emit_json(summary.as_dict())
    else:
        _summary_table(summary.as_dict(), f"consumed {topic} into {db}")


def _beside_the_writes(db, store, compact_every: float):
    """What runs while `consume` writes: the read socket of a DuckDB file (nobody else can open it),
    or the compaction of a DuckLake (readers attach it themselves)."""
    from contextlib import nullcontext

    from refledger.reads import READ_QUERIES
    from refledger.store.lake import is_lake
    from refledger.store.readside import ReadServer

    if not is_lake(db):
        return ReadServer(db, store, READ_QUERIES)
    if not compact_every:
        return nullcontext()
    from refledger.store.lake_files import Compactor

    return Compactor(db, compact_every)


@click.command()
@db_option
@click.option("--keep", "keep_s", type=click.FloatRange(min=0), default=600.0, show_default=True, metavar="SECONDS",
              help="Keep snapshots and replaced files this long, for readers still on them.")
@format_option("table", "json")
def compact(db, keep_s, fmt):
    """Merge a DuckLake ledger's small Parquet files, beside its running consumers.

    Rows kept in the catalog are written out, adjacent small files merged,
    and snapshots and files older than --keep that nothing reads any more
    removed. Writers go on meanwhile. `consume` does this on a schedule
    (--compact-every).

    Example: refledger compact --db "ducklake:postgres:host=127.0.0.1 port=55432 dbname=refledger user=refledger"
    """
    from refledger.store.lake import is_lake
    from refledger.store.lake_files import compact as compact_lake

    if not is_lake(db):
        raise click.UsageError("compact is for a ledger on DuckLake; a DuckDB file is one file already")
    done = compact_lake(db, keep_s)
    if fmt == "json":
        emit_json(done.as_dict())
    else:
        _summary_table({"files before": done.files_before, "files after": done.files_after},
                       f"compacted {db} in {done.seconds:.1f}s")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@db_option
@click.option("--partition", default=0, show_default=True,
              help="The partition these files form (to mirror one Kafka partition's log).")
@snapshot_option
@format_option("table", "json")
def ingest(files, db, partition, snapshot_every, fmt):
    """Fold JSON Lines or Avro event files into the ledger, without Kafka.

    The files form one partition, in file order. A directory written by
    `refledger archive` is read as its topic's partitions instead, each in
    offset order. Bad events are quarantined and counted; the exit status is
    non-zero only when a file or the ledger cannot be read or written.

    Example: refledger ingest baby-care.jsonl --db baby-care.duckdb
    """
    from refledger.consumers.ingest import ingest_archive, ingest_files
    from refledger.schemas.event_files import EventFileError

    store, processor = _processor(db, "ingest", snapshot_every=snapshot_every)
    try:
        with progress() as bar:
            task = bar.add_task("ingesting", total=None, rate="")
            tick = lambda s: bar.update(task, completed=s.events_read)  # noqa: E731
            archives = [f for f in files if Path(f).is_dir()]
            if archives and len(archives) != len(files):
                raise EventFileError("give either event files or one archive directory, not both")
            if len(archives) > 1:
                raise EventFileError("give one archive directory at a time")
            if archives:
                summary = ingest_archive(archives[0], processor, on_batch=tick)
            else:
                summary = ingest_files(files, processor, partition=partition, on_batch=tick)
    finally:
        store.close()
    if fmt == "json":
        emit_json(summary.as_dict())
    else:
        _summary_table(summary.as_dict(), f"ingested into {db}")


@click.command()
@db_option
@format_option()
def stats(db, fmt):
    """What arrived: distinct events, skipped duplicates, quarantined, positions.

    Example: refledger stats --db ledger.duckdb --format json
    """
    from refledger.store.queries import stats as stats_query
    from refledger.store.readside import query

    result = query(db, stats_query)
    if fmt == "json":
        emit_json(result)
        return
    counts = {k: v for k, v in result.items() if isinstance(v, int)}
    if fmt == "csv":
        emit([{"what": k, "count": v} for k, v in counts.items()], "csv", ("what", "count"))
        return
    _summary_table(counts, f"ledger {db}")
    emit([{"log": k, "next_offset": v} for k, v in result["positions"].items()], "table",
         ("log", "next_offset"), title="positions", numeric=("next_offset",))
    if result["quarantined_by_reason"]:
        emit([{"reason": k, "events": v} for k, v in result["quarantined_by_reason"].items()], "table",
             ("reason", "events"), title="quarantined by reason", numeric=("events",))
    if result["fold_state"]:
        emit([{"kind": k, "objects": v} for k, v in result["fold_state"].items()], "table", ("kind", "objects"),
             title="what the fold remembers (all logs)", numeric=("objects",))
