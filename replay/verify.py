"""What `refledger verify` checks, each check a function over a read-only ledger.

* chains: every log's entries have seq 0, 1, 2, … with no gap or repeat, each
  entry's prev_hash is the hash before it (GENESIS first), and each hash
  recomputes from the entry's canonical bytes (`ledger.chain`).
* balanced (SPEC §12.1): every transaction sums to zero per currency or unit,
  and across the alliance Σ earned = Σ owed per currency (swap credits:
  Σ given = Σ received).
* accounted (SPEC §12.6): events read = events stored + duplicates skipped +
  events quarantined before the fold, from the tables themselves, and the
  batch counters agree with the rows.
* stored: every stored event can still be read (the consumer's rebuilt state
  and a replay leave out one that cannot: stored under rules that have since
  become stricter, or damaged on disk).
* bulk: each shop's total earned and owed per currency (and swap credits),
  recomputed from the stored events by set-based SQL (`replay.bulk`), equal
  the fold's; where they differ, the orders and clicks that differ are named.
* checkpoints: each recorded settlement checkpoint names an entry count and a
  head that the chain still has.
* since a saved checkpoint file: the ledger extends it (the entry at each
  saved head still has that hash, so nothing before it was rewritten).
* snapshots (SPEC §12.8): every fold snapshot's bytes match the digest its
  checkpoint recorded, and each log's latest snapshot, loaded and folded on
  with the events stored after it, posts exactly the entries the ledger
  holds from there on (so folding from it and from the start agree).

Each problem names where it is: log, seq and entry id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from refledger.ledger.chain import GENESIS, canonical_values, chain_hash
from refledger.ledger.entries import (
    CLICK, CREDIT_ACCOUNTS, EARNED_PAYABLE, EARNED_PENDING, OWED_PAYABLE, OWED_PENDING, PAID_OUT, RECEIVED,
)
from refledger.schemas.codec import CodecError, decode_canonical, parse_json
from refledger.store.queries import LATEST_BALANCES, checkpoints

HASHED = ("entry_id", "txn_id", "seq", "event_id", "shop_id", "account", "counterparty_shop_id", "currency",
          "amount", "subject", "role", "agreement_id", "agreement_version", "model", "rate_bp",
          "click_event_id", "refund_id", "reason")
EARNED = (EARNED_PENDING, EARNED_PAYABLE, RECEIVED)
OWED = (OWED_PENDING, OWED_PAYABLE, PAID_OUT)


@dataclass(frozen=True)
class Problem:
    check: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.where}: {self.detail}"


def check_chains(con) -> tuple[list[Problem], dict[str, dict]]:
    """Recompute every chain; returns the problems and, per log, its entry count and head."""
    problems: list[Problem] = []
    heads: dict[str, dict] = {}
    cols = ", ".join(f'"{c}"' for c in HASHED)
    cur = con.cursor()
    cur.execute(f"SELECT topic, partition, {cols}, prev_hash, hash FROM entries ORDER BY topic, partition, seq")
    log = None
    expected_seq, prev, broken = 0, GENESIS, False
    while rows := cur.fetchmany(10_000):
        for row in rows:
            key = f"{row[0]}:{row[1]}"
            values, prev_hash, digest = row[2:20], row[20], row[21]
            if key != log:
                log, expected_seq, prev, broken = key, 0, GENESIS, False
            seq, entry_id = values[2], values[0]
            where = f"{key} seq {seq} entry {entry_id}"
            if not broken:
                if seq != expected_seq:
                    what = (f"entries seq {expected_seq}..{seq - 1} are missing" if seq > expected_seq
                            else f"seq {seq} appears again after seq {expected_seq - 1} (entries reordered or repeated)")
                    problems.append(Problem("chain", where, what))
                    broken = True
                elif prev_hash != prev:
                    problems.append(Problem("chain", where, f"prev_hash {prev_hash[:12]}… does not link to the "
                                                            f"entry before it ({prev[:12]}…)"))
                    broken = True
                elif chain_hash(prev, canonical_values(values)) != digest:
                    problems.append(Problem("chain", where, "hash does not match the entry's content "
                                                            "(a field was changed after it was written)"))
                    broken = True
            expected_seq = seq + 1
            prev = digest
            heads[key] = {"entries": seq + 1, "head": digest}
    return problems, heads


def check_balanced(con) -> list[Problem]:
    problems = [
        Problem("balanced", f"transaction {txn} ({currency})", f"entries sum to {total}, not 0")
        for txn, currency, total in con.execute(
            """SELECT txn_id, currency, sum(amount) FROM entries GROUP BY txn_id, currency
               HAVING sum(amount) <> 0 ORDER BY txn_id, currency""").fetchall()
    ]
    totals: dict[str, dict[str, int]] = {}
    for currency, account, total in con.execute(
            "SELECT currency, account, sum(amount) FROM entries GROUP BY currency, account").fetchall():
        shown = -int(total) if account in CREDIT_ACCOUNTS else int(total)
        side = "earned" if account in EARNED or account == "swap_given" else "owed"
        totals.setdefault(currency, {"earned": 0, "owed": 0})[side] += shown
    for currency, sides in sorted(totals.items()):
        if sides["earned"] != sides["owed"]:
            what = "swap credits given ≠ received" if currency == CLICK else "Σ earned ≠ Σ owed"
            problems.append(Problem("balanced", f"currency {currency}",
                                    f"{what}: {sides['earned']} vs {sides['owed']}"))
    # balances are read from the latest totals and the batches' moves since: they must be the entries' own sums
    con.execute(LATEST_BALANCES)
    for shop, currency, account, moved, posted in con.execute(
            """WITH m AS (SELECT shop_id, currency, account, sum(amount) AS total FROM latest_balances GROUP BY ALL),
                    e AS (SELECT shop_id, currency, account, sum(amount)::HUGEINT AS total FROM entries GROUP BY ALL)
               SELECT shop_id, currency, account, m.total, e.total FROM m FULL JOIN e USING (shop_id, currency, account)
               WHERE m.total IS DISTINCT FROM e.total ORDER BY ALL LIMIT 20""").fetchall():
        problems.append(Problem("balanced", f"shop {shop} {currency} {account}",
                                f"the balance totals and moves say {moved}, the entries sum to {posted}"))
    return problems


def check_accounted(con) -> list[Problem]:
    [(read, skipped, stored_counted)] = con.execute(
        """SELECT coalesce(sum(events_read), 0), coalesce(sum(duplicates_skipped), 0),
                  coalesce(sum(events_stored), 0) FROM batches""").fetchall()
    [(stored,)] = con.execute("SELECT count(*) FROM events").fetchall()
    [(pre_fold,)] = con.execute("SELECT count(*) FROM quarantine WHERE stage = 'decode'").fetchall()
    problems = []
    if read != stored + skipped + pre_fold:
        problems.append(Problem("accounted", "all logs",
                                f"{read} events read ≠ {stored} stored + {skipped} duplicates skipped + "
                                f"{pre_fold} quarantined before the fold"))
    if stored_counted != stored:
        problems.append(Problem("accounted", "events table",
                                f"batches say {stored_counted} events were stored, the table holds {stored}"))
    for topic, partition, offset, n in con.execute(
            """SELECT topic, partition, "offset", count(*) FROM (
                   SELECT topic, partition, "offset" FROM events
                   UNION ALL SELECT topic, partition, "offset" FROM quarantine WHERE stage = 'decode')
               GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 20""").fetchall():
        problems.append(Problem("accounted", f"{topic}:{partition} offset {offset}",
                                f"this message is accounted {n} times"))
    return problems


def check_stored(con) -> list[Problem]:
    """Every stored event reads with today's codec, as the rebuild and a replay read it."""
    problems = []
    cur = con.cursor()
    cur.execute('SELECT topic, partition, "offset", event_id, avro FROM events ORDER BY topic, partition, "offset"')
    while rows := cur.fetchmany(10_000):
        for topic, partition, offset, event_id, avro in rows:
            try:
                decode_canonical(avro)
            except CodecError as error:
                problems.append(Problem("stored", f"{topic}:{partition} offset {offset} event {event_id}",
                                        f"can no longer be read ({error.reason}: {error}); the consumer's "
                                        "rebuilt state and a replay leave it out"))
    return problems


