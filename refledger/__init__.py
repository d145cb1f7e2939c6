"""refledger: an event-sourced commission ledger for seller alliances."""

__version__ = "0.1.0"
