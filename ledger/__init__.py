"""The pure commission fold: events in, hash-chained double-entry ledger entries out.

See README.md in this package. Entry points: ``ledger.fold.PartitionFold`` and
``ledger.balances.balances``.
"""
