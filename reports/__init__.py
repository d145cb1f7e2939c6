"""Reports for members, operators and auditors, built from the ledger store."""
