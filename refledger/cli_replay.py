"""`refledger replay`: rebuild the ledger from its history and compare it with the live one."""

from __future__ import annotations

import sys
import time

import click

from refledger.ledger.entries import MONEY_ACCOUNTS as MONEY
from refledger.options import db_option, format_option, kafka_login_option
from refledger.render import console, emit, emit_json, line, progress

ENTRY_SHOWN = ("seq", "entry_id", "event_id", "shop_id", "account", "counterparty_shop_id", "currency", "amount",
               "subject", "role", "agreement_id", "agreement_version", "rate_bp", "click_event_id", "hash")
CHANGE_COLUMNS = ("shop_id", "currency", "account", "live", "rebuilt", "change")


class ReplayFailed(click.ClickException):
    """The replay could not run (exit 2); a replay that ran and found differences exits 1."""

    exit_code = 2


@click.command()
@db_option
@click.option("--source", default="events", show_default=True, metavar="events|kafka|DIR",
              help="History to rebuild from: the ledger's stored events, the Kafka topic from offset 0, "
                   "or an archive directory written by `refledger archive`.")
@click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None, metavar="HOST:PORT",
              help="Kafka for --source kafka (or $KAFKA_BOOTSTRAP_SERVERS).")
@kafka_login_option
@click.option("--topic", default=None,
              help="The topic to replay (default: the one the ledger consumed; with --source events, all).")
@click.option("--until", "until_text", default=None, metavar="TIME",
              help="The ledger as the log stood at TIME (ISO 8601, UTC unless an offset is given): each "
                   "partition up to its first message stamped later. Shows the balances as of then.")
@click.option("--agreements", "agreements_file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="What-if: JSON Lines of agreement events replacing the log's versions (same event id, or "
                   "same agreement id and version) or, when new, added at the start of every partition.")
@click.option("--from-snapshot", is_flag=True,
              help="Start each log's fold from the ledger's latest snapshot and fold only what came after, as a "
                   "restarted consumer does; the rest must equal the live ledger (SPEC §12.8).")
@click.option("--keep", default=None, type=click.Path(dir_okay=False),
              help="Keep the rebuilt ledger in this new file instead of a temporary one.")
@format_option("table", "json")
def replay(db, source, bootstrap_servers, login, topic, until_text, agreements_file, from_snapshot, keep, fmt):
    """Rebuild the ledger from its history into a scratch ledger and compare.

    The history is folded by the same code as `consume`, keeping each
    message's topic, partition and offset, up to the positions the live
    ledger has stored. Exit 0 when every entry (all columns but batch_id),
    chain head, balance, position and quarantine row is identical; 1 with
    the first differing entry per partition and the balance differences per
    shop; 2 when the replay cannot run. With --until, the rebuilt ledger is
    the log as it stood at TIME, compared with the live entries caused by
    that part of the log. With --agreements, prints each shop's balance
    change against the live ledger and exits 0. The live ledger is only
    read, also while `consume` holds it.

    Example: refledger replay --db ledger.duckdb --source kafka --bootstrap-servers 127.0.0.1:9092
    """
    from refledger.replay.history import ReplayError
    from refledger.replay.replayer import parse_until, rebuild

    try:
        until_ms = parse_until(until_text) if until_text else None
        with progress() as bar:
            task = bar.add_task(f"replaying from {source}", total=None, rate="")
            started = time.monotonic()

            def show(events_read: int) -> None:
                elapsed = max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=events_read, rate=f"{events_read / elapsed:,.0f} ev/s")

            report = rebuild(db, source, bootstrap_servers=bootstrap_servers, topic=topic, until_ms=until_ms,
                             agreements=agreements_file, keep=keep, on_progress=show,
                             from_snapshot=from_snapshot, login=login)
    except ReplayError as exc:
        raise ReplayFailed(str(exc)) from exc
    if fmt == "json":
        emit_json(report.as_dict())
    else:
        _render(report)
    sys.exit(report.exit_code)


