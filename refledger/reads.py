"""Every read query the command line asks, for a running consumer to answer on its read socket."""

from __future__ import annotations

from refledger.reports.settlement_preview import settlement_preview
from refledger.reports.sheet import sheet
from refledger.reports.statement import statement
from refledger.store.queries import QUERIES

READ_QUERIES = (*QUERIES, statement, sheet, settlement_preview)
