"""Operator reports benchmark: traffic, members, health and report on a 1M-event ledger.

    python bench/reports.py                 # builds (or reuses) the ledger under --workdir
    python bench/reports.py --events 200000 --runs 5

Builds the ledger once with `refledger simulate` + `refledger ingest` (reused
on later runs while it holds the events asked for), then times each
command's read query, best of --runs:

* in-process: on the file opened read-only, as the CLI reads it when no
  consumer holds it (DuckDB's default threads);
* through the socket: a child process holds the file for writing as
  `consume` does (one DuckDB thread, SPEC's 2-core machine) and serves the
  read queries on its socket; the CLI's `query()` asks it.

The report's page drawing (HTML with plotly.js inlined) is timed apart.
Prints a table, then one JSON line with every figure. The goal: at most 2 s
each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from refledger.reports.health import health
from refledger.reports.operator_report import operator_report
from refledger.reports.report_page import render_report
from refledger.reports.scorecard import members
from refledger.reports.traffic import traffic
from refledger.render import emit
from refledger.schemas.periods import alliance_zone, period_of, shift_period
from refledger.schemas.timestamps import naive_utc_millis
from refledger.store.readside import query, socket_path

GOAL_S = 2.0
HOLDER = """
import sys
from refledger.reads import READ_QUERIES
from refledger.store.ledger_file import LedgerStore
from refledger.store.readside import ReadServer
store = LedgerStore(sys.argv[1])
with ReadServer(sys.argv[1], store, READ_QUERIES):
    print("ready", flush=True)
    sys.stdin.read()
store.close()
"""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ledger(workdir: Path, events: int, seed: int) -> Path:
    """The ledger of ``events`` simulated events, built with the CLI unless already there."""
    db = workdir / f"alliance-{seed}-{events}.duckdb"
    if db.exists():
        con = duckdb.connect(str(db), read_only=True)
        [(read,)] = con.execute("SELECT coalesce(sum(events_read), 0) FROM batches").fetchall()
        con.close()
        if read == events:
            say(f"reusing {db} ({read:,} events)")
            return db
        db.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    events_file = workdir / f"alliance-{seed}-{events}.jsonl"
    cli = [sys.executable, "-m", "refledger"]
    say(f"simulating {events:,} events → {events_file}")
    subprocess.run([*cli, "simulate", "--seed", str(seed), "--events", str(events), "--out", str(events_file)],
                   check=True, stdout=subprocess.DEVNULL)
    say(f"ingesting into {db}")
    started = time.perf_counter()
    subprocess.run([*cli, "ingest", str(events_file), "--db", str(db)], check=True, stdout=subprocess.DEVNULL)
    say(f"  ingested in {time.perf_counter() - started:.0f} s")
    return db


def busiest_complete_month(db: Path, zone) -> str:
    """The last month of the ledger that is over (the month before the latest event's)."""
    con = duckdb.connect(str(db), read_only=True)
    [(latest,)] = con.execute("SELECT max(occurred_at) FROM events").fetchall()
    con.close()
    return shift_period(period_of(naive_utc_millis(latest), zone), -1)


def best_of(runs: int, call) -> tuple[float, object]:
    best, answer = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        answer = call()
        best = min(best, time.perf_counter() - started)
    return best, answer


def in_process(db: Path, func, params: dict):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return json.loads(json.dumps(func(con.cursor(), **params), default=str))
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "refledger-bench-reports")
    args = parser.parse_args()

    zone = alliance_zone()
    db = ledger(args.workdir, args.events, args.seed)
    period = busiest_complete_month(db, zone)
    say(f"timing the reports for {period} (best of {args.runs})")
    commands = [
        ("traffic", traffic, {"period": period, "zone": zone.key}),
        ("members --period", members, {"period": period, "zone": zone.key}),
        ("members (all, to the latest event)", members, {"zone": zone.key}),
        ("health", health, {"zone": zone.key}),
        ("report (its read query)", operator_report, {"period": period, "zone": zone.key}),
    ]
    rows, figures = [], {"events": args.events, "period": period}
    for name, func, params in commands:
        seconds, answer = best_of(args.runs, lambda: in_process(db, func, params))
        rows.append({"command": name, "in_process_s": round(seconds, 3), "rows": len(answer)})
        figures[f"{func.__name__}{'_all' if 'all' in name else ''}_in_process_s"] = round(seconds, 3)
        if func is operator_report:
            draw, page = best_of(args.runs, lambda: render_report(answer, zone))
            figures["report_page_s"] = round(draw, 3)
            figures["report_page_mb"] = round(len(page.encode()) / 1e6, 1)

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "ready" and os.path.exists(socket_path(db))
        for row, (name, func, params) in zip(rows, commands):
            seconds, _ = best_of(args.runs, lambda: query(db, func, **params))
            row["socket_s"] = round(seconds, 3)
            figures[f"{func.__name__}{'_all' if 'all' in name else ''}_socket_s"] = round(seconds, 3)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    for row in rows:
        row["within_2_s"] = "yes" if max(row["in_process_s"], row["socket_s"]) <= GOAL_S else "NO"
    emit(rows, "table", ("command", "in_process_s", "socket_s", "rows", "within_2_s"),
         title=f"operator reports on {args.events:,} events ({period})", numeric=("in_process_s", "socket_s", "rows"))
    figures["all_within_2_s"] = all(row["within_2_s"] == "yes" for row in rows)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
