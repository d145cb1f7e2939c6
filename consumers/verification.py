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
   interpreter lock, so they run beside the loop), and attaches a
   ``ledger.signers.Signature`` to each fold item: the signature, its bytes,
   the key guessed and, once verified, the result (written on it in place).

When the fold runs in a process of its own (``consume``, and ``replay``
with a fold process), the decode step
does not wait for chunks its threads have not started by the end of the
batch: it hands them to the fold as not tried, and the fold process, which
has an interpreter of its own, verifies them while this one decodes the next
batch. So the work shares itself between the two processes by how busy each
is, rather than by a fixed split.

The fold takes a verdict reached ahead only when the key tried is one it
requires; otherwise (not tried, a key the decode step could not know, a
signature that did not verify under the key it guessed) it verifies again
itself, with ``ED25519``, the check every fold is built with
(``signed_fold``). So the verdicts are the fold's, whatever the guesses and
whoever verified, and the same from every source.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from refledger.consumers.folding import NEVER
from refledger.ledger.events import BadRecord, parse_event
from refledger.ledger.fold import PartitionFold
from refledger.ledger.signers import Signature, Signers
from refledger.schemas import signing

# Signatures verified ahead per thread task: large enough to make handing out tasks cheap.
CHUNK = 512


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


def _verify_all(checks: list[Signature]) -> None:
    """Each signature verified under the key it names, its verdict written on it."""
    verify = signing.verify
    for s in checks:
        s.valid = verify(s.key, s.signature, s.message)


class VerdictsInFold:
    """The fold process's part, for what the decode step left to it: the signatures of a job not
    tried yet under the key guessed are verified on a few threads of this process, a chunk at a
    time, while the fold goes through the items before them (``settle`` before each item)."""

    def __init__(self, threads: int | None = None):
        self.threads = threads or min(4, os.cpu_count() or 1)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[tuple[int, object]] = []  # (first item index of a chunk, its future), last first
        self.waits_from = NEVER  # the index of the first item whose chunk may not be verified yet

    def start(self, items: list) -> None:
        """Hand a job's signatures not tried yet to the threads, a chunk at a time (what a job that
        failed left queued is dropped first)."""
        for _, future in self._pending:
            future.cancel()
        untried = [(index, item.signed) for index, item in enumerate(items)
                   if item.signed is not None and item.signed.valid is None and item.signed.key is not None]
        pending = []
        if untried:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="refledger-verify")
            for at in range(0, len(untried), CHUNK):
                chunk = untried[at:at + CHUNK]
                pending.append((chunk[0][0], self._pool.submit(_verify_all, [s for _, s in chunk])))
            pending.reverse()
        self._pending = pending
        self.waits_from = pending[-1][0] if pending else NEVER

    def settle(self, index: int) -> None:
        """Before the fold takes the item at ``index``: the chunks up to it verified."""
        pending = self._pending
        while pending and pending[-1][0] <= index:
            pending.pop()[1].result()
        self.waits_from = pending[-1][0] if pending else NEVER


class SignaturesAhead:
    """The decode step's part: canonical bytes and Ed25519 verdicts for a batch's signed events."""

    def __init__(self, threads: int | None = None, *, fold_verifies: bool = False):
        """``fold_verifies``: the fold runs in a process of its own, which verifies what the
        threads here have not started when the batch is decoded."""
        self.belief = Signers()
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.fold_verifies = fold_verifies
        self._pool: ThreadPoolExecutor | None = None
        self._checks: list[Signature] = []  # signatures not tried yet, not handed to a thread yet
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

    def of_traffic(self, fields: tuple) -> Signature:
        """The signature of a view or click given as the reader's fields
        (``schemas.traffic.read_traffic_fields``, signature last)."""
        kind, event_id, occurred_at, alliance_id, shop_id, visitor_id, referrer, merchant, placement, sig = fields
        try:
            message = signing.traffic_canonical_bytes(kind, event_id, occurred_at, alliance_id, shop_id, visitor_id,
                                                      referrer, merchant, placement)
        except ValueError:
            return Signature(sig, None)
        return self._ahead(Signature(sig, message, self._expected(kind, shop_id, occurred_at, None)))

    def of_record(self, record: dict) -> Signature | None:
        """The signature of an event given as a record (None: unsigned). The key expected is the
        one in force before the record (a policy needs the operator key in force before it), then
        the record is learnt."""
        sig = record.get("signature")
        signature = None
        if sig is not None:
            message = ED25519.message(record)
            if message is None:
                signature = Signature(sig, None)
            else:
                key = self._expected(record["type"], record["shop_id"], record["occurred_at"], record)
                signature = self._ahead(Signature(sig, message, key))
        self.learn(record)
        return signature

    def _ahead(self, signature: Signature) -> Signature:
        """The signature, not tried yet, queued to be verified under its key, the key the fold
        will likely ask for (None: no guess, the fold verifies)."""
        if signature.key is not None:
            checks = self._checks
            checks.append(signature)
            if len(checks) >= CHUNK and (self.threads > 1 or self.fold_verifies):
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="refledger-verify")
                self._started.append(self._pool.submit(_verify_all, checks))
                self._checks = []
        return signature

    def verify(self) -> None:
        """The verdicts of the batch's signatures reached ahead, written on them. With a fold that
        verifies in its own process, the chunks no thread here has started yet are left to it."""
        rest, self._checks = self._checks, []
        started, self._started = self._started, []
        if self.fold_verifies:
            started = [future for future in started if not future.cancel()]
        elif rest and self._pool is not None:
            started.append(self._pool.submit(_verify_all, rest))
        else:
            _verify_all(rest)
        for future in started:
            future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
