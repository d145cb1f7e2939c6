"""Cost against the length of history: does `consume` stay flat as the months pile up?

    python bench/growth.py                      # 60, 120 and 240 days (about 0.5M, 1M and 2M events)
    python bench/growth.py --days 30 60 --visitors 2000   # a quick look

For each length of history, a simulated alliance of steady traffic (the
simulator's growth and member behaviours off: each month brings as many
events as the last) that settles every month and closes the month before
last (SPEC §9a) is published to its own topic and
folded by a real `refledger consume` process. The benchmark samples the
resident memory of the consumer and its fold process together (from /proc,
every 50 ms) and keeps the peak; then it publishes the next few days of the
same alliance and starts `consume` again, timing the restart until those new
events are in the ledger. It prints a table, one JSON line, and draws
`docs/growth.png` (memory, restart time and events/s against history length).

Targets (issue 14): peak RSS with 2M events ≤ 1.3 × with 0.5M; restart with 2M
≤ 2 × with 0.5M.

Uses $KAFKA_BOOTSTRAP_SERVERS or starts a local broker on a free port.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from procfs import children, rss_kb

from refledger import broker
from refledger.producers.publisher import publish_records
from refledger.producers.simulate import SimulationConfig, simulate
from refledger.store.queries import stats
from refledger.store.readside import ReadError, query

DAY_MS = 86_400_000
ROOT = Path(__file__).resolve().parents[1]


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class PeakMemory(threading.Thread):
    """The peak of a process's resident memory plus its children's, sampled every 50 ms; and, to
    tell where it grows, the peaks of the process alone and of its children alone."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self._done = pid, 0, threading.Event()
        self.own_peak_kb = self.children_peak_kb = 0

    def run(self) -> None:
        while not self._done.wait(0.05):
            own = rss_kb(self.pid)
            kids = sum(rss_kb(c) for c in children(self.pid))
            self.peak_kb = max(self.peak_kb, own + kids)
            self.own_peak_kb = max(self.own_peak_kb, own)
            self.children_peak_kb = max(self.children_peak_kb, kids)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kb


def consume(bootstrap: str, topic: str, db: Path, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "refledger", "consume", "--bootstrap-servers", bootstrap,
                             "--topic", topic, "--db", str(db), "--group", f"{topic}-growth", "--instance-id",
                             "growth", "--until-idle", "3", "--format", "json"], stdout=subprocess.PIPE,
                            stderr=log)


def events_read(db: Path) -> int:
    try:
        return query(db, stats, wait=0.5)["events_read"]
    except ReadError:
        return -1


def split_history(days: int, visitors: int, seed: int, extra_days: int) -> tuple[list[dict], list[dict]]:
    """The alliance's events up to ``days`` (in delivery order), and the next ``extra_days`` of it."""
    # A steady alliance (no growth, no behaviours): each month brings as many events as the last, so
    # what differs between the runs is the length of history alone, not the traffic since the last close.
    records = list(simulate(SimulationConfig(seed=seed, visitors=visitors, days=days + extra_days,
                                             behaviours=False)))
    cut = records[0]["occurred_at"] + days * DAY_MS
    first = next((i for i, r in enumerate(records) if r["occurred_at"] > cut and r["type"] in ("view", "click")),
                 len(records))
    return records[:first], records[first:]


