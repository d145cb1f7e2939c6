"""Known-answer vectors for the hash chain (SPEC §10, docs/audit.md "Known-answer vectors").

The canonical bytes and SHA-256 hashes below were computed once, by a few
lines of `hashlib` and `json` written from the chain's description in
docs/audit.md and ledger/README.md, not by refledger's code, and are kept
here as literals. So neither `ledger.chain` nor `refledger verify` can agree
with a broken implementation of itself: a chain without `prev_hash`, without
one field, with ASCII escapes or with another genesis gives other bytes.

The story (SPEC §13 step 1, then a correction): li-kids refers v1 to
wang-bath; v1's order o1 (2 × 4,950 + 3,333 fen of care products at 8 %)
earns li-kids 1,059; later the alliance takes 300 back from li-kids by an
adjustment whose reason is Chinese text with quotes in it. Four entries in
one chain: null fields, a negative amount, non-ASCII text, a `/` escaped in an
id.

Signature vectors (SPEC §4a: the JCS bytes an Ed25519 signature covers, a
key pair, the signatures) are in tests/test_signature_vectors.py.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import duckdb
import pytest
from click.testing import CliRunner

from refledger.cli import cli
from refledger.ledger.chain import GENESIS, HASHED_FIELDS, canonical_bytes, canonical_values, chain_hash
from refledger.ledger.entries import ENTRY_FIELDS
from refledger.ledger.fold import PartitionFold
from tests.ledger_support import to_record

STORY = [
    {"event_id": "m-1", "type": "member", "occurred_at": "2026-10-31T00:00:00.000Z", "alliance_id": "baby-care",
     "shop_id": "alliance", "visitor_id": None, "member": {"member_shop_id": "li-kids", "status": "active"}},
    {"event_id": "m-2", "type": "member", "occurred_at": "2026-10-31T00:00:00.000Z", "alliance_id": "baby-care",
     "shop_id": "alliance", "visitor_id": None, "member": {"member_shop_id": "wang-bath", "status": "active"}},
    {"event_id": "a-1", "type": "agreement", "occurred_at": "2026-10-31T12:00:00.000Z", "alliance_id": "baby-care",
     "shop_id": "alliance", "visitor_id": None,
     "agreement": {"agreement_id": "default", "version": 1, "effective_from": "2026-11-01T00:00:00.000Z",
                   "merchant_shop_id": "*", "referrer_shop_id": "*", "model": "cps", "rate_bp": 800,
                   "category_rates_bp": {"toys": 1000}, "attribution_window_days": 15, "hold_days": 15}},
    {"event_id": "c-1", "type": "click", "occurred_at": "2026-11-01T10:00:00.000Z", "alliance_id": "baby-care",
     "shop_id": "li-kids", "visitor_id": "v1",
     "click": {"referrer_shop_id": "li-kids", "merchant_shop_id": "wang-bath", "placement_id": "article-12"}},
    {"event_id": "o-1", "type": "order", "occurred_at": "2026-11-01T10:05:00.000Z", "alliance_id": "baby-care",
     "shop_id": "wang-bath", "visitor_id": "v1",
     "order": {"order_id": "o1", "merchant_shop_id": "wang-bath", "currency": "CNY",
               "lines": [{"sku": "bath-gel", "category": "care", "quantity": 2, "unit_price_minor": 4950},
                         {"sku": "lotion", "category": "care", "quantity": 1, "unit_price_minor": 3333}],
               "total_minor": 13233}},
    {"event_id": "调整-1", "type": "adjustment", "occurred_at": "2026-11-20T09:00:00.000Z", "alliance_id": "baby-care",
     "shop_id": "alliance", "visitor_id": None,
     "adjustment": {"adjustment_id": "adj/11", "merchant_shop_id": "wang-bath", "referrer_shop_id": "li-kids",
                    "currency": "CNY", "amount_minor": -300, "reason": '尺码不符 "XL" 退回佣金'}},
]

# (canonical bytes as UTF-8 text, prev_hash, hash), in chain order.
VECTORS = [
    ('{"account":"earned_pending","agreement_id":"default","agreement_version":1,"amount":1059,'
     '"click_event_id":"c-1","counterparty_shop_id":"wang-bath","currency":"CNY",'
     '"entry_id":"o-1/order:wang-bath:o1/commission/earned_pending","event_id":"o-1","model":"cps",'
     '"rate_bp":800,"reason":null,"refund_id":null,"role":"commission","seq":0,"shop_id":"li-kids",'
     '"subject":"order:wang-bath:o1","txn_id":"o-1/order:wang-bath:o1/commission"}',
     "0000000000000000000000000000000000000000000000000000000000000000",
     "ba58cdb312ecae69e0aa1a57c147d30c07621e137dba2b15e44781b36f4e2c6d"),
    ('{"account":"owed_pending","agreement_id":"default","agreement_version":1,"amount":-1059,'
     '"click_event_id":"c-1","counterparty_shop_id":"li-kids","currency":"CNY",'
     '"entry_id":"o-1/order:wang-bath:o1/commission/owed_pending","event_id":"o-1","model":"cps",'
     '"rate_bp":800,"reason":null,"refund_id":null,"role":"commission","seq":1,"shop_id":"wang-bath",'
     '"subject":"order:wang-bath:o1","txn_id":"o-1/order:wang-bath:o1/commission"}',
     "ba58cdb312ecae69e0aa1a57c147d30c07621e137dba2b15e44781b36f4e2c6d",
     "dac14d9413daf93008c4d0b12abb1e62b3ed2347b140fc2d9585d54d1f28455e"),
    ('{"account":"earned_payable","agreement_id":null,"agreement_version":null,"amount":-300,'
     '"click_event_id":null,"counterparty_shop_id":"wang-bath","currency":"CNY",'
     '"entry_id":"调整-1/adjustment:wang-bath:adj%2F11/adjust/earned_payable","event_id":"调整-1",'
     '"model":null,"rate_bp":null,"reason":"尺码不符 \\"XL\\" 退回佣金","refund_id":null,"role":"adjust",'
     '"seq":2,"shop_id":"li-kids","subject":"adjustment:wang-bath:adj/11",'
     '"txn_id":"调整-1/adjustment:wang-bath:adj%2F11/adjust"}',
     "dac14d9413daf93008c4d0b12abb1e62b3ed2347b140fc2d9585d54d1f28455e",
     "dce99fdec44f52efd49530c6e5c91e3db4d3b9f76bc28c3401739aadd67dfe24"),
    ('{"account":"owed_payable","agreement_id":null,"agreement_version":null,"amount":300,'
     '"click_event_id":null,"counterparty_shop_id":"li-kids","currency":"CNY",'
     '"entry_id":"调整-1/adjustment:wang-bath:adj%2F11/adjust/owed_payable","event_id":"调整-1",'
     '"model":null,"rate_bp":null,"reason":"尺码不符 \\"XL\\" 退回佣金","refund_id":null,"role":"adjust",'
     '"seq":3,"shop_id":"wang-bath","subject":"adjustment:wang-bath:adj/11",'
     '"txn_id":"调整-1/adjustment:wang-bath:adj%2F11/adjust"}',
     "dce99fdec44f52efd49530c6e5c91e3db4d3b9f76bc28c3401739aadd67dfe24",
     "aa9235bc56be5c5e06bca575687b1198e0fbd4aee5f2b21a2df6fb9ab986462d"),
]
HEAD = VECTORS[-1][2]


def vector_entry(n: int) -> dict:
    """The n-th vector as the entry it describes: its hashed fields, prev_hash and hash."""
    text, prev, digest = VECTORS[n]
    return {**json.loads(text), "prev_hash": prev, "hash": digest}


def run(*args, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    """The story ingested into a DuckDB ledger, as `refledger ingest` does it."""
    root = tmp_path_factory.mktemp("vectors")
    events = root / "story.jsonl"
    events.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in STORY), encoding="utf-8")
    db = root / "ledger.duckdb"
    run("ingest", events, "--db", db)
    return db


def test_the_vectors_are_utf8_without_escapes_and_link_up():
    """What an auditor reads off the page: GENESIS first, each prev_hash the hash before it,
    non-ASCII text as UTF-8 (no \\u escapes), a negative amount and nulls as JSON writes them."""
    assert VECTORS[0][1] == "0" * 64 == GENESIS
    for (_, _, before), (_, prev, _) in zip(VECTORS, VECTORS[1:]):
        assert prev == before
    raw = [text.encode("utf-8") for text, _, _ in VECTORS]
    assert all(b"\\u" not in r for r in raw) and "调整".encode("utf-8") in raw[2]
    assert b'"amount":-1059' in raw[1] and b'"agreement_id":null' in raw[2]


@pytest.mark.parametrize("n", range(len(VECTORS)))
def test_ledger_chain_writes_the_known_bytes_and_hashes(n):
    text, prev, digest = VECTORS[n]
    entry = vector_entry(n)
    assert canonical_bytes(entry) == text.encode("utf-8")
    assert canonical_values(tuple(entry[name] for name in HASHED_FIELDS)) == text.encode("utf-8")
    assert chain_hash(prev, text.encode("utf-8")) == digest


def test_the_fold_posts_exactly_these_entries_for_the_story():
    fold = PartitionFold()
    entries = [e for record in STORY for e in fold.apply(to_record(record)).entries]
    assert [e.to_dict() for e in entries] == [{name: vector_entry(n)[name] for name in ENTRY_FIELDS}
                                              for n in range(len(VECTORS))]
    assert fold.chain_head == HEAD


def verify_json(db, code=0) -> dict:
    return json.loads(run("verify", "--db", db, "--format", "json", code=code).output)


def test_verify_accepts_the_ledger_holding_exactly_the_known_chain(ledger):
    con = duckdb.connect(str(ledger), read_only=True)
    stored = con.execute("SELECT seq, prev_hash, hash FROM entries ORDER BY seq").fetchall()
    con.close()
    assert stored == [(n, prev, digest) for n, (_, prev, digest) in enumerate(VECTORS)]
    report = verify_json(ledger)
    assert report["ok"] is True
    assert [log["head"] for log in report["logs"].values()] == [HEAD]


def _copy_with(ledger, tmp_path, *updates):
    copy = tmp_path / "tampered.duckdb"
    shutil.copy(ledger, copy)
    con = duckdb.connect(str(copy))
    for sql, params in updates:
        con.execute(sql, params)
    con.close()
    return copy


def _chain_problems(report):
    return [p for p in report["problems"] if p["check"] == "chain"]


def test_verify_catches_a_tampered_prev_hash(ledger, tmp_path):
    """The adjustment's first entry claims to follow GENESIS instead of the commission."""
    bad = _copy_with(ledger, tmp_path, ("UPDATE entries SET prev_hash = ? WHERE seq = 2", [GENESIS]))
    [problem] = _chain_problems(verify_json(bad, code=1))
    assert "seq 2" in problem["where"] and "prev_hash" in problem["detail"]


