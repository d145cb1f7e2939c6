"""Audit commands: replay, verify, checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from refledger.options import db_option
from refledger.render import console, emit, emit_json

FORMAT = click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table",
                      show_default=True, help="table for people, json for programs.")


def _fail(message: str):
    raise click.ClickException(message)


@click.command()
@db_option
@click.option("--source", default="events", show_default=True,
              help="History to rebuild from: 'events' (the ledger's stored log), 'kafka', or an archive directory.")
@click.option("--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", default=None,
              help="Kafka for --source kafka (default: $KAFKA_BOOTSTRAP_SERVERS).")
@click.option("--topic", default=None, help="Topic for --source kafka or an archive (default: the ledger's).")
@click.option("--until", "until_text", default=None, metavar="TIME",
              help="Rebuild the log as it stood at TIME (ISO 8601, UTC) and show those balances.")
@click.option("--agreements", "agreements_file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="What-if: JSON Lines of agreement versions used instead of the history's.")
@click.option("--keep", default=None, type=click.Path(dir_okay=False),
              help="Keep the rebuilt ledger at this new path instead of a temporary file.")
@FORMAT
def replay(db, source, bootstrap_servers, topic, until_text, agreements_file, keep, fmt):
    """Rebuild the ledger from its history and compare it with the live one.

    Same fold as `consume`, into a scratch ledger; exit 0 when every entry
    and chain head is identical, 1 with the first differing entry per log and
    the balance differences per shop. --until shows the balances as of a
    time; --agreements is a what-if that prints each shop's balance change.
    Neither writes to the live ledger.

    Example: refledger replay --db ledger.duckdb --source kafka --bootstrap-servers 127.0.0.1:9092
    """
    import duckdb

    from replay import rebuild as rb
    from schemas import codec

    try:
        live = rb.open_live(db)
        try:
            logs = _source_logs(rb, live, source, bootstrap_servers, topic)
            cutoff = None
            if until_text:
                try:
                    cutoff = codec.parse_time(until_text, "--until")
                except codec.CodecError as exc:
                    _fail(f"--until: {exc}")
                logs = rb.until(logs, cutoff)
            if agreements_file:
                logs = rb.with_agreements(logs, rb.read_agreements(agreements_file))
            with rb.Scratch(keep) as scratch:
                summary = rb.rebuild(logs, scratch)
                rebuilt = duckdb.connect(str(scratch), read_only=True)
                try:
                    result = rb.compare(live, rebuilt)
                    if cutoff is not None:
                        from refledger.queries import balances as balance_rows
                        as_of = balance_rows(rebuilt.cursor())
                finally:
                    rebuilt.close()
        finally:
            live.close()
    except rb.ReplayError as exc:
        _fail(str(exc))

    report = {"source": source, "events_read": summary.events_read, "entries": summary.entries,
              "seconds": round(summary.seconds, 3)}
    if agreements_file:
        report.update(mode="what-if", agreements=agreements_file, balance_changes=result.balance_changes)
        _show(report, fmt, "what-if: balance changes if these agreements had applied", result.balance_changes)
        return
    if cutoff is not None:
        report.update(mode="until", until=until_text, balances=as_of)
        if fmt == "json":
            emit_json(report)
        else:
            from refledger.queries import BALANCE_COLUMNS, MONEY_ACCOUNTS
            emit([r for r in as_of if r["currency"] != "CLICK"], "table", BALANCE_COLUMNS,
                 title=f"balances as the log stood at {until_text}", numeric=MONEY_ACCOUNTS)
        return
    report.update(mode="compare", **result.as_dict())
    if fmt == "json":
        emit_json(report)
    else:
        _print_comparison(report, result)
    sys.exit(0 if result.identical else 1)


def _source_logs(rb, live, source, bootstrap_servers, topic):
    if source == "events":
        return rb.logs_from_events(live)
    if source == "kafka":
        if not bootstrap_servers:
            _fail("--source kafka needs --bootstrap-servers (or $KAFKA_BOOTSTRAP_SERVERS)")
        return rb.logs_from_kafka(bootstrap_servers, topic or _ledger_topic(live))
    if not Path(source).is_dir():
        _fail(f"--source must be 'events', 'kafka' or an archive directory; {source} is none of these")
    return rb.logs_from_archive(source, topic)


def _ledger_topic(live) -> str:
    topics = [t for (t,) in live.execute("SELECT DISTINCT topic FROM positions ORDER BY 1").fetchall()]
    if len(topics) != 1:
        _fail(f"the ledger holds {len(topics)} topics ({', '.join(topics) or 'none'}); name one with --topic")
    return topics[0]


def _show(report, fmt, title, changes):
    if fmt == "json":
        emit_json(report)
    elif changes:
        emit(changes, "table", ("shop_id", "currency", "account", "live", "rebuilt", "change"), title=title,
             numeric=("live", "rebuilt", "change"))
    else:
        console().print("no balance would change")


def _short(digest):
    return f"{digest[:16]}…" if digest else "-"


def _print_comparison(report, result):
    out = console()
    verdict = "[green]identical[/green]" if result.identical else "[red]DIFFERENT[/red]"
    out.print(f"replayed {report['events_read']:,} events from {report['source']} into "
              f"{report['entries']:,} entries in {report['seconds']:.1f} s: {verdict}")
    heads = [{"log": log, **h, "live": _short(h["live"]), "rebuilt": _short(h["rebuilt"])}
             for log, h in result.heads.items()]
    emit(heads, "table", ("log", "live_entries", "rebuilt_entries", "live", "rebuilt"), title="chain heads",
         numeric=("live_entries", "rebuilt_entries"))
    for diff in result.first_differences:
        out.print(f"[bold]{diff['log']}[/bold]: first difference at seq {diff['seq']}")
        fields = sorted(set(diff["live"] or {}) | set(diff["rebuilt"] or {}))
        rows = [{"field": f, "live": (diff["live"] or {}).get(f), "rebuilt": (diff["rebuilt"] or {}).get(f)}
                for f in fields if (diff["live"] or {}).get(f) != (diff["rebuilt"] or {}).get(f)]
        emit(rows, "table", ("field", "live", "rebuilt"))
    if result.balance_changes:
        emit(result.balance_changes, "table", ("shop_id", "currency", "account", "live", "rebuilt", "change"),
             title="balance differences", numeric=("live", "rebuilt", "change"))


@click.command()
@db_option
@click.option("--since-checkpoint", "checkpoint_file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="A file saved from `refledger checkpoints --format json`: prove the ledger extends it.")
@FORMAT
def verify(db, checkpoint_file, fmt):
    """Recompute every hash chain and check the ledger's invariants.

    Chains (seq, links, hashes), balanced transactions and Σ earned = Σ owed
    (SPEC §12.1), every event read accounted for once (§12.6), recorded
    checkpoints, and with --since-checkpoint that history before an
    auditor's saved checkpoint was not rewritten. Exit 0, or 1 naming each
    problem and where it is.

    Example: refledger verify --db ledger.duckdb --since-checkpoint checkpoints-2026-11.json
    """
    from replay import rebuild as rb
    from replay.verify import read_checkpoint_file, verify as run_checks

    saved = None
    if checkpoint_file:
        try:
            saved = read_checkpoint_file(checkpoint_file)
        except (ValueError, KeyError, TypeError) as exc:
            _fail(f"cannot read checkpoints from {checkpoint_file}: {exc}")
    try:
        con = rb.open_live(db)
    except rb.ReplayError as exc:
        _fail(str(exc))
    try:
        result = run_checks(con, saved_checkpoints=saved)
    finally:
        con.close()
    if fmt == "json":
        emit_json(result)
    else:
        out = console()
        entries = sum(h["entries"] for h in result["logs"].values())
        if result["ok"]:
            out.print(f"[green]ok[/green]: {len(result['logs'])} chains, {entries:,} entries; "
                      f"checked {', '.join(result['checks'])}")
        else:
            out.print(f"[red]{len(result['problems'])} problem(s)[/red] in {db}:")
            emit(result["problems"], "table", ("check", "where", "detail"))
    sys.exit(0 if result["ok"] else 1)


@click.command()
@db_option
@FORMAT
def checkpoints(db, fmt):
    """The chain heads recorded at each settlement, per log.

    Save the JSON output; later `refledger verify --since-checkpoint FILE`
    proves the ledger still extends it.

    Example: refledger checkpoints --db ledger.duckdb --format json > checkpoints-2026-11.json
    """
    from refledger.readside import ReadError, query

    try:
        rows = query(db, "checkpoints")
    except ReadError as exc:
        _fail(str(exc))
    if fmt == "json":
        emit_json({"ledger": str(db), "checkpoints": rows})
    else:
        emit(rows, "table", ("settlement_event_id", "period_end", "topic", "partition", "entries", "head"),
             title="checkpoints (chain heads at each settlement)", numeric=("entries",))




@click.command()
@db_option
@click.option("--shop", "shop_id", required=True, help="The shop the statement is for.")
@click.option("--period", required=True, metavar="YYYY-MM", help="The month, by the time of each entry's event (UTC).")
@click.option("--format", "fmt", type=click.Choice(("table", "json", "csv")), default="table", show_default=True,
              help="table for people; json (everything) or csv (the entry lines) for programs.")
def statement(db, shop_id, period, fmt):
    """A shop's month: every entry with its provenance, opening and closing balances, and who pays whom.

    Entries belong to the month their causing event occurred in. Netting
    pairs each counterparty's payable balances at the month's close (SPEC §9):
    "li-kids pays zhang-toys 1,280 CNY".

    Example: refledger statement --db ledger.duckdb --shop li-kids --period 2026-11
    """
    from refledger.readside import ReadError, query
    from replay.statement import LINE_COLUMNS, StatementError, period_bounds

    try:
        period_bounds(period)
        result = query(db, "statement", shop_id=shop_id, period=period)
    except (ReadError, StatementError) as exc:
        message = str(exc).split("StatementError: ", 1)[-1]
        _fail(message)
    if fmt == "json":
        emit_json(result)
        return
    if fmt == "csv":
        emit(result["lines"], "csv", LINE_COLUMNS)
        return
    out = console()
    out.print(f"[bold]statement of {shop_id}[/bold] for {period} ({result['from']} – {result['until']})")
    _balance_table(result["opening"], "opening balances")
    emit(result["lines"], "table", ("occurred_at", "event_id", "event_type", "role", "account",
                                    "counterparty_shop_id", "currency", "change", "agreement", "rate_bp",
                                    "click_event_id", "refund_id", "reason"),
         title=f"{len(result['lines'])} entries in {period}", numeric=("change", "rate_bp"))
    _balance_table(result["closing"], "closing balances")
    emit(result["netting"], "table", ("counterparty_shop_id", "currency", "they_owe_payable", "we_owe_payable",
                                      "says", "they_owe_pending", "we_owe_pending"),
         title="netting of payable balances at the close", numeric=("they_owe_payable", "we_owe_payable",
                                                                    "they_owe_pending", "we_owe_pending"))
    for row in result["overall"]:
        out.print(f"[bold]{row['says']}[/bold]")


def _balance_table(rows, title):
    from replay.statement import MONEY

    money = [r for r in rows if r["currency"] != "CLICK"]
    if money:
        emit(money, "table", ("currency",) + MONEY, title=title, numeric=MONEY)
    else:
        console().print(f"{title}: none")