def measure(bootstrap: str, work: Path, days: int, visitors: int, seed: int, extra_days: int) -> dict:
    history, later = split_history(days, visitors, seed, extra_days)
    topic = f"growth-{days}d-{time.time_ns()}"
    say(f"{days} days: publishing {len(history):,} events to {topic}")
    publish_records(history, bootstrap, topic)
    db = work / f"growth-{days}.duckdb"
    with open(work / f"consume-{days}.log", "ab") as log:
        say(f"{days} days: consuming")
        started = time.perf_counter()
        proc = consume(bootstrap, topic, db, log)
        peak = PeakMemory(proc.pid)
        peak.start()
        out, _ = proc.communicate()
        peak_kb = peak.stop()
        if proc.returncode != 0:
            raise SystemExit(f"consume failed, see {work}/consume-{days}.log")
        summary = json.loads(out)
        say(f"{days} days: {summary['events_read']:,} events at {summary['events_per_second']:,}/s, "
            f"peak RSS {peak_kb / 1024:,.0f} MB (consumer {peak.own_peak_kb / 1024:,.0f}, fold process "
            f"{peak.children_peak_kb / 1024:,.0f}) ({time.perf_counter() - started:.0f} s)")

        published, _messages = publish_records(later, bootstrap, topic)
        target = summary["events_read"] + _messages
        say(f"{days} days: {published:,} new events published; restarting consume")
        started = time.perf_counter()
        proc = consume(bootstrap, topic, db, log)
        while events_read(db) < target and proc.poll() is None:
            time.sleep(0.02)
        restart_s = time.perf_counter() - started
        proc.communicate()
    fold_state = query(db, stats)["fold_state"]
    return {"days": days, "events": summary["events_read"], "events_per_s": summary["events_per_second"],
            "peak_rss_mb": round(peak_kb / 1024), "consumer_peak_mb": round(peak.own_peak_kb / 1024),
            "fold_process_peak_mb": round(peak.children_peak_kb / 1024), "restart_s": round(restart_s, 2),
            "new_events": published, "fold_state": fold_state}


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["events"] / 1e6 for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), constrained_layout=True)
    for ax, key, label in zip(axes, ("peak_rss_mb", "restart_s", "events_per_s"),
                              ("peak RSS, consumer + fold process (MB)", "restart with new events (s)",
                               "consume (events/s)")):
        ax.plot(x, [r[key] for r in rows], marker="o", label="both" if key == "peak_rss_mb" else None)
        if key == "peak_rss_mb":  # where it grows: each process's own peak
            ax.plot(x, [r["consumer_peak_mb"] for r in rows], marker=".", linestyle="--", label="consumer")
            ax.plot(x, [r["fold_process_peak_mb"] for r in rows], marker=".", linestyle=":", label="fold process")
            ax.legend(fontsize=8, loc="lower right")
        ax.set_xlabel("events of history (millions)")
        ax.set_title(label, fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    fig.suptitle("refledger consume against the length of history (monthly settlements and closes)")
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[60, 120, 240])
    parser.add_argument("--visitors", type=int, default=6000)
    parser.add_argument("--extra-days", type=int, default=2, help="Days of new events for the restart.")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--chart", type=Path, default=ROOT / "docs" / "growth.png")
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="refledger-growth-"))
    started_broker = None
    bootstrap = args.bootstrap_servers
    if not bootstrap:
        started_broker = broker.start(port=broker.free_port(), directory=work / "broker")
        bootstrap = started_broker.bootstrap
    try:
        rows = [measure(bootstrap, work, days, args.visitors, args.seed, args.extra_days) for days in args.days]
    finally:
        if started_broker is not None:
            broker.stop(started_broker.directory)
        shutil.rmtree(work, ignore_errors=True)
    first, last = rows[0], rows[-1]
    result = {"rows": rows,
              "ratio_peak_rss_last_over_first": round(last["peak_rss_mb"] / first["peak_rss_mb"], 3),
              "ratio_restart_last_over_first": round(last["restart_s"] / first["restart_s"], 3)}
    print(f"{'days':>5} {'events':>10} {'events/s':>9} {'peak RSS MB':>12} {'consumer':>9} {'fold':>6} "
          f"{'restart s':>10}")
    for r in rows:
        print(f"{r['days']:>5} {r['events']:>10,} {r['events_per_s']:>9,} {r['peak_rss_mb']:>12,} "
              f"{r['consumer_peak_mb']:>9,} {r['fold_process_peak_mb']:>6,} {r['restart_s']:>10}")
    print(f"peak RSS {last['events']:,} / {first['events']:,} events: {result['ratio_peak_rss_last_over_first']} "
          f"(target ≤ 1.3); restart: {result['ratio_restart_last_over_first']} (target ≤ 2)")
    chart(rows, args.chart)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