def test_verify_catches_a_dropped_field(ledger, tmp_path):
    """The reason of the adjustment's entry is blanked; its stored hash no longer matches."""
    bad = _copy_with(ledger, tmp_path, ("UPDATE entries SET reason = NULL WHERE seq = 3", []))
    [problem] = _chain_problems(verify_json(bad, code=1))
    assert "seq 3" in problem["where"] and "hash does not match" in problem["detail"]


def _forged(canonical_of, link: bool):
    """Hashes for the vectors' entries by a broken chain: other canonical bytes, or no prev_hash."""
    prev, rows = GENESIS, []
    for n in range(len(VECTORS)):
        body = canonical_of(json.loads(VECTORS[n][0]))
        digest = hashlib.sha256((bytes.fromhex(prev) if link else b"") + body).hexdigest()
        rows.append((n, prev, digest))
        prev = digest
    return rows


def _dumps(fields: dict) -> bytes:
    return json.dumps(fields, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


BROKEN_CHAINS = {
    "without-prev_hash": (_dumps, False),
    "without-the-reason": (lambda f: _dumps({k: v for k, v in f.items() if k != "reason"}), True),
    "without-seq": (lambda f: _dumps({k: v for k, v in f.items() if k != "seq"}), True),
    "ascii-escapes": (lambda f: json.dumps(f, separators=(",", ":"), sort_keys=True).encode(), True),
    "with-spaces": (lambda f: json.dumps(f, sort_keys=True, ensure_ascii=False).encode("utf-8"), True),
}


@pytest.mark.parametrize("broken", BROKEN_CHAINS)
def test_verify_rejects_a_chain_rehashed_by_a_broken_implementation(ledger, tmp_path, broken):
    """A chain re-forged consistently by a broken implementation (every prev_hash and hash
    rewritten) does not verify: it breaks at the first entry whose hash differs from the known one
    (ASCII escapes change only the entries with Chinese text)."""
    rows = _forged(*BROKEN_CHAINS[broken])
    first = next(n for n, (_, _, digest) in enumerate(rows) if digest != VECTORS[n][2])
    bad = _copy_with(ledger, tmp_path, *[("UPDATE entries SET prev_hash = ?, hash = ? WHERE seq = ?",
                                          [prev, digest, n]) for n, prev, digest in rows])
    [problem] = _chain_problems(verify_json(bad, code=1))
    assert f"seq {first} " in problem["where"] and "hash does not match" in problem["detail"]


def test_docs_audit_publishes_the_same_vectors():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "audit.md").read_text(encoding="utf-8")
    section = doc.split("## Known-answer vectors", 1)[1].split("\n## ", 1)[0]
    for text, prev, digest in VECTORS:
        assert f"```\n{text}\n```" in section
        assert f"prev_hash {prev}\n    hash      {digest}" in section
