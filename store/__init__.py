"""The ledger store: the DuckDB ledger file, its columns and read queries, and reads while a consumer writes."""
