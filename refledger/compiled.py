"""The modules of the hot path, compiled by Cython from their own source when refledger is installed.

`consume` spends most of its time in a few modules of plain Python: reading each message's bytes,
deciding what to keep, building the rows it writes. ``setup.py`` compiles those modules, as they
are, into extension modules beside their source (``traffic.py`` gives
``traffic.compiled.cpython-311-…so``, a name only this module's finder loads);
it needs Cython and a C compiler, and an install without them runs the same source as Python.
The compiled module is the same code, not a second version of it: no rule is written twice.

A module may have a ``.pxd`` beside it (``binary.pxd``, ``traffic.pxd``) that gives some of its
locals C types when compiled, an index into a message as a C integer: the source stays plain Python,
and runs the same without them (``setup.py`` lays the packages out as named, under
``build/include``, for Cython to find them).

A compiled module is used only while it is current. The build leaves beside it the SHA-256 of the
source it was made from, and of its ``.pxd`` (``traffic.compiled-from``); an import finder (installed by
``refledger/__init__.py``) loads the compiled module only when that digest is the source's digest
now, and the source otherwise, so a source edited after the build is the code that runs.
``REFLEDGER_PURE_PYTHON=1`` runs every module from its source (coverage-guided fuzzing, for one,
sees only Python code).
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

PURE_VARIABLE = "REFLEDGER_PURE_PYTHON"

# each one's source is plain Python that Cython compiles as it is (tests/test_compiled.py)
ACCELERATED = (
    "refledger.schemas.binary",       # Avro's primitive reads
    "refledger.schemas.traffic",      # views, clicks, orders and refunds in the current schema
    "refledger.schemas.codec",        # the general decoder, digests of a message's content
    "refledger.schemas.jcs",          # canonical bytes of a signed record (RFC 8785)
    "refledger.schemas.personal_data",
    "refledger.ledger.events",        # the fold's event types, built for each message
    "refledger.consumers.kafka_records",  # a fetched batch's records (kafka-python's reading, per record)
    "refledger.consumers.batch",      # a batch's messages decoded into rows and fold items
    "refledger.consumers.fold_worker",  # the items of a job to the fold process and back
    "refledger.store.columns",        # the rows of a batch as Arrow columns
)

DIGEST_SUFFIX = ".compiled-from"
# a compiled module's file: traffic.compiled.cpython-311-x86_64-linux-gnu.so, a name Python's own
# finder never takes for `traffic` (so it never loads one without the digest check)
COMPILED_MARK = ".compiled"


def compiled_name(leaf: str) -> str:
    """The file name of the compiled module ``leaf`` for this Python."""
    return leaf + COMPILED_MARK + importlib.machinery.EXTENSION_SUFFIXES[0]


def source_digest(path: str) -> str:
    """The SHA-256 of a module's source and, when there is one, of the ``.pxd`` beside it (the C
    types its compiled form gives some locals): a change to either is a new source."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read())
    try:
        with open(path[:-3] + ".pxd", "rb") as fh:
            digest.update(b"\0pxd\0" + fh.read())
    except OSError:
        pass
    return digest.hexdigest()


def built_from(folder: str, leaf: str) -> str | None:
    """The digest of the source that the compiled module ``leaf`` in ``folder`` was built from."""
    try:
        with open(os.path.join(folder, leaf + DIGEST_SUFFIX)) as fh:
            return fh.read().strip()
    except OSError:
        return None


def compiled_path(folder: str, leaf: str) -> str | None:
    candidate = os.path.join(folder, compiled_name(leaf))
    return candidate if os.path.exists(candidate) else None


class CompiledWhenCurrent(importlib.abc.MetaPathFinder):
    """For the ACCELERATED modules: the compiled module if it was built from the source as it is
    now, else the source (Python's own finder would take any extension module before the source)."""

    def __init__(self):
        self.loaded_compiled: set[str] = set()

    def find_spec(self, fullname, path, target=None):
        if fullname not in ACCELERATED or not path:
            return None
        leaf = fullname.rpartition(".")[2]
        for folder in path:
            source = os.path.join(folder, leaf + ".py")
            if os.path.exists(source):
                break
        else:
            return None
        compiled = compiled_path(folder, leaf)
        if (compiled is not None and not os.environ.get(PURE_VARIABLE)
                and built_from(folder, leaf) == source_digest(source)):
            self.loaded_compiled.add(fullname)
            loader = importlib.machinery.ExtensionFileLoader(fullname, compiled)
            return importlib.util.spec_from_file_location(fullname, compiled, loader=loader)
        self.loaded_compiled.discard(fullname)
        return importlib.util.spec_from_file_location(fullname, source)


FINDER = CompiledWhenCurrent()


def install() -> None:
    """The finder just before Python's path finder: after any import hook put before that one
    (atheris's, which instruments the source this finder names)."""
    if FINDER in sys.meta_path:
        return
    try:
        where = sys.meta_path.index(importlib.machinery.PathFinder)
    except ValueError:
        where = len(sys.meta_path)
    sys.meta_path.insert(where, FINDER)


def compiled_modules() -> list[str]:
    """The ACCELERATED modules imported so far that run compiled."""
    return sorted(name for name in FINDER.loaded_compiled if name in sys.modules)
