"""Signatures checked for the fold, mostly ahead of it (SPEC §4a).

The fold decides ``bad_signature`` (``ledger.signers`` says which keys an
event needs, in log order), but Ed25519 costs more than folding an event, so
the decode step does the expensive part first, for every source alike
(``consume``, ``ingest``, ``replay``):

1. for each event that carries a signature it makes the canonical bytes the
   signature covers (views and clicks straight from the reader's fields);
2. it guesses the key the fold will ask for from the ``member`` and
   ``policy`` events it has decoded (and, on start, those stored), with the
   fold's own ``Signers``: a belief, not a verdict;
3. it verifies the batch's signatures against those keys on a few threads,
   a chunk at a time as the decode loop fills them (libsodium lets go of the
   interpreter lock, so they run beside the loop, and beside the fold
   process when it waits for work), and attaches a
   ``ledger.signers.Signature`` to each fold item: the signature, its bytes,
   the key tried and the result.

The fold takes a verdict reached ahead only when the key tried is one it
requires; otherwise (a key the decode step could not know, a signature that
did not verify under the key it guessed) it verifies again itself, with
``ED25519``, the check every fold is built with (``signed_fold``). So the
verdicts are the fold's, whatever the guesses, and the same from every source.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from refledger.ledger.events import BadRecord, parse_event
from refledger.ledger.fold import PartitionFold
from refledger.ledger.signers import Signature, Signers
from refledger.schemas import signing

# Signatures verified ahead per thread task: large enough to make handing out tasks cheap.
CHUNK = 512

_new = tuple.__new__  # named tuples built from values already checked, by the hundred thousand


class Ed25519Check:
    """The fold's ``SignatureCheck``: canonical bytes of a record, Ed25519 with libsodium."""

    def message(self, record: dict) -> bytes | None:
        try:
            return signing.canonical_bytes(record)
        except (ValueError, KeyError, TypeError):
            return None

    def verify(self, public_key: str, signature: str, message: bytes) -> bool:
        return signing.verify(public_key, signature, message)


ED25519 = Ed25519Check()


def signed_fold() -> PartitionFold:
    """A partition's fold that checks signatures: the fold every command uses."""
    return PartitionFold(ED25519)


def _verify_all(checks: list[tuple[int, Signature]]) -> list[int]:
    verify = signing.verify
    return [index for index, s in checks if verify(s.key, s.signature, s.message)]


class SignaturesAhead:
    """The decode step's part: canonical bytes and Ed25519 verdicts for a batch's signed events."""

    def __init__(self, threads: int | None = None):
        self.belief = Signers()
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._checks: list[tuple[int, Signature]] = []
        self._started: list = []  # futures of the batch's chunks handed to the threads already

    def learn(self, record: dict) -> None:
        """A decoded (or stored) ``member`` or ``policy`` record: what the fold will likely ask for."""
        if record["type"] in ("member", "policy"):
            try:
                self.belief.adopt(parse_event(record))
            except BadRecord:
                pass

    def _expected(self, kind: str, shop_id: str, occurred_at: int, record: dict | None) -> str | None:
        belief = self.belief
        if kind == "policy" and record is not None:
            try:
                keys = belief.keys_for(parse_event(record))
            except BadRecord:
                return None
        elif not belief.required:
            return None
        else:
            keys = belief.keys_of(kind, shop_id, occurred_at)
        return keys[0] if keys else None

    def of_traffic(self, index: int, fields: tuple) -> Signature:
        """The signature of the batch's ``index``-th item, a view or click given as the reader's
        fields (``schemas.traffic.read_traffic_fields``, signature last)."""
        kind, event_id, occurred_at, alliance_id, shop_id, visitor_id, referrer, merchant, placement, sig = fields
        try:
            message = signing.traffic_canonical_bytes(kind, event_id, occurred_at, alliance_id, shop_id, visitor_id,
                                                      referrer, merchant, placement)
        except ValueError:
            return _new(Signature, (sig, None, None, False))
        return self._ahead(index, _new(Signature, (sig, message, self._expected(kind, shop_id, occurred_at, None),
                                                   False)))

    def of_record(self, index: int, record: dict) -> Signature | None:
        """The signature of the batch's ``index``-th item, given as a record (None: unsigned). The
        key expected is the one in force before the record (a policy needs the operator key in
        force before it), then the record is learnt."""
        sig = record.get("signature")
        signature = None
        if sig is not None:
            message = ED25519.message(record)
            if message is None:
                signature = _new(Signature, (sig, None, None, False))
            else:
                key = self._expected(record["type"], record["shop_id"], record["occurred_at"], record)
                signature = self._ahead(index, _new(Signature, (sig, message, key, False)))
        self.learn(record)
        return signature

    def _ahead(self, index: int, signature: Signature) -> Signature:
        if signature.key is not None:
            checks = self._checks
            checks.append((index, signature))
            if len(checks) >= CHUNK and self.threads > 1:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="refledger-verify")
                self._started.append(self._pool.submit(_verify_all, checks))
                self._checks = []
        return signature

    def verify(self, items: list) -> None:
        """Verify what the batch's items were given, and mark the signatures that verified
        (``items`` are the batch's fold items, each holding its ``Signature`` last, as ``signed``)."""
        rest, self._checks = self._checks, []
        started, self._started = self._started, []
        if rest and self._pool is not None:
            started.append(self._pool.submit(_verify_all, rest))
            rest = []
        valid = _verify_all(rest) if rest else []
        for future in started:
            valid += future.result()
        for index in valid:
            item = items[index]
            sig, message, key, _ = item[-1]
            items[index] = _new(type(item), (*item[:-1], _new(Signature, (sig, message, key, True))))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
