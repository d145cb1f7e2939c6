"""Every read query the command line asks, for a running consumer to answer on its read socket."""

from __future__ import annotations

from refledger.reports.health import health
from refledger.reports.operator_report import operator_report
from refledger.reports.scorecard import members
from refledger.reports.settlement_preview import settlement_preview
from refledger.reports.sheet import sheet
from refledger.reports.statement import statement
from refledger.reports.traffic import traffic
from refledger.store.queries import QUERIES

READ_QUERIES = (*QUERIES, statement, sheet, settlement_preview, traffic, members, health, operator_report)
