"""refledger: an event-sourced commission ledger for seller alliances."""

from refledger.compiled import install as _install_compiled_finder

__version__ = "0.1.0"

_install_compiled_finder()  # the hot path's compiled modules, while current (refledger/compiled.py)