def check_bulk(con) -> list[Problem]:
    """The fold's totals against the independent SQL recomputation (a ledger without entries: nothing to check)."""
    from refledger.replay.bulk import compare

    [(has_entries,)] = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'entries' AND NOT temporary").fetchall()
    if not has_entries:
        return []
    problems, _result = compare(con)
    return [Problem("bulk", where, detail) for where, detail in problems]


def check_snapshots(con) -> list[Problem]:
    from refledger.consumers.folding import snapshot_rows
    from refledger.consumers.verification import signed_fold
    from refledger.ledger.snapshot import SnapshotError, restore_state
    from refledger.schemas import codec
    from refledger.store.ledger_file import snapshot_state
    from refledger.store.snapshots import digest

    problems = []
    rows = con.execute(
        """SELECT s.topic, s.partition, s."offset", s.entries, s.head, s.digest, c.snapshot_digest IS NOT NULL,
                  s.state
           FROM snapshots s LEFT JOIN checkpoints c ON c.topic = s.topic AND c.partition = s.partition
                AND c.snapshot_digest = s.digest AND c.entries = s.entries AND c.head = s.head
           ORDER BY s.topic, s.partition, s."offset" DESC""").fetchall()
    latest_checked: set[tuple[str, int]] = set()
    for topic, partition, offset, entries, head, snapshot_digest, recorded, inline in rows:
        where = f"{topic}:{partition} snapshot after offset {offset}"
        state = snapshot_state(con, snapshot_digest, inline)  # one snapshot's bytes in memory at a time
        if state is None:
            problems.append(Problem("snapshot", where, "its state is missing from the ledger "
                                                       "(a restart does not use it and rebuilds from the events)"))
            continue
        if not (recorded and digest(state) == snapshot_digest):
            problems.append(Problem("snapshot", where, "its bytes do not match the digest its checkpoint recorded "
                                                       "(a restart does not use it and rebuilds from the events)"))
            continue
        if (topic, partition) in latest_checked:
            continue
        decoded = snapshot_rows(bytes(state))
        if decoded is None:
            # its bytes are the ones recorded, of a layout another version wrote: a restart and a replay
            # fold past it from an older snapshot or the start, and so does this check
            continue
        latest_checked.add((topic, partition))
        fold = signed_fold()
        try:
            restore_state(fold, decoded)
        except SnapshotError as exc:
            problems.append(Problem("snapshot", where, f"cannot be loaded: {exc}"))
            continue
        if (fold.journal.seq, fold.chain_head) != (entries, head):
            problems.append(Problem("snapshot", where, "its fold state does not end where its checkpoint says"))
            continue
        posted = []
        for (avro,) in con.execute("""SELECT avro FROM events WHERE topic = ? AND partition = ? AND "offset" > ?
                                      ORDER BY "offset" """, [topic, partition, offset]).fetchall():
            record = codec.decode(avro)
            posted.extend(e.hash for e in fold.apply(record, codec.content_digest(avro, record.get("signature"))).entries)
        stored = [h for (h,) in con.execute("SELECT hash FROM entries WHERE topic = ? AND partition = ? AND seq >= ? "
                                            "ORDER BY seq", [topic, partition, entries]).fetchall()]
        if posted != stored:
            first = next((i for i, (a, b) in enumerate(zip(posted, stored)) if a != b), min(len(posted), len(stored)))
            problems.append(Problem("snapshot", f"{where}, seq {entries + first}",
                                    f"folding on from the snapshot posts {len(posted)} entries, the ledger holds "
                                    f"{len(stored)}; they part at seq {entries + first}"))
    return problems


