"""The house's layers (docs/architecture.md): one installed package, folders that import one way.

    schemas → ledger → store → producers, consumers → replay, reports → refledger (the command line)

A folder imports only from itself and from the layers before it; folders of one
layer do not import each other. The fold (ledger/) is pure (STYLE §1): it
imports no I/O, clock, randomness or infrastructure and calls nothing that
reads the time or the outside world.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from refledger.compiled import ACCELERATED, DIGEST_SUFFIX, source_digest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = (("schemas",), ("ledger",), ("store",), ("producers", "consumers"), ("replay", "reports"), ("refledger",))
RANK = {folder: rank for rank, folders in enumerate(LAYERS) for folder in folders}
LEDGER = ROOT / "ledger"

FORBIDDEN_IN_FOLD = {
    "kafka", "confluent_kafka", "duckdb", "click", "rich", "pyarrow", "fastavro", "avro",
    "time", "datetime", "calendar", "zoneinfo", "random", "secrets", "uuid",
    "os", "sys", "io", "pathlib", "shutil", "tempfile", "glob", "socket", "ssl", "select", "selectors",
    "http", "urllib", "requests", "subprocess", "multiprocessing", "threading", "concurrent", "asyncio",
    "signal", "logging", "sqlite3", "pickle", "shelve", "importlib", "ctypes",
}
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "compile", "__import__", "breakpoint"}
FORBIDDEN_ATTRIBUTES = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "process_time",
                        "time_ns", "urandom", "getenv", "environ"}


def imported_names(path: Path):
    """(line, module) of every absolute import in a file, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def folder_of(module: str) -> str | None:
    """The folder a refledger module is built from (`refledger.store.queries` → store)."""
    parts = module.split(".")
    if parts[0] != "refledger":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in RANK else "refledger"


def layer_problems(root: Path = ROOT) -> list[str]:
    found = []
    for folder in RANK:
        for path in sorted((root / folder).rglob("*.py")):
            for line, module in imported_names(path):
                top = module.split(".")[0]
                if top in RANK and top != "refledger":
                    found.append(f"{path.relative_to(root)}:{line}: imports {module} (install name: refledger.{module})")
                    continue
                target = folder_of(module)
                if target is None or target == folder:
                    continue
                if RANK[target] >= RANK[folder]:
                    found.append(f"{path.relative_to(root)}:{line}: {folder} imports {module} ({target} is not "
                                 "below it)")
    return found


def fold_problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for line, module in imported_names(path):
        if module.split(".")[0] in FORBIDDEN_IN_FOLD or (module.startswith("refledger")
                                                          and not module.startswith("refledger.ledger")):
            found.append(f"{path.name}:{line}: imports {module}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
            found.append(f"{path.name}:{node.lineno}: calls {node.func.id}()")
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"{path.name}:{node.lineno}: uses .{node.attr}")
    return found


def test_every_folder_imports_only_the_layers_below_it():
    assert layer_problems() == []


def test_the_layer_check_catches_an_upward_import_and_an_old_top_level_name(tmp_path):
    for folder in RANK:
        (tmp_path / folder).mkdir()
    (tmp_path / "ledger" / "fold.py").write_text("from refledger.store.queries import stats\n")
    (tmp_path / "producers" / "files.py").write_text("from refledger.consumers.batch import Message\n")
    (tmp_path / "store" / "x.py").write_text("def f():\n    from schemas import codec\n")
    (tmp_path / "replay" / "ok.py").write_text("from refledger.store import queries\nimport kafka\n")
    found = layer_problems(tmp_path)
    assert len(found) == 3, found
    assert any("ledger/fold.py" in p for p in found) and any("producers/files.py" in p for p in found)


def test_the_fold_imports_nothing_impure():
    problems = [p for path in sorted(LEDGER.glob("*.py")) for p in fold_problems(path)]
    assert len(list(LEDGER.glob("*.py"))) > 5 and problems == []


def test_the_fold_check_catches_impure_code(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import time\nfrom kafka import KafkaConsumer\nimport os.path\nimport duckdb\nimport click\n"
                   "import random\nfrom refledger.store import queries\n"
                   "from datetime import datetime\nx = datetime.now()\nopen('f')\n")
    found = fold_problems(bad)
    assert len(found) == 10, found


def test_ledger_modules_are_small():
    sizes = {path.name: len(path.read_text(encoding="utf-8").splitlines()) for path in LEDGER.glob("*.py")}
    assert max(sizes.values()) <= 500, sizes


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    [wheel] = tmp_path.glob("refledger-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"refledger"}
    for folder in RANK:
        if folder != "refledger":
            assert f"refledger/{folder}/__init__.py" in names
    assert "refledger/schemas/v2/refledger.events.Event.avsc" in names
    # each compiled module is current in the installed tree: the digest it was built from is that of
    # the source and the .pxd beside it there (without the .pxd, it would run as Python)
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    for module in ACCELERATED:
        source = unpacked / (module.replace(".", "/") + ".py")
        built_from = source.with_name(source.stem + DIGEST_SUFFIX)
        assert built_from.exists(), f"{module} was not compiled into the wheel"
        assert built_from.read_text().strip() == source_digest(str(source)), f"{module} would run as Python"
    assert (unpacked / "refledger" / "schemas" / "traffic.pxd").exists()
