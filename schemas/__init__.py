"""Avro schemas of refledger events and the codec between bytes, JSON Lines and records.

The public API lives in :mod:`schemas.codec`; see ``schemas/README.md``.
"""