def _render(report) -> None:
    out = console()
    counts = report.counts
    out.print(f"replayed {counts.events_read:,} messages of {', '.join(report.topics) or 'no topic'} from "
              f"{report.source} ({counts.events_stored:,} events stored, {counts.quarantined:,} quarantined, "
              f"{counts.entries_posted:,} entries) in {report.fold_seconds:.1f}s, "
              f"{report.events_per_second:,} events/s; live ledger read as of batch {report.snapshot.batch_id} "
              f"(from the {report.snapshot.via})")
    if report.kept:
        out.print(f"rebuilt ledger kept in {report.kept}")
    if report.mode == "what-if":
        _render_what_if(report)
        return
    if report.mode == "until":
        from refledger.schemas import codec

        until = codec.format_time(report.until_ms)
        emit([r for r in report.balances if r["currency"] != "CLICK"], "table", ("shop_id", "currency") + MONEY,
             title=f"balances as the log stood at {until}", numeric=MONEY)
        swaps = [r for r in report.balances if r["currency"] == "CLICK"]
        if swaps:
            emit(swaps, "table", ("shop_id", "swap_given", "swap_received"), title=f"swap credits at {until}",
                 numeric=("swap_given", "swap_received"))
    _render_comparison(report.comparison, out, report.mode)


def _render_what_if(report) -> None:
    out = console()
    emit(report.what_if, "table", ("position", "agreement_id", "version", "action", "replaced_event_ids", "logs"),
         title="what-if agreements", numeric=("version", "logs"))
    for q in report.what_if_quarantined:
        out.print(line(("warning", "yellow"), f": {q['position']} ({q['event_id']}) was quarantined in "
                                              f"{q['logs']} log(s): {q['reason']}: {q['detail']}"))
    changes = [c.as_dict() for c in report.comparison.balance_changes]
    if changes:
        emit(changes, "table", CHANGE_COLUMNS, title="balance changes against the live ledger (minor units)",
             numeric=("live", "rebuilt", "change"))
    else:
        out.print("no balance would change")


def _render_comparison(comparison, out, mode: str) -> None:
    heads = [{"log": f"{h.topic}:{h.partition}", "live_entries": h.live_entries,
              "rebuilt_entries": h.rebuilt_entries, "live_head": (h.live_head or "")[:16],
              "rebuilt_head": (h.rebuilt_head or "")[:16], "same": "yes" if h.same else "NO"} for h in comparison.heads]
    emit(heads, "table", ("log", "live_entries", "rebuilt_entries", "live_head", "rebuilt_head", "same"),
         title="chain heads", numeric=("live_entries", "rebuilt_entries"))
    if comparison.identical:
        total = sum(h.live_entries for h in comparison.heads)
        if mode == "until":
            out.print(line(("identical", "green"), f" to the {total:,} live entries that this part of the log "
                                                   f"caused, in {len(comparison.heads)} chains"))
        else:
            out.print(line(("identical", "green"), f": {total:,} entries in {len(comparison.heads)} chains, "
                                                   "same chain heads, balances, positions and quarantine"))
        return
    out.print(line(("DIFFERENT", "red")))
    for diff in comparison.first_differences:
        live, rebuilt = dict(diff.live or ()), dict(diff.rebuilt or ())
        differing = set(diff.differing_columns())
        rows = [{"column": c, "live": _cell(live, diff.live, c), "rebuilt": _cell(rebuilt, diff.rebuilt, c),
                 "": "≠" if c in differing else ""} for c in ENTRY_SHOWN + tuple(sorted(differing - set(ENTRY_SHOWN)))]
        emit(rows, "table", ("column", "live", "rebuilt", ""),
             title=f"{diff.topic}:{diff.partition}: first differing entry, seq {diff.seq}")
    if comparison.balance_changes:
        emit([c.as_dict() for c in comparison.balance_changes], "table", CHANGE_COLUMNS,
             title="balance differences (minor units)", numeric=("live", "rebuilt", "change"))
    if comparison.position_differences:
        emit([{"log": f"{p.topic}:{p.partition}", "live": p.live, "rebuilt": p.rebuilt}
              for p in comparison.position_differences], "table", ("log", "live", "rebuilt"),
             title="next offset read", numeric=("live", "rebuilt"))
    if comparison.quarantine_differences:
        out.print(f"{comparison.quarantine_differences} quarantine row(s) differ")
        for side, rows in (("live only", comparison.quarantine_only_live),
                           ("rebuilt only", comparison.quarantine_only_rebuilt)):
            for topic, partition, offset, event_id, reason in rows:
                out.print(f"  {side}: {topic}:{partition}:{offset} {event_id} {reason}")


def _cell(values: dict, present, column: str) -> str:
    if present is None:
        return "(no entry)"
    value = values.get(column)
    return "" if value is None else str(value)
