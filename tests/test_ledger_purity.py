"""The fold is pure (STYLE §1): no module of ledger/ imports I/O, clocks, randomness or
infrastructure, or calls anything that reads the time or the outside world."""

from __future__ import annotations

import ast
from pathlib import Path

LEDGER = Path(__file__).resolve().parents[1] / "ledger"

FORBIDDEN_MODULES = {
    "kafka", "confluent_kafka", "duckdb", "click", "rich", "pyarrow", "fastavro", "avro",
    "time", "datetime", "calendar", "zoneinfo", "random", "secrets", "uuid",
    "os", "sys", "io", "pathlib", "shutil", "tempfile", "glob", "socket", "ssl", "select", "selectors",
    "http", "urllib", "requests", "subprocess", "multiprocessing", "threading", "concurrent", "asyncio",
    "signal", "logging", "sqlite3", "pickle", "shelve", "importlib", "ctypes",
    "refledger", "consumers", "producers", "replay", "schemas",
}
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint"}
FORBIDDEN_ATTRIBUTES = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "process_time",
                        "time_ns", "urandom", "getenv", "environ"}


def ledger_modules():
    return sorted(LEDGER.glob("*.py"))


def problems_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        else:
            names = []
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"{path.name}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{path.name}:{node.lineno}: calls {node.func.id}()")
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"{path.name}:{node.lineno}: uses .{node.attr}")
    return found


def test_there_is_a_ledger_package():
    assert (LEDGER / "fold.py").exists() and len(ledger_modules()) > 5


def test_the_ledger_imports_nothing_impure():
    problems = [p for path in ledger_modules() for p in problems_in(path)]
    assert problems == []


def test_the_check_catches_impure_code(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom kafka import KafkaConsumer\nimport os.path\n"
                   "from datetime import datetime\nx = datetime.now()\nopen('f')\n")
    found = problems_in(bad)
    assert len(found) == 6, found


def test_ledger_modules_are_small():
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in ledger_modules()}
    assert max(sizes.values()) <= 500, sizes
