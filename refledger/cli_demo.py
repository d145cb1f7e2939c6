"""`refledger demo`: the main job, end to end, on one machine."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click

from refledger.options import tz_option
from refledger.render import console, line


def local_bootstrap(port: int) -> str:
    """A broker to talk to: $KAFKA_BOOTSTRAP_SERVERS, or a local KRaft broker (started if needed)."""
    from refledger import broker

    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        return configured
    info = broker.status(port=port)
    if not info.running:
        console(stderr=True).print(f"starting a local Apache Kafka broker on 127.0.0.1:{port} …")
        info = broker.start(port=port)
    return info.bootstrap


@click.command()
@click.option("--db", default="refledger-demo.duckdb", show_default=True, type=click.Path(dir_okay=False),
              help="The demo ledger (replaced on each run).")
@click.option("--days", default=62, show_default=True,
              help="Days of alliance traffic from November 1st; each month end brings a settlement (payable "
                   "balances appear) and, from the third month on, a close of the month before.")
@click.option("--visitors", default=600, show_default=True, help="Visitors browsing the alliance's shops.")
@click.option("--events", default=None, type=int, help="Exactly this many events instead of --days of traffic.")
@click.option("--seed", default=7, show_default=True)
@click.option("--port", default=9092, show_default=True, help="Port of the local broker, if one is started.")
@tz_option
def demo(db, days, visitors, events, seed, port, zone):
    """Run the whole job: broker, simulated alliance, Kafka, ledger, balances, the settlement sheet.

    Uses $KAFKA_BOOTSTRAP_SERVERS when set, otherwise starts (or reuses) a
    local single-node Apache Kafka on 127.0.0.1. Publishes a simulated
    alliance's traffic (with the operator's month ends: settlements, closes,
    fines and payouts) as Avro, folds it into a fresh DuckDB ledger exactly
    once, and shows what arrived, each shop's balances, who pays whom and the
    members' health flags (the simulated alliance has a member that quietly
    took its banner down and one that only takes traffic).

    Example: refledger demo --days 60 --visitors 1000
    """
    from refledger.consumers.kafka_consumer import consume
    from refledger.producers.simulate import SimulationConfig, simulate
    from refledger.cli_ledger import balances
    from refledger.cli_operator import sheet
    from refledger.reports.money import DEFAULT_LOCALE
    from refledger.cli_pipeline import _processor, publish_with_progress, stats

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out = console()
    bootstrap = local_bootstrap(port)
    topic = f"demo-{seed}-{int(time.time())}"
    path = Path(db)
    for stale in (path, path.with_name(path.name + ".wal")):
        if stale.exists():
            stale.unlink()

    config = SimulationConfig(seed=seed, visitors=visitors, days=days, events=events, time_zone=zone.key)
    size = f"{events:,} events" if events else f"{days} days of {visitors:,} visitors"
    out.print(line(("1.", "bold"), f" simulating {size} of an alliance (seed {seed}) → {topic} @ {bootstrap}"))
    events, published = publish_with_progress(simulate(config), bootstrap, topic)
    out.print(f"   published {events:,} events as {published:,} Kafka messages "
              "(alliance events go to every partition)")

    out.print(line(("2.", "bold"), f" consuming {topic} into {db} (exactly once, stops after 5 s idle)"))
    store, processor = _processor(db, f"kafka:{topic}")
    try:
        summary = consume(bootstrap, processor, topic=topic, group=f"{topic}-ledger", until_idle=5,
                          handle_signals=False)
    finally:
        store.close()
    done = summary.as_dict()
    out.print(f"   read {done['events_read']:,} messages at {done['events_per_second']:,} events/s; "
              f"{done['entries_posted']:,} ledger entries posted")

    out.print(line(("3.", "bold"), " what arrived"))
    ctx = click.get_current_context()
    ctx.invoke(stats, db=db, fmt="table")
    out.print(line(("4.", "bold"), " balances"))
    ctx.invoke(balances, db=db, fmt="table", locale=DEFAULT_LOCALE, zone=zone)
    out.print(line(("5.", "bold"), " the settlement sheet (结算单): who pays whom"))
    ctx.invoke(sheet, db=db, period=None, fmt="table", locale=DEFAULT_LOCALE, zone=zone)
    order = _an_attributed_order(db) or "ORDER_ID"
    out.print(f"Look closer: refledger explain --db {db} --order {order} · "
              f"refledger quarantine --db {db} · refledger balances --db {db} --format json")
    out.print(line(("6.", "bold"), " member health (SPEC §14: who withdrew quietly, who only takes traffic)"))
    _show_health(db, zone)


def _show_health(db, zone) -> None:
    """The health flags as `refledger health` shows them (the demo goes on whatever they say)."""
    from refledger.cli_view import show_health
    from refledger.reports.health import health
    from refledger.reports.money import DEFAULT_LOCALE
    from refledger.store.readside import query

    show_health(query(db, health, zone=zone.key), zone, DEFAULT_LOCALE)
    console().print(f"Each month: refledger report --db {db} --period YYYY-MM --out report.html", markup=False)


def _an_attributed_order(db) -> str | None:
    """An order that earned a referrer something, to point the reader at."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            """SELECT split_part(subject, ':', 3) FROM entries
               WHERE role = 'commission' AND subject LIKE 'order:%' ORDER BY seq LIMIT 1""").fetchall()
    finally:
        con.close()
    return rows[0][0] if rows else None
