"""Where a rebuilt ledger and the live one part.

Both sides are read with SQL in the scratch database that holds the live
copy (`replay.snapshot`), with the rebuilt ledger attached read-only as
`rebuilt`. Only the topics the replay read are compared.

* **entries**: every column but `batch_id` (which only says when a row was
  committed). Per log, the first `seq` where the two sides differ, with the
  entry of each side there (None where a side has none).
* **chain heads**: per log, the number of entries and the last hash.
* **balances**: per (shop, currency, account), in the sign of SPEC §11.
* **positions**: per log, the next offset each side has read.
* **quarantine**: (log, offset, event id, reason) of each side.

With a cut (`--until`), the live side is narrowed to what the events before
the rebuilt ledger's positions caused: the live entries whose event lies
before the cut, the live quarantine rows before it. The fold appends a
log's entries event by event, so those are exactly the live ledger's
entries as they stood when it had read that far. Positions are then not
compared: the cut decides them.

From a snapshot (`start`: per log, the offset a snapshot was taken after and
the entries it had), the live side is narrowed the other way: its entries
from that sequence number on, its quarantine rows after that offset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from refledger.store.columns import ENTRY_COLUMNS
from refledger.ledger.entries import CREDIT_ACCOUNTS

ENTRY_FIELDS = tuple(name for name, _ in ENTRY_COLUMNS)
_COLS = ", ".join(f'"{c}"' for c in ENTRY_FIELDS)
QUARANTINE_EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class ChainHead:
    topic: str
    partition: int
    live_entries: int
    live_head: str | None
    rebuilt_entries: int
    rebuilt_head: str | None

    @property
    def same(self) -> bool:
        return (self.live_entries, self.live_head) == (self.rebuilt_entries, self.rebuilt_head)


@dataclass(frozen=True, slots=True)
class EntryDifference:
    """The first entry of a log where the two ledgers differ."""

    topic: str
    partition: int
    seq: int
    live: tuple[tuple[str, object], ...] | None      # (column, value) pairs
    rebuilt: tuple[tuple[str, object], ...] | None

    def differing_columns(self) -> tuple[str, ...]:
        live, rebuilt = dict(self.live or ()), dict(self.rebuilt or ())
        return tuple(c for c in ENTRY_FIELDS if live.get(c) != rebuilt.get(c))

    def as_dict(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "seq": self.seq,
                "live": dict(self.live) if self.live is not None else None,
                "rebuilt": dict(self.rebuilt) if self.rebuilt is not None else None,
                "differing_columns": list(self.differing_columns())}


@dataclass(frozen=True, slots=True)
class BalanceChange:
    shop_id: str
    currency: str
    account: str
    live: int
    rebuilt: int

    @property
    def change(self) -> int:
        return self.rebuilt - self.live

    def as_dict(self) -> dict:
        return {**asdict(self), "change": self.change}


@dataclass(frozen=True, slots=True)
class PositionDifference:
    topic: str
    partition: int
    live: int | None
    rebuilt: int | None


@dataclass(frozen=True, slots=True)
class Comparison:
    heads: tuple[ChainHead, ...]
    first_differences: tuple[EntryDifference, ...]
    balance_changes: tuple[BalanceChange, ...]
    position_differences: tuple[PositionDifference, ...]
    quarantine_only_live: tuple[tuple, ...]       # (topic, partition, offset, event_id, reason), a few
    quarantine_only_rebuilt: tuple[tuple, ...]
    quarantine_differences: int

    @property
    def identical(self) -> bool:
        return not (self.first_differences or self.balance_changes or self.position_differences
                    or self.quarantine_differences or any(not h.same for h in self.heads))

    def as_dict(self) -> dict:
        return {
            "identical": self.identical,
            "heads": [{**asdict(h), "same": h.same} for h in self.heads],
            "first_differences": [d.as_dict() for d in self.first_differences],
            "balance_changes": [b.as_dict() for b in self.balance_changes],
            "position_differences": [asdict(p) for p in self.position_differences],
            "quarantine_differences": self.quarantine_differences,
            "quarantine_only_live": [list(q) for q in self.quarantine_only_live],
            "quarantine_only_rebuilt": [list(q) for q in self.quarantine_only_rebuilt],
        }


def compare(con, rebuilt_path: str | Path, topics, *, cut: bool,
            start: dict[tuple[str, int], tuple[int, int]] | None = None) -> Comparison:
    """Compare the live copy in `con` with the rebuilt ledger file, over `topics`."""
    path = str(rebuilt_path).replace("'", "''")
    con.execute(f"ATTACH '{path}' AS rebuilt (READ_ONLY)")
    try:
        con.execute("""CREATE OR REPLACE TEMP TABLE cmp_start (topic VARCHAR, partition INTEGER, "offset" BIGINT,
                                                                entries BIGINT)""")
        if start:
            con.executemany("INSERT INTO cmp_start VALUES (?, ?, ?, ?)",
                            [(t, p, o, n) for (t, p), (o, n) in start.items()])
        _define_sides(con, list(topics), cut)
        return Comparison(
            heads=_heads(con),
            first_differences=_first_differences(con),
            balance_changes=_balance_changes(con),
            position_differences=() if cut else _position_differences(con),
            **_quarantine_differences(con),
        )
    finally:
        con.execute("DETACH rebuilt")


def _define_sides(con, topics: list[str], cut: bool) -> None:
    topic_list = "[" + ", ".join("'" + t.replace("'", "''") + "'" for t in topics) + "]"
    in_topics = f"list_contains({topic_list}::VARCHAR[], topic)"
    # how far the rebuild read each log: its own positions, else the snapshot it started from (a log
    # whose latest snapshot is its last event, a month's close, has nothing more to fold)
    con.execute(f"""CREATE OR REPLACE TEMP VIEW cmp_reached AS
                    SELECT topic, partition, coalesce(r.next_offset, s."offset" + 1) AS next_offset
                    FROM (SELECT topic, partition, arg_max(next_offset, batch_id) AS next_offset
                          FROM rebuilt.positions WHERE {in_topics} GROUP BY ALL) r
                    FULL JOIN (SELECT topic, partition, "offset" FROM cmp_start WHERE {in_topics}) s
                    USING (topic, partition)""")
    con.execute(f"CREATE OR REPLACE TEMP VIEW cmp_live_positions AS SELECT * FROM live_positions WHERE {in_topics}")
    before_cut = ""
    if cut:
        # the live entries of the events the rebuild reached (each entry names its event's position)
        before_cut = """AND e.event_offset < coalesce((SELECT r.next_offset FROM cmp_reached r
                            WHERE r.topic = e.topic AND r.partition = e.partition), 0)"""
    after_start = """AND e.seq >= coalesce((SELECT s.entries FROM cmp_start s WHERE s.topic = e.topic
                                            AND s.partition = e.partition), 0)"""
    con.execute(f"CREATE OR REPLACE TEMP VIEW cmp_live AS SELECT {_COLS} FROM live_entries e "
                f"WHERE {in_topics} {before_cut} {after_start}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW cmp_rebuilt AS SELECT {_COLS} FROM rebuilt.entries WHERE {in_topics}")
    q_cols = 'topic, partition, "offset", event_id, reason'
    q_cut = ""
    if cut:
        q_cut = """AND "offset" < coalesce((SELECT r.next_offset FROM cmp_reached r WHERE r.topic = q.topic
                       AND r.partition = q.partition), 0)"""
    q_start = """AND q."offset" > coalesce((SELECT s."offset" FROM cmp_start s WHERE s.topic = q.topic
                                            AND s.partition = q.partition), -1)"""
    con.execute(f"CREATE OR REPLACE TEMP VIEW cmp_live_quarantine AS SELECT {q_cols} FROM live_quarantine q "
                f"WHERE {in_topics} {q_cut} {q_start}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW cmp_rebuilt_quarantine AS SELECT {q_cols} FROM rebuilt.quarantine "
                f"WHERE {in_topics}")


def _heads(con) -> tuple[ChainHead, ...]:
    rows = con.execute(
        """WITH l AS (SELECT topic, partition, count(*) AS n, arg_max(hash, seq) AS head FROM cmp_live GROUP BY ALL),
                r AS (SELECT topic, partition, count(*) AS n, arg_max(hash, seq) AS head FROM cmp_rebuilt GROUP BY ALL)
           SELECT topic, partition, coalesce(l.n, 0), l.head, coalesce(r.n, 0), r.head
           FROM l FULL JOIN r USING (topic, partition) ORDER BY topic, partition""").fetchall()
    return tuple(ChainHead(t, p, int(ln), lh, int(rn), rh) for t, p, ln, lh, rn, rh in rows)


def _first_differences(con) -> tuple[EntryDifference, ...]:
    firsts = con.execute(
        """SELECT topic, partition, min(seq) FROM (
               (SELECT * FROM cmp_live EXCEPT ALL SELECT * FROM cmp_rebuilt)
               UNION ALL
               (SELECT * FROM cmp_rebuilt EXCEPT ALL SELECT * FROM cmp_live))
           GROUP BY ALL ORDER BY topic, partition""").fetchall()
    found = []
    for topic, partition, seq in firsts:
        sides = []
        for view in ("cmp_live", "cmp_rebuilt"):
            row = con.execute(f"SELECT {_COLS} FROM {view} WHERE topic = ? AND partition = ? AND seq = ? LIMIT 1",
                              [topic, partition, seq]).fetchone()
            sides.append(tuple(zip(ENTRY_FIELDS, row)) if row is not None else None)
        found.append(EntryDifference(topic, partition, int(seq), *sides))
    return tuple(found)


def _balance_changes(con) -> tuple[BalanceChange, ...]:
    rows = con.execute(
        """WITH l AS (SELECT shop_id, currency, account, sum(amount) AS total FROM cmp_live GROUP BY ALL),
                r AS (SELECT shop_id, currency, account, sum(amount) AS total FROM cmp_rebuilt GROUP BY ALL)
           SELECT shop_id, currency, account, coalesce(l.total, 0), coalesce(r.total, 0)
           FROM l FULL JOIN r USING (shop_id, currency, account)
           WHERE coalesce(l.total, 0) <> coalesce(r.total, 0)
           ORDER BY shop_id, currency, account""").fetchall()
    return tuple(BalanceChange(s, c, a, _shown(a, lv), _shown(a, rv)) for s, c, a, lv, rv in rows)


def _shown(account: str, total) -> int:
    """A balance as SPEC §11 shows it: owed, paid out and swap received as positive numbers."""
    return -int(total) if account in CREDIT_ACCOUNTS else int(total)


def _position_differences(con) -> tuple[PositionDifference, ...]:
    rows = con.execute(
        """SELECT topic, partition, l.next_offset, r.next_offset
           FROM cmp_live_positions l FULL JOIN cmp_reached r USING (topic, partition)
           WHERE l.next_offset IS DISTINCT FROM r.next_offset ORDER BY topic, partition""").fetchall()
    return tuple(PositionDifference(t, p, lo, ro) for t, p, lo, ro in rows)


def _quarantine_differences(con) -> dict:
    only_live = con.execute("SELECT * FROM cmp_live_quarantine EXCEPT ALL SELECT * FROM cmp_rebuilt_quarantine "
                            "ORDER BY ALL").fetchall()
    only_rebuilt = con.execute("SELECT * FROM cmp_rebuilt_quarantine EXCEPT ALL SELECT * FROM cmp_live_quarantine "
                               "ORDER BY ALL").fetchall()
    return {"quarantine_only_live": tuple(only_live[:QUARANTINE_EXAMPLES]),
            "quarantine_only_rebuilt": tuple(only_rebuilt[:QUARANTINE_EXAMPLES]),
            "quarantine_differences": len(only_live) + len(only_rebuilt)}
