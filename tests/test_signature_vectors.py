"""Known-answer vectors for signed events (SPEC §4a, docs/audit.md "Known-answer vectors for signatures").

The canonical JSON and the Ed25519 signatures below were computed once, with
a few lines of Node.js written from the rules in docs/audit.md (JCS by
sorting keys and `JSON.stringify`) and Node's `crypto.sign`, not by
refledger, under RFC 8032's first test key, and checked with `openssl
pkeyutl -verify -rawin`. They are kept here as literals, so neither
`schemas.signing` nor `refledger verify` can agree with a broken
implementation of itself: nulls kept, a default left out, keys sorted by
code point instead of UTF-16, non-ASCII escaped or a time without
milliseconds give other bytes, and another signature.

The doc's own Node.js script and OpenSSL commands are run here on the
vectors too, as an auditor would run them.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from nacl.signing import SigningKey

from refledger.cli import cli
from refledger.schemas import codec
from refledger.schemas.keys import public_key_text
from refledger.schemas.signing import canonical_bytes, sign_bytes, verify

DOC = Path(__file__).resolve().parents[1] / "docs" / "audit.md"
SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"  # RFC 8032 §7.1, TEST 1
PUBLIC_KEY = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

# (JSON line, canonical JSON as text, signature)
VECTORS = [
    ('{"event_id": "c-1", "type": "click", "occurred_at": "2026-11-01T10:00:00.000Z", "alliance_id": "baby-care", '
     '"shop_id": "li-kids", "visitor_id": "v-7f3a", "click": {"referrer_shop_id": "li-kids", '
     '"merchant_shop_id": "wang-bath", "placement_id": "article-12"}}',
     '{"alliance_id":"baby-care","click":{"merchant_shop_id":"wang-bath","placement_id":"article-12",'
     '"referrer_shop_id":"li-kids"},"event_id":"c-1","occurred_at":"2026-11-01T10:00:00.000Z","shop_id":"li-kids",'
     '"type":"click","visitor_id":"v-7f3a"}',
     "B/E8F6NHcLiFQU559hZqyA4WMtI+vzpKlAGlYXreRKMV2qRep270fgZV7TiG6vhjLCugmb2GSZqgHUe6SJTRCA=="),
    ('{"event_id": "订单-0001", "type": "order", "occurred_at": "2026-11-01T10:05:00.000Z", "alliance_id": '
     '"baby-care", "shop_id": "wang-bath", "visitor_id": "v-7f3a", "order": {"order_id": "o1", "merchant_shop_id": '
     '"wang-bath", "currency": "CNY", "lines": [{"sku": "婴儿沐浴露 \\"温和\\"", "category": "洗护", "quantity": 2, '
     '"unit_price_minor": 4950}, {"sku": "lotion", "category": "care", "quantity": 1, "unit_price_minor": 3333}], '
     '"total_minor": 13233}}',
     '{"alliance_id":"baby-care","event_id":"订单-0001","occurred_at":"2026-11-01T10:05:00.000Z","order":'
     '{"currency":"CNY","lines":[{"category":"洗护","quantity":2,"sku":"婴儿沐浴露 \\"温和\\"","unit_price_minor":4950},'
     '{"category":"care","quantity":1,"sku":"lotion","unit_price_minor":3333}],"merchant_shop_id":"wang-bath",'
     '"order_id":"o1","total_minor":13233},"shop_id":"wang-bath","type":"order","visitor_id":"v-7f3a"}',
     "QacsRuN54dr2PJeiiCwQoxQ6fuMXG29S36Hj5bK+jXLHIW4x8rHX9aOq+GcjDsznIHlO0/vVS0hxq+TaPpYuCw=="),
    ('{"event_id": "p-1", "type": "policy", "occurred_at": "2026-11-01T00:00:00.000Z", "alliance_id": "baby-care", '
     '"shop_id": "alliance", "visitor_id": null, "policy": {"policy_id": "signing-on", "require_signatures": true, '
     '"operator_public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}}',
     '{"alliance_id":"baby-care","event_id":"p-1","occurred_at":"2026-11-01T00:00:00.000Z","policy":'
     '{"operator_public_key":"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=","policy_id":"signing-on",'
     '"require_signatures":true},"shop_id":"alliance","type":"policy"}',
     "Eb0wMqIwSFAbxIbXD3Eex+RkV2MvaZLnl6EKMRCelvGeRgIL5CtRSGXQ0T9OfYxZy+v7pyrD8J89Ny5kcIjrCA=="),
    ('{"event_id": "a-1", "type": "agreement", "occurred_at": "2026-10-31T12:00:00.000Z", "alliance_id": '
     '"baby-care", "shop_id": "alliance", "visitor_id": null, "agreement": {"agreement_id": "default", "version": 1, '
     '"effective_from": "2026-11-01T00:00:00.000Z", "merchant_shop_id": "*", "referrer_shop_id": "*", '
     '"model": "cps", "rate_bp": 800}}',
     '{"agreement":{"agreement_id":"default","attribution_window_days":15,"category_rates_bp":{},'
     '"effective_from":"2026-11-01T00:00:00.000Z","hold_days":15,"merchant_shop_id":"*","model":"cps",'
     '"rate_bp":800,"referrer_shop_id":"*","version":1},"alliance_id":"baby-care","event_id":"a-1",'
     '"occurred_at":"2026-10-31T12:00:00.000Z","shop_id":"alliance","type":"agreement"}',
     "IgxNyrrx8xBO0A+p31XvES+8SrjbP3LjFGUrSdUGfqyiCXvHTrxB9cN/auTNbRJfnKb01qo10U0G8acVnoTXAQ=="),
]
KEY = SigningKey(bytes.fromhex(SEED))
IDS = ["click", "order", "policy", "agreement"]


def signed_line(n: int) -> str:
    line, _, signature = VECTORS[n]
    return json.dumps({**json.loads(line), "signature": signature}, ensure_ascii=False)


def test_the_test_key_is_rfc_8032s():
    assert public_key_text(KEY) == PUBLIC_KEY
    assert bytes(KEY.verify_key).hex() == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"


@pytest.mark.parametrize("n", range(len(VECTORS)), ids=IDS)
def test_refledger_writes_the_known_canonical_bytes(n):
    line, canonical, _ = VECTORS[n]
    assert canonical_bytes(codec.record_from_json(line)) == canonical.encode("utf-8")
    assert canonical_bytes(codec.decode(codec.encode(codec.record_from_json(signed_line(n))))) == \
        canonical.encode("utf-8")


@pytest.mark.parametrize("n", range(len(VECTORS)), ids=IDS)
def test_refledger_signs_and_verifies_the_known_signatures(n):
    _, canonical, signature = VECTORS[n]
    assert sign_bytes(canonical.encode("utf-8"), KEY) == signature
    assert verify(PUBLIC_KEY, signature, canonical.encode("utf-8"))
    flipped = bytearray(base64.b64decode(signature))
    flipped[n] ^= 1
    assert not verify(PUBLIC_KEY, base64.b64encode(bytes(flipped)).decode(), canonical.encode("utf-8"))


def test_the_vectors_fold_as_a_signed_alliance_and_verify(tmp_path):
    """Members li-kids and wang-bath publish the test key; the policy requires signatures; the
    agreement, click and order are signed: nothing is quarantined and li-kids earns its 8 %."""
    members = [{"event_id": f"m-{shop}", "type": "member", "occurred_at": "2026-10-31T00:00:00.000Z",
                "alliance_id": "baby-care", "shop_id": "alliance", "visitor_id": None,
                "member": {"member_shop_id": shop, "status": "active", "public_key": PUBLIC_KEY}}
               for shop in ("li-kids", "wang-bath")]
    events = tmp_path / "vectors.jsonl"
    order = [2, 3, 0, 1]  # the policy first, then the agreement, the click, the order
    events.write_text("".join(json.dumps(m) + "\n" for m in members)
                      + "".join(signed_line(n) + "\n" for n in order), encoding="utf-8")
    db = tmp_path / "ledger.duckdb"
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(events), "--db", str(db)]).exit_code == 0
    stats = json.loads(runner.invoke(cli, ["stats", "--db", str(db), "--format", "json"]).output)
    assert stats["quarantined"] == 0
    rows = json.loads(runner.invoke(cli, ["balances", "--db", str(db), "--format", "json"]).output)
    assert {(r["shop_id"], r["earned_pending"]) for r in rows if r["earned_pending"]} == {("li-kids", 1059)}
    assert runner.invoke(cli, ["verify", "--db", str(db)]).exit_code == 0
    tampered = events.read_text(encoding="utf-8").replace('"quantity": 2', '"quantity": 3', 1)
    tampered = tampered.replace('"total_minor": 13233', '"total_minor": 18183', 1)
    events.write_text(tampered, encoding="utf-8")
    db2 = tmp_path / "tampered.duckdb"
    assert runner.invoke(cli, ["ingest", str(events), "--db", str(db2)]).exit_code == 0
    quarantined = json.loads(runner.invoke(cli, ["quarantine", "--db", str(db2), "--format", "json"]).output)
    assert [(q["event_id"], q["reason"]) for q in quarantined] == [("订单-0001", "bad_signature")]


def _doc_block(marker: str, language: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    return re.search(rf"<!-- {marker} -->\n```{language}\n(.*?)```", text, re.S).group(1)


@pytest.mark.parametrize("n", range(len(VECTORS)), ids=IDS)
def test_the_docs_nodejs_check_accepts_the_vectors_and_refuses_a_changed_event(n, tmp_path):
    script = tmp_path / "check-signature.js"
    script.write_text(_doc_block("signature-check", "js"), encoding="utf-8")
    ok = subprocess.run(["node", str(script), signed_line(n), PUBLIC_KEY], capture_output=True, text=True)
    assert (ok.returncode, ok.stdout.strip()) == (0, "signature ok"), ok.stderr
    changed = signed_line(n).replace('"baby-care"', '"baby-care2"')
    bad = subprocess.run(["node", str(script), changed, PUBLIC_KEY], capture_output=True, text=True)
    assert (bad.returncode, bad.stdout.strip()) == (1, "BAD SIGNATURE")


def test_the_docs_openssl_commands_verify_a_vector(tmp_path):
    _, canonical, signature = VECTORS[1]
    (tmp_path / "canonical.json").write_bytes(canonical.encode("utf-8"))
    commands = _doc_block("openssl-check", "sh")
    env = {"SIGNATURE": signature, "PUBLIC_KEY": PUBLIC_KEY, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    done = subprocess.run(["sh", "-c", commands], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stdout + done.stderr
    (tmp_path / "canonical.json").write_bytes(canonical.replace("o1", "o2").encode("utf-8"))
    done = subprocess.run(["sh", "-c", commands], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0


def test_a_key_file_is_pem_its_owner_alone_reads_and_it_reads_back_as_the_same_key(tmp_path):
    import os

    from refledger.schemas.keys import SigningKeyError, derived_key, public_key_text, read_key_file, write_key_file
    from refledger.schemas.signing import public_key_bytes

    key = derived_key(7, "wang-bath")
    path = write_key_file(str(tmp_path / "wang-bath.pem"), key)
    assert path == tmp_path / "wang-bath.pem" and oct(os.stat(path).st_mode & 0o777) == "0o600"
    lines = path.read_bytes().split(b"\n")
    assert lines[0] == b"-----BEGIN PRIVATE KEY-----" and lines[2:] == [b"-----END PRIVATE KEY-----", b""]
    assert base64.b64decode(lines[1])[-32:] == bytes(key)
    assert bytes(read_key_file(path)) == bytes(key)
    with pytest.raises(SigningKeyError, match="never overwritten"):
        write_key_file(path, derived_key(8, "wang-bath"))
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SigningKeyError, match="holds no Ed25519 private key"):
        read_key_file(path)
    public = public_key_text(key)
    assert public_key_bytes(public) == bytes(key.verify_key)
    assert [public_key_bytes(t) for t in (public[:-4], public + "AAAA", public.rstrip("=") , None)] == [None] * 4
