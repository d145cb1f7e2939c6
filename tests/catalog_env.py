"""A real PostgreSQL catalog for the DuckLake tests, and a fresh ledger on it per test.

`local_catalog()` starts `refledger catalog` in a temporary directory on a
free port and stops it afterwards. PostgreSQL's programs come from Debian's
`postgresql` package: when they are missing and the tests run as root (as CI
does), this installs them with apt-get first. The tests never skip: without
PostgreSQL they fail, saying what to install.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from refledger import broker, catalog
from refledger.store.lake import LakeLedger, lake_ledger


def ensure_postgresql() -> None:
    """Install Debian's PostgreSQL when its programs are missing (as root; else say how)."""
    try:
        catalog.binaries()
        return
    except catalog.CatalogError as missing:
        if os.geteuid() != 0:
            pytest.fail(f"{missing}; the DuckLake tests need it", pytrace=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed: {done.stderr[-2000:]}", pytrace=False)
    catalog.binaries()


@contextmanager
def local_catalog() -> Iterator[catalog.CatalogInfo]:
    ensure_postgresql()
    with tempfile.TemporaryDirectory(prefix="refledger-catalog-") as directory:
        try:
            info = catalog.start(directory, broker.free_port())
        except catalog.CatalogError as exc:
            pytest.fail(f"the local catalog did not start: {exc}", pytrace=False)
        try:
            yield info
        finally:
            catalog.stop(directory)


def fresh_lake(info: catalog.CatalogInfo, data_root: Path, label: str = "ledger") -> LakeLedger:
    """A new, empty ledger on the catalog: a database of its own, and a data path of its own."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "ledger"
    name = f"{slug}_{uuid.uuid4().hex[:8]}"
    catalog.create_database(info.port, name)
    data_path = data_root / name
    data_path.mkdir(parents=True)
    return lake_ledger(catalog.connection_db(info.port, name), str(data_path))