def check_recorded_checkpoints(con) -> list[Problem]:
    return _extends(con, checkpoints(con.cursor()), "checkpoint")


def since_checkpoint(con, saved: Iterable[dict]) -> list[Problem]:
    """The ledger extends every saved checkpoint: each saved head is still at its place in the chain."""
    return _extends(con, list(saved), "since-checkpoint")


def _extends(con, saved: list[dict], check: str) -> list[Problem]:
    problems = []
    for cp in saved:
        log = f"{cp['topic']}:{cp['partition']}"
        where = f"{log} after {cp['entries']} entries ({cp.get('kind', 'settlement')} {cp.get('event_id', '?')})"
        if cp["entries"] == 0:
            continue
        found = con.execute(
            "SELECT entry_id, hash FROM entries WHERE topic = ? AND partition = ? AND seq = ?",
            [cp["topic"], cp["partition"], cp["entries"] - 1]).fetchall()
        if not found:
            problems.append(Problem(check, where, "the ledger no longer has the entry this checkpoint ends at"))
        elif found[0][1] != cp["head"]:
            problems.append(Problem(check, f"{where}, entry {found[0][0]}",
                                    f"head was {cp['head'][:16]}…, the ledger now has {found[0][1][:16]}…: "
                                    "history before the checkpoint was rewritten"))
    return problems


CHECKPOINT_FIELDS = {"topic": str, "partition": int, "entries": int, "head": str}


def read_checkpoint_file(path: str | Path) -> list[dict]:
    """The checkpoints of a file saved from `refledger checkpoints --format json` (or a bare list of
    them); ValueError, naming what is wrong, for anything else."""
    data = parse_json(Path(path).read_bytes())
    items = data.get("checkpoints") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("expected the output of `refledger checkpoints --format json`")
    for n, cp in enumerate(items, start=1):
        if not isinstance(cp, dict):
            raise ValueError(f"checkpoint {n} is not an object")
        for name, kind in CHECKPOINT_FIELDS.items():
            value = cp.get(name)
            if type(value) is not kind or (kind is int and value < 0):
                raise ValueError(f"checkpoint {n} has no {name} (a {'whole number' if kind is int else 'string'})")
    return items


def verify(con, *, saved_checkpoints: list[dict] | None = None) -> dict:
    """Every check; returns {"ok", "problems", "logs", "checks"}."""
    chain_problems, heads = check_chains(con)
    problems = chain_problems + check_balanced(con) + check_accounted(con)
    unreadable = check_stored(con)
    problems += unreadable
    if unreadable:  # the recomputation reads every stored event
        problems.append(Problem("bulk", "all logs", f"not run: {len(unreadable)} stored event(s) cannot be read"))
    else:
        problems += check_bulk(con)
    problems += check_recorded_checkpoints(con)
    problems += check_snapshots(con)
    checks = ["chain", "balanced", "accounted", "stored", "bulk", "checkpoint", "snapshot"]
    if saved_checkpoints is not None:
        problems += since_checkpoint(con, saved_checkpoints)
        checks.append("since-checkpoint")
    return {"ok": not problems, "checks": checks, "logs": heads, "problems": [asdict(p) for p in problems],
            "messages": [str(p) for p in problems]}
