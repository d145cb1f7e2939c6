"""The partition's journal: seals postings into hash-chained entries.

A posting (one transaction) is a list of legs summing to zero per currency;
``post`` gives each leg its entry id, sequence number and chain hash, and
keeps the one balance the fold needs: payable per (merchant, referrer,
currency), for the payout check.
"""

from __future__ import annotations

from refledger.ledger.chain import GENESIS, canonical_values, chain_hash
from refledger.ledger.entries import EARNED_PAYABLE, Basis, Entry, Leg, make_entry_id, make_txn_id

_new = tuple.__new__  # an Entry from a tuple of its fields, without the named tuple's Python-level __new__


class Journal:
    """Entries of one partition, in chain order (only the head and indexes are kept)."""

    __slots__ = ("head", "seq", "_payable")

    def __init__(self):
        self.head = GENESIS
        self.seq = 0
        self._payable: dict[tuple[str, str, str], int] = {}

    def post(self, event_id: str, subject: str, role: str, legs: tuple[Leg, ...], basis: Basis,
             qualifier: str | None = None) -> list[Entry]:
        txn_id = make_txn_id(event_id, subject, role, qualifier)
        sealed = []
        for shop, account, counterparty, currency, amount in legs:
            values = (make_entry_id(txn_id, account), txn_id, self.seq, event_id, shop, account,
                      counterparty, currency, amount, subject, role, *basis)
            prev = self.head
            self.head = digest = chain_hash(prev, canonical_values(values))
            self.seq += 1
            sealed.append(_new(Entry, (*values, prev, digest)))
            if account == EARNED_PAYABLE:
                key = (counterparty, shop, currency)
                self._payable[key] = self._payable.get(key, 0) + amount
        return sealed

    def payable_rows(self) -> list[tuple[tuple[str, str, str], int]]:
        """((merchant, referrer, currency), payable) of every pair, for a snapshot."""
        return list(self._payable.items())

    def restore_payable(self, rows) -> None:
        for merchant, referrer, currency, amount in rows:
            self._payable[(merchant, referrer, currency)] = amount

    def payable_owed(self, merchant: str, referrer: str, currency: str) -> int:
        """What ``merchant`` owes ``referrer`` as payable in ``currency``, after payouts."""
        return self._payable.get((merchant, referrer, currency), 0)
